@echo off
rem FP-Studio installer for Windows: creates venv\, installs PyTorch for your CUDA version, then the requirements.
setlocal
cd /d "%~dp0"

where python >nul 2>nul
if errorlevel 1 (
    echo Python 3.10 - 3.12 is required: https://www.python.org/downloads/ ^(tick "Add python.exe to PATH"^)
    goto :fail
)

if not exist venv\Scripts\python.exe (
    echo Creating the virtual environment in venv\ ...
    python -m venv venv
    if errorlevel 1 goto :fail
)
set "PY=venv\Scripts\python.exe"

echo.
echo Which CUDA version should PyTorch use? Run nvidia-smi: "CUDA Version" is the newest your driver supports.
echo   1. CUDA 12.6
echo   2. CUDA 12.8  (recommended; needed for RTX 50xx)
echo   3. CUDA 13.0  (driver 580 or newer)
echo   4. CPU only   (no NVIDIA GPU; very slow, for testing)
choice /c 1234 /n /m "Choose 1-4: "
if errorlevel 4 (set "TORCH_CUDA=cpu") else if errorlevel 3 (set "TORCH_CUDA=cu130") else if errorlevel 2 (set "TORCH_CUDA=cu128") else (set "TORCH_CUDA=cu126")

echo Installing PyTorch (%TORCH_CUDA%) ...
"%PY%" -m pip install --upgrade pip
"%PY%" -m pip install torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/%TORCH_CUDA%
if errorlevel 1 goto :fail

echo Installing FP-Studio requirements ...
"%PY%" -m pip install -r requirements.txt
if errorlevel 1 goto :fail

if not "%TORCH_CUDA%"=="cpu" (
    echo.
    choice /c YN /m "Install SageAttention (faster attention on NVIDIA GPUs; optional)"
    if not errorlevel 2 (
        "%PY%" -m pip install triton-windows sageattention==1.0.6
        if errorlevel 1 echo SageAttention failed to install; FP-Studio works without it.
    )
)

echo.
echo Done. Start FP-Studio with run.bat; update it later with update.bat.
pause
exit /b 0

:fail
echo.
echo Installation failed; see the messages above.
pause
exit /b 1
