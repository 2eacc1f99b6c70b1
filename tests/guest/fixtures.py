"""pytest fixtures for tests that boot a real guest: the guest image, and libvirtd in a namespace.

As root on a Debian host (CI) the fixtures install what they need (QEMU, libvirtd, libvirt-python);
anywhere else the tests that use them skip, with the reason in the summary. ``EUCA_REQUIRE_REAL_GUEST=1``
turns those skips into failures, for a CI job that must not silently lose the real guest.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.guest import host
from tests.guest.build_image import MARKER, BuildError, GuestImage, build
from tests.guest.libvirtd import Libvirtd

BOOT_TIMEOUT = 90.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "real_guest: boots a real guest under QEMU through libvirtd (root + apt; skips elsewhere)")


def _unavailable(reason: str) -> None:
    if os.environ.get("EUCA_REQUIRE_REAL_GUEST") == "1":
        pytest.fail(f"real guest required but unavailable: {reason}", pytrace=False)
    pytest.skip(f"real guest unavailable: {reason}")


@pytest.fixture(scope="session")
def real_guest_host() -> list[str]:
    """The host, made ready for QEMU + libvirtd (packages, libvirt-python, /dev/kvm); notes on what was done."""
    try:
        return host.prepare()
    except host.HostNotReady as exc:
        _unavailable(str(exc))
        raise  # unreachable: _unavailable always raises


@pytest.fixture(scope="session")
def guest_image(real_guest_host: list[str]) -> GuestImage:
    """Kernel, initramfs and root disk of the test guest, built once and cached across runs."""
    try:
        return build()
    except BuildError as exc:
        _unavailable(f"cannot build the guest image: {exc}")
        raise


@pytest.fixture(scope="session")
def libvirt_daemon(real_guest_host: list[str]) -> Iterator[Libvirtd]:
    """A libvirtd + virtlogd of the test session's own, in private mount and network namespaces."""
    daemon = Libvirtd()
    try:
        daemon.start()
    except (OSError, RuntimeError) as exc:
        _unavailable(f"libvirtd did not start: {exc}")
    try:
        yield daemon
    finally:
        leftovers = daemon.stop()
    assert not leftovers, f"tests left libvirt domains behind: {leftovers}"


@pytest.fixture(scope="session")
def libvirt_uri(libvirt_daemon: Libvirtd) -> str:
    """The URI of the session's libvirtd (``qemu:///system?socket=...``)."""
    return libvirt_daemon.uri


def wait_for_line(path: Path, needle: str, timeout: float = BOOT_TIMEOUT,
                  alive: Callable[[], bool] | None = None) -> str:
    """Poll a console log until a line containing ``needle`` shows up; returns the log so far.

    ``alive``, if given, is a no-argument callable that returns False once waiting is pointless
    (the domain died), so a crashed guest fails at once instead of after the timeout.
    """
    deadline = time.monotonic() + timeout
    text = ""
    while True:
        try:
            text = path.read_text(errors="replace")
        except FileNotFoundError:
            text = ""
        if needle in text:
            return text
        if alive is not None and not alive():
            raise AssertionError(f"guest stopped before {needle!r}; console so far:\n{text[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {needle!r} within {timeout:.0f} s; console so far:\n{text[-3000:]}")
        time.sleep(0.25)


__all__ = ["BOOT_TIMEOUT", "MARKER", "guest_image", "libvirt_daemon", "libvirt_uri", "real_guest_host",
           "wait_for_line"]
