"""`pip install .` (not editable) gives a working bot. The wheel is built from a copy of the checkout and
installed into a fresh virtual environment that sees the test environment's dependencies but not this
checkout (its editable install is not active there); then, from a folder outside the checkout, the
installed `cspbot` opens a database (migrations, the catalog taxonomy, the built-in sandbox's catalog),
builds the Teams app package (manifest template and icons), and `app` imports; a failed command exits 1 with
one error line. This is the suite's run of the console script; the other CLI tests call `main` in-process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.replicas import FOREIGN_SETTINGS, ROOT

pytestmark = pytest.mark.wheel

NOT_SOURCES = (".git", ".venv", "node_modules", "var", "build", "dist", "*.egg-info", "__pycache__", ".*_cache")
APP_ID = "00000000-0000-0000-0000-0000000000ab"


def _run(argv: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    output = f"{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
    assert completed.returncode == 0, f"{' '.join(argv)} failed:\n{output}"
    return completed


def _build_wheel(folder: Path) -> Path:
    """The wheel of a copy of the checkout (building in place would leave build/ in it)."""
    source = folder / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCES), symlinks=True)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(folder), str(source)], cwd=folder)
    [wheel] = folder.glob("csp_teams_bot-*.whl")
    return wheel


def _venv_with_only(wheel: Path, folder: Path) -> Path:
    """A fresh venv holding the wheel; the dependencies come from this test environment's site-packages,
    named in a .pth file. Python only reads .pth files in its own site folders, so the editable install's
    finder (a .pth in this environment) is not run there: the checkout is not importable."""
    venv = folder / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=folder)
    python = venv / "bin" / "python"
    # Installed before the dependencies are visible, so pip does not take this checkout's editable
    # install for the same version already being there.
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    _run([*pip, "install", "--no-deps", "--no-index", "--quiet", str(wheel)], cwd=folder)
    where = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=folder)
    purelib = Path(where.stdout.strip())
    ours = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    (purelib / "test_dependencies.pth").write_text("".join(f"{path}\n" for path in ours), encoding="utf-8")
    return venv


def test_the_installed_wheel_runs_without_the_checkout(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path / "wheel")

    # Every file of every package folder is in the wheel (data files included).
    with zipfile.ZipFile(wheel) as archive:
        packed = set(archive.namelist())
    top = {name.split("/")[0] for name in packed if "/" in name and ".dist-info/" not in name}
    missing = [
        path.relative_to(ROOT).as_posix()
        for folder in sorted(top)
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.relative_to(ROOT).as_posix() not in packed
    ]
    assert missing == []

    venv = _venv_with_only(wheel, tmp_path)
    elsewhere, home = tmp_path / "elsewhere", tmp_path / "home"
    elsewhere.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith((*FOREIGN_SETTINGS, "PYTHON", "XDG_"))}
    env.update(HOME=str(home), SEED_DEMO_ORGANISATION="false")
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{elsewhere / 'bot.sqlite3'}"
    python, cspbot = str(venv / "bin" / "python"), str(venv / "bin" / "cspbot")

    where_from = "import json, app, cli, migrations, services as s; print(json.dumps([app.__file__, cli.__file__, "
    where_from += "migrations.__file__, s.__file__]))"
    imported = _run([python, "-c", where_from], cwd=elsewhere, env=env)
    for module_file in json.loads(imported.stdout):
        assert Path(module_file).is_relative_to(venv), module_file  # the wheel's copy, not the checkout's

    listed = _run([cspbot, "org", "list"], cwd=elsewhere, env=env)
    assert "No organisations yet" in listed.stdout
    assert (elsewhere / "bot.sqlite3").exists()

    # A failed command: exit code 1 and one error line, no traceback.
    failed = subprocess.run(
        [cspbot, "member", "add", "acme", "x@acme.example", "--role", "boss"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert failed.returncode == 1, failed.stderr
    assert failed.stderr.startswith("error: Unknown role 'boss'") and "Traceback" not in failed.stderr

    package = elsewhere / "appPackage.zip"
    _run([cspbot, "package", "--app-id", APP_ID, "--out", str(package)], cwd=elsewhere, env=env)
    with zipfile.ZipFile(package) as archive:
        assert sorted(archive.namelist()) == ["color.png", "manifest.json", "outline.png"]
        assert json.loads(archive.read("manifest.json"))["id"] == APP_ID

    # Without DATABASE_URL the data goes to the user's data folder, never into site-packages.
    del env["DATABASE_URL"]
    _run([cspbot, "org", "list"], cwd=elsewhere, env=env)
    assert (home / ".local" / "share" / "cspbot" / "cspbot.sqlite3").exists()
    assert not list(venv.rglob("var"))
