"""The done-when of installing: a wheel built from the repository, installed into a fresh virtual
environment outside it, gives a `leadflow` that works in an empty folder:
`leadflow init crm && cd crm && leadflow rules check && leadflow rules test && leadflow demo`.

Kept fast and offline: the wheel is built once (`pip wheel --no-deps`, from a copy of the sources so
the build leaves nothing in the checkout), the new environment gets its dependencies by a .pth line
naming this environment's site-packages (no download), and the wheel goes in with `--no-deps`. The
editable install of this checkout cannot leak in: a .pth line adds a directory but does not run the
.pth files inside it (the editable finder is one), every command runs in a temporary folder, and the
test checks that `leadflow` is imported from the new environment.
"""
from __future__ import annotations

import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.leadflow_cli import ROOT, clean_env

SOURCES = ("pyproject.toml", "README.md", "engine", "bots", "rules")


def run(args: list, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment with leadflow installed from a wheel; its bin folder."""
    work = tmp_path_factory.mktemp("install")
    src = work / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist"), str(src)], work)
    (wheel,) = (work / "dist").glob("leadflow-*.whl")
    with zipfile.ZipFile(wheel) as whl:
        tops = {name.split("/")[0] for name in whl.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"leadflow"}  # no `engine`, `bots` in site-packages

    venv = work / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], work)
    python = venv / "bin" / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], work).stdout.strip()
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib"), *site.getsitepackages()}
    Path(purelib, "_dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(ours) if Path(p).is_dir()))
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
         str(wheel)], work)
    return venv / "bin"


def user_env(bin_dir: Path) -> dict:
    env = clean_env(PATH=f"{bin_dir}:/usr/bin:/bin")
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    return env


def test_the_installed_leadflow_is_the_wheel_not_this_checkout(installed, tmp_path):
    where = run([str(installed / "python"), "-c", "import leadflow, leadflow.bundled_rules as b; "
                 "print(leadflow.__file__); print(b.__file__)"], tmp_path, user_env(installed)).stdout.split()
    venv = installed.parent.resolve()
    assert all(Path(p).resolve().is_relative_to(venv) for p in where), where
    for generic in ("engine", "bots"):
        proc = subprocess.run([str(installed / "python"), "-c", f"import {generic}"], cwd=tmp_path,
                              env=user_env(installed), capture_output=True, text=True)
        assert proc.returncode == 1 and "ModuleNotFoundError" in proc.stderr
    assert "serve" in run([str(installed / "python"), "-m", "leadflow", "--help"], tmp_path,
                          user_env(installed)).stdout


def test_init_check_test_and_demo_in_an_empty_folder(installed, tmp_path):
    proc = run(["bash", "-c", "leadflow init crm && cd crm && leadflow rules check && leadflow rules test"
                              " && leadflow demo"], tmp_path, user_env(installed))
    assert "rule tests passed" in proc.stdout and "rules from ./rules" in proc.stderr
    assert (tmp_path / "crm" / "leadflow-demo.db").is_file()


def test_demo_in_an_empty_folder_runs_the_bundled_rules(installed, tmp_path):
    proc = run(["leadflow", "demo", "--json"], tmp_path, user_env(installed))
    assert "bundled" in proc.stderr and proc.stdout.lstrip().startswith("{")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["leadflow-demo.db"]
