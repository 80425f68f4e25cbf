@echo off
rem Starts FP-Studio at http://127.0.0.1:7860 (extra flags are passed on, e.g. run.bat --listen --port 7861).
setlocal
cd /d "%~dp0"

if not exist venv\Scripts\python.exe (
    echo No venv\ found: run install.bat first.
    pause
    exit /b 1
)
venv\Scripts\python.exe app.py %*
if errorlevel 1 pause
