"""The packaging recipes stay consistent with each other and with the code (docs/packaging.md).

Building the frozen app and the .deb takes minutes, so CI does not; these
checks catch what usually breaks them: a new bundled file that the wheel or the
frozen app would leave out, an entry point renamed in one place, a desktop
entry or MIME type that the desktop would refuse, stale icon renders. One test
builds the wheel (seconds) and lists it.
"""
from __future__ import annotations

import ast
import configparser
import fnmatch
import io
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
RESOURCES = ROOT / "resources"
ICONS = RESOURCES / "icons"
DESKTOP = RESOURCES / "cnnviz.desktop"
MIME_XML = RESOURCES / "mime" / "cnnviz.xml"
SPEC = PACKAGING / "cnnviz.spec"
MIME_NS = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}
MIME_TYPE = "application/x-cnnviz"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)

sys.path.insert(0, str(PACKAGING))
import make_icons  # noqa: E402

sys.path.pop(0)


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def spec_literal(name: str):
    """A module-level literal assigned in packaging/cnnviz.spec (read without running PyInstaller)."""
    tree = ast.parse(SPEC.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} is not assigned a literal in {SPEC}")


def shipped_resources() -> list[str]:
    """Every file under resources/ that must ship, as a path relative to resources/."""
    out = []
    for path in sorted(RESOURCES.rglob("*")):
        rel = path.relative_to(RESOURCES).as_posix()
        if path.is_dir() or "__pycache__" in rel or rel == "__init__.py" or rel.endswith((".pyc", "~")):
            continue
        out.append(rel)
    return out


def matches(rel: str, pattern: str) -> bool:
    """setuptools package-data semantics for the patterns used here: ``*`` stays within a folder."""
    if rel.count("/") != pattern.count("/"):
        return False
    return all(fnmatch.fnmatchcase(a, b) for a, b in zip(rel.split("/"), pattern.split("/")))


def desktop_entry() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(DESKTOP, encoding="utf-8")
    return parser["Desktop Entry"]


# ----------------------------------------------------------------- entry points
def test_gui_script_is_the_command_every_recipe_runs():
    project = pyproject()["project"]
    assert project["gui-scripts"] == {"cnnviz": "cnnviz.__main__:main"}
    assert project["scripts"]["cnnviz-cli"] == "cnnviz.__main__:main"

    entry = ast.parse((PACKAGING / "cnnviz_main.py").read_text(encoding="utf-8"))
    imports = [(n.module, [a.name for a in n.names]) for n in entry.body if isinstance(n, ast.ImportFrom)]
    assert ("cnnviz.__main__", ["main"]) in imports, "the frozen entry must call the same main as the gui-script"
    spec = SPEC.read_text(encoding="utf-8")
    assert "cnnviz_main.py" in spec and 'name="cnnviz"' in spec

    exec_line = desktop_entry()["Exec"].split()
    assert exec_line[0] == "cnnviz" and desktop_entry()["TryExec"] == "cnnviz"
    make_deb = (PACKAGING / "linux" / "make-deb").read_text(encoding="utf-8")
    assert 'ln -s /opt/cnnviz/cnnviz "$STAGE/usr/bin/cnnviz"' in make_deb

    iss = (PACKAGING / "windows" / "cnnviz.iss").read_text(encoding="utf-8")
    assert r'"""{app}\cnnviz.exe"" ""%1"""' in iss


def test_entry_point_routes_self_test_to_the_selftest_module(monkeypatch):
    from cnnviz import __main__ as entry
    from cnnviz.app.window import selftest
    from cnnviz.core.model import assets

    calls = []
    monkeypatch.setattr(selftest, "self_test", lambda file, rest: calls.append((file, list(rest))) or 7)
    example = str(assets.path("examples", "lenet5.cnnviz"))
    assert entry.main(["--self-test"]) == 7
    assert entry.main(["--self-test", example]) == 7
    assert entry.main([example, "--self-test", selftest.PLATFORM_PROBE]) == 7
    assert calls == [(None, []), (example, []), (example, [selftest.PLATFORM_PROBE])]


def test_the_plain_install_exports_onnx():
    """Export > ONNX is in the menu of every install: onnx (which checks the model) is a dependency, not an extra."""
    deps = [d.split(">")[0].split("=")[0].strip() for d in pyproject()["project"]["dependencies"]]
    assert "onnx" in deps
    assert pyproject()["project"]["optional-dependencies"]["onnx"] == ["onnxscript>=0.2"]


