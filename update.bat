@echo off
rem Updates FP-Studio: pulls the latest code, then reinstalls the requirements into venv\.
setlocal
cd /d "%~dp0"

if not exist venv\Scripts\python.exe (
    echo No venv\ found: run install.bat first.
    goto :fail
)
where git >nul 2>nul
if errorlevel 1 (
    echo git is required to update: https://git-scm.com/download/win
    goto :fail
)

git pull --ff-only
if errorlevel 1 goto :fail
venv\Scripts\python.exe -m pip install -r requirements.txt
if errorlevel 1 goto :fail

echo Updated. Start FP-Studio with run.bat.
pause
exit /b 0

:fail
echo Update failed; see the messages above.
pause
exit /b 1
