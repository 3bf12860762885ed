"""Shared fixtures for the Python module's tests (README "Python", "Tests").

Run by CTest (python/CMakeLists.txt sets PYTHONPATH, MMN_BINARY and MMN_SOURCE_DIR), or by hand:
    PYTHONPATH=build/python python3 -m pytest tests/python
"""
import json
import os
import pathlib
import subprocess

import pytest

import mmneuron

SOURCE_DIR = pathlib.Path(os.environ.get("MMN_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
# The CLI beside the module's build tree: BUILD/python/mmneuron/__init__.py -> BUILD/mmneuron.
BINARY = os.environ.get("MMN_BINARY") or str(pathlib.Path(mmneuron.__file__).resolve().parents[2] / "mmneuron")
BUNDLED = SOURCE_DIR / "models" / "shapes-llava"
SCENES = SOURCE_DIR / "assets" / "scenes" / "images"


def shared_dir():
    """../shared beside the checkout (or $MMN_SHARED), None when absent."""
    if os.environ.get("MMN_SHARED"):
        return pathlib.Path(os.environ["MMN_SHARED"])
    p = SOURCE_DIR.parent / "shared"
    return p if (p / "golden").exists() else None


def require_shared():
    """Skips (fails under CI=true) when ../shared/golden is absent, like the C++ golden tests."""
    if shared_dir() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but ../shared/golden is absent")
        pytest.skip("../shared/golden is absent; skipping golden comparison")
    return shared_dir() / "golden"


def cli(*args, check=True):
    """Runs the mmneuron binary; returns the CompletedProcess (text)."""
    r = subprocess.run([BINARY, *map(str, args)], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"mmneuron {' '.join(map(str, args))} failed ({r.returncode}): {r.stderr}")
    return r


def cli_json(*args):
    return json.loads(cli(*args).stdout)


@pytest.fixture(scope="session")
def model():
    return mmneuron.load(BUNDLED)


@pytest.fixture(scope="session")
def scene():
    return str(SCENES / "000007.png")  # three objects: a triangle, a square and a circle