def test_packages_are_discovered_not_listed():
    """setup.py discovers every package under cnnviz/ (a new one cannot be forgotten); the wheel test
    below checks that every module really is in the wheel."""
    assert "packages" not in pyproject()["tool"]["setuptools"]
    assert 'find_packages(include=["cnnviz", "cnnviz.*"])' in (ROOT / "setup.py").read_text(encoding="utf-8")


# -------------------------------------------------------------------- resources
def test_package_data_and_pyinstaller_datas_use_the_same_patterns():
    package_data = pyproject()["tool"]["setuptools"]["package-data"]["cnnviz.resources"]
    assert sorted(package_data) == sorted(spec_literal("RESOURCE_PATTERNS"))
    assert pyproject()["tool"]["setuptools"]["package-dir"]["cnnviz.resources"] == "resources"


def test_every_resource_is_shipped_by_the_wheel_and_the_frozen_app():
    package_data = pyproject()["tool"]["setuptools"]["package-data"]["cnnviz.resources"]
    spec_patterns = spec_literal("RESOURCE_PATTERNS")
    files = shipped_resources()
    for must in ("examples/lenet5.cnnviz", "icons/cnnviz.svg", "icons/cnnviz-256.png", "cnnviz.desktop",
                 "mime/cnnviz.xml", "data/digits.csv.gz", "data/fashion-mnist/t10k-images-idx3-ubyte.gz"):
        assert must in files
    left_out = [f for f in files if not any(matches(f, p) for p in package_data)]
    assert not left_out, f"package-data in pyproject.toml does not ship {left_out}"
    left_out = [f for f in files if not any(matches(f, p) for p in spec_patterns)]
    assert not left_out, f"RESOURCE_PATTERNS in packaging/cnnviz.spec does not ship {left_out}"


def test_frozen_app_finds_the_resources_package():
    hidden = SPEC.read_text(encoding="utf-8")
    assert '["cnnviz.resources"]' in hidden and 'collect_submodules("cnnviz")' in hidden
    trim = spec_literal("TRIM_PATTERNS")
    for needed in ("torch/lib/libtorch_cpu.so", "torch/lib/libc10.so", "torch/bin/torch_shm_manager",
                   "PySide6/Qt/plugins/platforms/libqxcb.so", "PySide6/Qt/plugins/imageformats/libqsvg.so",
                   "cnnviz/resources/examples/lenet5.cnnviz"):
        dropped = any(fnmatch.fnmatch(needed, p) for p in trim)
        kept = any(fnmatch.fnmatch(needed, p) for p in spec_literal("TRIM_KEEP"))
        assert not dropped or kept, f"the trimmed app would lose {needed}"


