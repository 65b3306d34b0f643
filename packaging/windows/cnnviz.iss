; Inno Setup script: a Windows installer over the frozen app folder (dist\cnnviz).
; UNTESTED on this project's machines (Linux); see docs/packaging.md.
;
;   iscc /DAppVersion=0.1.0 packaging\windows\cnnviz.iss
;
; makes dist\cnnviz-0.1.0-setup.exe, which installs per user or for all users
; (the installer asks), adds a Start-menu entry, and makes .cnnviz files open in
; cnnviz (an "Open with" entry always; the default handler if the user ticks it).
#define AppName "cnnviz"
#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#ifndef SourceDir
  #define SourceDir "..\..\dist\cnnviz"
#endif
#define ProgId "cnnviz.stack"

[Setup]
AppId={{19DFB902-98AD-49EB-9128-BF0790DBE9EC}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=cnnviz developers
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
ChangesAssociations=yes
OutputDir=..\..\dist
OutputBaseFilename=cnnviz-{#AppVersion}-setup
SetupIconFile=..\..\resources\icons\cnnviz.ico
UninstallDisplayIcon={app}\cnnviz.exe
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern

[Tasks]
Name: "assoc"; Description: "Open .cnnviz files with cnnviz by default"; GroupDescription: "File types:"
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\cnnviz"; Filename: "{app}\cnnviz.exe"; Comment: "Explore convolutional networks"
Name: "{autodesktop}\cnnviz"; Filename: "{app}\cnnviz.exe"; Tasks: desktopicon

[Registry]
; the file type: a ProgID with its icon and open command
Root: HKA; Subkey: "Software\Classes\{#ProgId}"; ValueType: string; ValueName: ""; ValueData: "cnnviz layer stack"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\{#ProgId}\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\cnnviz.exe,0"
Root: HKA; Subkey: "Software\Classes\{#ProgId}\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\cnnviz.exe"" ""%1"""
; .cnnviz: always offered in "Open with", the default handler when the task is ticked
Root: HKA; Subkey: "Software\Classes\.cnnviz\OpenWithProgids"; ValueType: string; ValueName: "{#ProgId}"; ValueData: ""; Flags: uninsdeletevalue
Root: HKA; Subkey: "Software\Classes\.cnnviz"; ValueType: string; ValueName: ""; ValueData: "{#ProgId}"; Flags: uninsdeletevalue; Tasks: assoc
Root: HKA; Subkey: "Software\Classes\.cnnviz"; ValueType: string; ValueName: "Content Type"; ValueData: "application/x-cnnviz"; Flags: uninsdeletevalue
Root: HKA; Subkey: "Software\Classes\Applications\cnnviz.exe\SupportedTypes"; ValueType: string; ValueName: ".cnnviz"; ValueData: ""; Flags: uninsdeletekey

[Run]
Filename: "{app}\cnnviz.exe"; Description: "{cm:LaunchProgram,cnnviz}"; Flags: nowait postinstall skipifsilent
