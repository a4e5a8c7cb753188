"""A regular (non-editable) install carries the bundled workloads: build a wheel, install it into a scratch
``--target``, and run ``python -m fwbench list`` from there with the source tree out of reach (issue 12)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

BUNDLED = ("cnn", "ddp", "digits", "mlp", "mobilenet", "resnet20", "resnet20-digits")


def _can_build_offline() -> bool:
    """setuptools (with ``bdist_wheel``: built in from 70.1, else the ``wheel`` package) in this interpreter."""
    try:
        import setuptools
    except ImportError:
        return False
    major, minor = (int(p) for p in setuptools.__version__.split(".")[:2])
    if (major, minor) >= (70, 1):
        return True
    try:
        import wheel  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not _can_build_offline():
        pytest.skip("building a wheel offline needs setuptools >= 70.1 (or setuptools and wheel) installed")
    # Build from a copy, so that setuptools' build/ and egg-info never land in the working tree.
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "fwbench", src / "fwbench", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheelhouse")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-q", "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (built,) = out.glob("fwbench-*.whl")
    return built


def test_the_wheel_holds_every_bundled_workload(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in BUNDLED:
        assert f"fwbench/workloads/{name}.toml" in names


def test_an_installed_wheel_lists_its_bundled_workloads(wheel, tmp_path):
    target, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
                           str(target), str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FWBENCH_WORKLOADS")}
    env.update(PYTHONPATH=str(target), COLUMNS="200")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], cwd=elsewhere, env=env, capture_output=True, text=True,
                              timeout=300)

    where = run("-c", "import fwbench; print(fwbench.__file__)")
    assert where.returncode == 0 and Path(where.stdout.strip()).is_relative_to(target), where.stdout + where.stderr
    listed = run("-m", "fwbench", "list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    rows = {line.split("│")[1].strip(): line for line in listed.stdout.splitlines() if line.count("│") > 3}
    for name in BUNDLED:
        assert name in rows and "bundled" in rows[name] and "invalid" not in rows[name], listed.stdout
    by_name = run("-c", "from fwbench.workload import load_workload as w; print(w('cnn').batch_size, w('mlp').name)")
    assert by_name.stdout.split() == ["64", "mlp"], by_name.stdout + by_name.stderr
