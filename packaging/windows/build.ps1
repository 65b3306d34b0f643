# Windows build: wheel, frozen app (dist\cnnviz) and the Inno Setup installer.
# UNTESTED on this project's machines (Linux); see docs/packaging.md.
#
#   powershell -ExecutionPolicy Bypass -File packaging\windows\build.ps1
#
# Needs Python 3.10+ on PATH (py launcher) and Inno Setup 6 (iscc.exe on PATH or
# in its default folder). Same steps as packaging/build on Linux.
$ErrorActionPreference = "Stop"
$Root = Resolve-Path "$PSScriptRoot\..\.."
Set-Location $Root
$Venv = "build\venv"
$Py = "$Venv\Scripts\python.exe"
$Constraints = "packaging\constraints.txt"

if (-not (Test-Path $Py)) { py -3 -m venv $Venv }
& $Py -m pip install -q -c $Constraints "build>=1.2"
Remove-Item -ErrorAction SilentlyContinue dist\cnnviz-*.whl, dist\cnnviz-*.tar.gz
& $Py -m build --outdir dist .
$Wheel = (Get-ChildItem dist\cnnviz-*-py3-none-any.whl).FullName
$Version = (Split-Path $Wheel -Leaf).Split("-")[1]
& $Py -m pip install -q -c $Constraints "$Wheel[packaging]"
& $Py -m pip install -q -c $Constraints --force-reinstall --no-deps $Wheel
& $Py -c "import torch, sys; sys.exit('CUDA torch in the build venv' if torch.version.cuda else 0)"

$env:CNNVIZ_VERSION = $Version
Push-Location build
& "..\$Py" -m PyInstaller --noconfirm --clean --distpath "$Root\dist" --workpath "$Root\build\pyinstaller" "$Root\packaging\cnnviz.spec"
Pop-Location
& "dist\cnnviz\cnnviz-cli.exe" --self-test
if ($LASTEXITCODE -ne 0) { throw "the frozen app's self-test failed" }

$Iscc = (Get-Command iscc.exe -ErrorAction SilentlyContinue).Source
if (-not $Iscc) { $Iscc = "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe" }
& $Iscc "/DAppVersion=$Version" packaging\windows\cnnviz.iss
Write-Host "dist\cnnviz-$Version-setup.exe"