# ------------------------------------------------------------- desktop and MIME
def test_desktop_entry_is_valid():
    entry = desktop_entry()
    assert entry["Type"] == "Application"
    assert entry["Name"] == "cnnviz"
    assert entry["Icon"] == "cnnviz"
    assert entry["Terminal"] == "false"
    assert re.search(r"(^|\s)%[fF](\s|$)", entry["Exec"]), "Exec must pass the opened file (%f)"
    assert MIME_TYPE in entry["MimeType"].split(";") and entry["MimeType"].endswith(";")
    assert entry["Categories"].endswith(";")
    validator = shutil.which("desktop-file-validate")
    if validator:
        proc = subprocess.run([validator, str(DESKTOP)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "error" not in proc.stdout.lower()


def test_mime_type_matches_cnnviz_files_by_name_and_content():
    root = ET.parse(MIME_XML).getroot()
    assert root.tag == "{%s}mime-info" % MIME_NS["m"]
    types = root.findall("m:mime-type", MIME_NS)
    assert [t.get("type") for t in types] == [MIME_TYPE]
    mime = types[0]
    assert [g.get("pattern") for g in mime.findall("m:glob", MIME_NS)] == ["*.cnnviz"]
    assert mime.find("m:icon", MIME_NS).get("name") == MIME_TYPE.replace("/", "-")
    values = []
    for match in mime.findall("m:magic/m:match", MIME_NS):
        assert match.get("type") == "string"
        start, _, end = match.get("offset").partition(":")
        values.append((match.get("value").encode(), int(start), int(end or start)))
    assert values
    from cnnviz.core.model import assets, files

    stacks = list(assets.examples())
    assert stacks
    for path in stacks:
        head = path.read_bytes()[: max(end for _, _, end in values) + 64]
        assert any(v in head[s:e + len(v)] for v, s, e in values), f"the magic does not match {path.name}"
    # and a file as cnnviz itself writes it
    text = files.dumps(files.load(stacks[0])).encode()
    assert any(v in text[s:e + len(v)] for v, s, e in values)


def test_shared_mime_info_accepts_the_type(tmp_path):
    updater = shutil.which("update-mime-database")
    if not updater:
        pytest.skip("update-mime-database (shared-mime-info) is not installed")
    packages = tmp_path / "mime" / "packages"
    packages.mkdir(parents=True)
    shutil.copy(MIME_XML, packages / "cnnviz.xml")
    proc = subprocess.run([updater, str(tmp_path / "mime")], capture_output=True, text=True)
    assert proc.returncode == 0 and "error" not in proc.stderr.lower(), proc.stderr
    assert f"{MIME_TYPE}:*.cnnviz" in (tmp_path / "mime" / "globs2").read_text()


# ------------------------------------------------------------------------ icons
def test_icon_renders_exist_at_every_size():
    from PIL import Image

    assert make_icons.PNG_SIZES == PNG_SIZES
    for size in PNG_SIZES:
        with Image.open(ICONS / make_icons.png_name(size)) as image:
            assert image.size == (size, size)
            assert image.mode == "RGBA"
            assert image.getpixel((0, 0))[3] == 0, "the corners are transparent"
    with Image.open(ICONS / "cnnviz.ico") as ico:
        assert set(make_icons.ICO_SIZES) <= {w for w, h in ico.info["sizes"]}
    with Image.open(ICONS / "cnnviz.icns") as icns:
        assert {(512, 512, 2), (16, 16, 2)} <= set(icns.info["sizes"])
    ET.parse(ICONS / "cnnviz.svg")


def test_icon_renders_are_up_to_date_with_the_svg(qapp):
    from PIL import Image, ImageChops, ImageStat

    for size in (32, 256):
        fresh = make_icons.render(size)
        with Image.open(ICONS / make_icons.png_name(size)) as committed:
            diff = ImageStat.Stat(ImageChops.difference(fresh, committed.convert("RGBA"))).mean
        assert max(diff) < 2.0, (f"cnnviz-{size}.png differs from the SVG (mean difference {diff}): "
                                 "run python packaging/make_icons.py")


def test_linux_package_installs_every_icon_size():
    make_deb = (PACKAGING / "linux" / "make-deb").read_text(encoding="utf-8")
    loop = re.search(r"for size in ([0-9 ]+); do", make_deb)
    assert loop and tuple(int(s) for s in loop.group(1).split()) == PNG_SIZES
    assert "hicolor/scalable/$context" in make_deb and "application-x-cnnviz" in make_deb
    for name in ("cnnviz.desktop", "mime/cnnviz.xml", "icons/cnnviz.svg"):
        assert f"$RES/{name}" in make_deb


# ------------------------------------------------------------- Debian recipe
def test_debian_control_and_maintainer_scripts():
    control = (PACKAGING / "linux" / "control.in").read_text(encoding="utf-8")
    fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", control, re.M))
    for key in ("Package", "Version", "Architecture", "Maintainer", "Installed-Size", "Depends", "Description"):
        assert key in fields, key
    depends = {d.strip().split()[0] for alt in fields["Depends"].split(",") for d in alt.split("|")}
    for lib in ("libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxcb-shape0", "libxcb-xinerama0",
                "libxcb-randr0", "libxcb-render-util0", "libxcb-image0", "libegl1", "libxkbcommon-x11-0",
                "libfontconfig1", "libdbus-1-3", "libgl1"):
        assert lib in depends, f"Depends lacks {lib}, which Qt's xcb plugin loads"
    for name in ("postinst", "postrm"):
        script = PACKAGING / "linux" / name
        assert os.access(script, os.X_OK), f"{name} must be executable"
        text = script.read_text(encoding="utf-8")
        for tool in ("update-mime-database", "update-desktop-database", "gtk-update-icon-cache"):
            assert f"command -v {tool}" in text, f"{name} must guard {tool} with command -v"
        assert subprocess.run(["sh", "-n", str(script)]).returncode == 0


def test_build_scripts_parse():
    for script in ("build", "smoke", "linux/make-deb", "macos/make-dmg"):
        path = PACKAGING / script
        assert os.access(path, os.X_OK), f"packaging/{script} must be executable"
        proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    compile(SPEC.read_text(encoding="utf-8"), str(SPEC), "exec")
    text = (PACKAGING / "build").read_text(encoding="utf-8")
    assert "-c \"$CONSTRAINTS\"" in text, "every pip install in packaging/build takes the constraints"
    constraints = (PACKAGING / "constraints.txt").read_text(encoding="utf-8")
    assert re.search(r"^torch==\S+$", constraints, re.M), "torch stays pinned to the CPU build"


def test_other_platform_recipes_declare_the_file_type():
    spec = SPEC.read_text(encoding="utf-8")
    for key in ("CFBundleDocumentTypes", "UTExportedTypeDeclarations", '"public.filename-extension": ["cnnviz"]',
                f'"public.mime-type": ["{MIME_TYPE}"]'):
        assert key in spec
    iss = (PACKAGING / "windows" / "cnnviz.iss").read_text(encoding="utf-8")
    assert r'Subkey: "Software\Classes\.cnnviz' in iss and "ChangesAssociations=yes" in iss
    assert "resources\\icons\\cnnviz.ico" in iss


# ------------------------------------------------------------------------ wheel
def test_wheel_carries_the_resources(tmp_path):
    """Build the wheel from a copy of the sources and list it (a few seconds)."""
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(ROOT / "cnnviz", src / "cnnviz", ignore=ignore)
    shutil.copytree(RESOURCES, src / "resources", ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copy(ROOT / "setup.py", src)
    readme = pyproject()["project"].get("readme")
    if readme:
        assert (ROOT / readme).is_file(), f"pyproject.toml names {readme}, which does not exist: builds fail"
        shutil.copy(ROOT / readme, src)
    out = tmp_path / "out"
    # pip's build isolation, as `python -m build` and `pip install .` do: the
    # build-system requirements of pyproject.toml, not whatever this venv has
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q",
                           "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = out.glob("cnnviz-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = zf.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    missing = [rel for rel in shipped_resources() if f"cnnviz/resources/{rel}" not in names]
    assert not missing, f"the wheel lacks {missing}"
    modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "cnnviz").rglob("*.py")
                     if "__pycache__" not in p.parts)
    assert "cnnviz/app/window/selftest.py" in modules and "cnnviz/core/model/assets.py" in modules
    assert not [m for m in modules if m not in names], "the wheel leaves modules out"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert re.search(r"\[gui_scripts\]\s*\ncnnviz = cnnviz.__main__:main", entry_points)


# -------------------------------------------------------------------- self-test
@pytest.fixture
def no_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


def test_self_test_refuses_an_unreadable_file(tmp_path, no_display):
    from cnnviz.app.window.selftest import self_test

    bad = tmp_path / "bad.cnnviz"
    bad.write_text("not json", encoding="utf-8")
    out = io.StringIO()
    assert self_test(str(bad), [], out=out) == 2
    assert "bad.cnnviz" in out.getvalue() and "Traceback" not in out.getvalue()
    assert self_test(None, ["--bogus"], out=io.StringIO()) == 2


def test_self_test_reports_a_broken_stack(qapp, no_display):
    from cnnviz.app.window.selftest import self_test
    from cnnviz.core.model import assets

    out = io.StringIO()
    assert self_test(str(assets.path("examples", "broken.cnnviz")), [], out=out) == 1
    assert "FAIL stack" in out.getvalue()


def test_self_test_passes_in_process(qapp, no_display):
    pytest.importorskip("cnnviz.app.window.main_window", reason="the main window is not written yet")
    from cnnviz.app.window.selftest import self_test

    out = io.StringIO()
    status = self_test(None, [], out=out)
    report = out.getvalue()
    assert status == 0, report
    for check in ("resources", "stack", "icon", "window", "forward", "backward"):
        assert f"ok   {check}:" in report, report
    assert "torch 2." in report and "Qt 6." in report and "devices: cpu" in report
