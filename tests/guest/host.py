"""Prepare a Debian host (as CI runs it: root, apt, no systemd) to run a real QEMU guest through libvirt.

Each step is idempotent and says why it could not be done, so the fixture can skip with that reason
instead of failing on a developer's laptop.
"""

from __future__ import annotations

import grp
import importlib
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

PACKAGES = ("libvirt-daemon-system", "qemu-system-x86", "libvirt-clients", "cpio", "libvirt-dev", "pkg-config")


class HostNotReady(RuntimeError):
    """This host cannot run the real guest; the message is the reason shown with the skip."""


def _run(argv: Sequence[str], timeout: float, env: dict[str, str] | None = None) -> None:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HostNotReady(f"{' '.join(argv)}: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-1500:]
        raise HostNotReady(f"{' '.join(argv)} failed ({done.returncode}): {tail}")


def check_privileges() -> None:
    if os.geteuid() != 0:
        raise HostNotReady("needs root (libvirtd, network namespaces, apt)")
    if shutil.which("apt-get") is None or shutil.which("dpkg-query") is None:
        raise HostNotReady("needs a Debian-style host with apt-get")
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        raise HostNotReady("needs unshare and nsenter (util-linux)")


def missing_packages(packages: Sequence[str]) -> list[str]:
    missing = []
    for name in packages:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True, check=False)
        if done.returncode != 0 or "install ok installed" not in done.stdout:
            missing.append(name)
    return missing


def wanted_packages() -> list[str]:
    """The packages for QEMU + libvirtd, and what building libvirt-python needs on this interpreter."""
    wanted = list(PACKAGES)
    if shutil.which("gcc") is None:
        wanted.append("gcc")
    include = sysconfig.get_paths().get("include", "")
    if not Path(include, "Python.h").is_file():
        # only Debian's own interpreter gets its headers from a package; others ship them
        wanted.append(f"python{sys.version_info.major}.{sys.version_info.minor}-dev")
    return wanted


def install_packages() -> list[str]:
    """Install what is missing with apt-get; returns what was installed (empty when all was there)."""
    missing = missing_packages(wanted_packages())
    if not missing:
        return []
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _run(["apt-get", "update", "-q"], timeout=300, env=env)
    _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], timeout=900, env=env)
    return missing


def _libvirt_importable() -> bool:
    importlib.invalidate_caches()
    try:
        importlib.import_module("libvirt")
    except ImportError:
        return False
    return True


def _libvirt_version() -> str | None:
    done = subprocess.run(["pkg-config", "--modversion", "libvirt"], capture_output=True, text=True, check=False)
    version = done.stdout.strip()
    return version if done.returncode == 0 and version else None


def install_libvirt_python() -> bool:
    """pip install libvirt-python unless it imports already; returns whether it installed anything."""
    if _libvirt_importable():
        return False
    pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    try:
        _run([*pip, "libvirt-python"], timeout=600)
    except HostNotReady:
        # the newest bindings may want a newer libvirt than Debian's; the matching release always builds
        version = _libvirt_version()
        if version is None:
            raise
        _run([*pip, f"libvirt-python=={version}"], timeout=600)
    if not _libvirt_importable():
        raise HostNotReady("pip installed libvirt-python but it does not import")
    return True


def fix_kvm_permissions() -> None:
    """Without group kvm and mode 660 on /dev/kvm, libvirt re-probes QEMU's capabilities on every call.

    /dev/kvm cannot run guests here, so the domains are type 'qemu'; the device only has to look sane.
    """
    kvm = Path("/dev/kvm")
    if not kvm.exists():
        return
    try:
        gid = grp.getgrnam("kvm").gr_gid
    except KeyError:
        return
    st = kvm.stat()
    if st.st_gid != gid:
        os.chown(kvm, -1, gid)
    if st.st_mode & 0o777 != 0o660:
        os.chmod(kvm, 0o660)


def prepare() -> list[str]:
    """Everything the real-guest tests need on this host. Returns notes on what was done."""
    check_privileges()
    notes = []
    installed = install_packages()
    if installed:
        notes.append(f"apt-get installed {' '.join(installed)}")
    if install_libvirt_python():
        notes.append("pip installed libvirt-python")
    for tool in ("libvirtd", "virtlogd", "qemu-system-x86_64"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            raise HostNotReady(f"{tool} is not installed")
    fix_kvm_permissions()
    return notes
