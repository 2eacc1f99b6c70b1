"""libvirt-python for the tests, installed on first use where the machine allows it.

The bindings are not in the ``test`` extra: they build against libvirt-dev, which a fresh machine
without the Debian package would fail on. Running as root with apt-get, the session fixture
installs libvirt-dev, pkg-config, libvirt-clients (``virt-xml-validate``) and libxml2-utils, then
``pip install libvirt-python``, once; elsewhere the tests that need it are skipped with the reason.
A test module takes the fixture with ``from tests.libvirt_setup import libvirt_fixture``.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from types import ModuleType

import pytest

APT_PACKAGES = ["libvirt-dev", "pkg-config", "libvirt-clients", "libxml2-utils", "gcc", "python3-dev"]


def _import() -> ModuleType | None:
    try:
        return importlib.import_module("libvirt")
    except ImportError:
        return None


def _install() -> str | None:
    """None when libvirt-python and virt-xml-validate are usable, else why not."""
    if _import() is not None and shutil.which("virt-xml-validate"):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "libvirt-python is missing and installing it needs root and apt-get"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    steps = [["apt-get", "update", "-q"],
             ["apt-get", "install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES],
             [sys.executable, "-m", "pip", "install", "-q", "libvirt-python"]]
    for step in steps:
        done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            return f"{' '.join(step[:3])} failed: {done.stderr.strip()[-300:]}"
    importlib.invalidate_caches()
    if _import() is None:
        return "libvirt-python installed but cannot be imported"
    return None


@pytest.fixture(scope="session", name="libvirt_module")
def libvirt_fixture() -> ModuleType:
    """The ``libvirt`` module, installed if need be; skips the test with the reason otherwise."""
    reason = _install()
    if reason is not None:
        pytest.skip(f"libvirt: {reason}")
    module = _import()
    assert module is not None
    return module
