"""What iSCSI costs a guest: a real QEMU guest reading a whole disk attached over iSCSI beside the same
file attached as a local file disk, in the same run.

It drives libvirt-python directly, without the cloud, and reuses the test harness (``tests.guest``):
the busybox guest of tests/guest/build_image.py, a libvirtd of its own in private namespaces
(tests/guest/libvirtd.py), tgtd in that libvirtd's network namespace (tests/guest/iscsi.py) and the
KVM domain layout of tests/test_real_guest.py. A 1 GiB file of random data (256 MiB with ``--quick``)
is exported by tgtd as LUN 1 and hot-plugged as a ``<disk type='network'>`` with serial ``bench-iscsi``,
then the same file as a ``<disk type='file'>`` with serial ``bench-local``. The guest
(tests/guest/guest.d/70-read-bench.sh) reads every ``bench-`` disk whole three times as it appears,
page cache dropped first, and prints each read's centiseconds on its console, which is read here from
the serial log. Both sides reach the file through the host's page cache (tgtd's reads, QEMU's default
cache mode), so the ratio is the cost of the transport; ``dd`` of the file on the host is shown for
reference.

QEMU runs under TCG (software emulation) here, so the absolute figures are far below a KVM host's;
the ratio is the figure to read. Needs root (libvirtd, namespaces, apt for QEMU and tgt); elsewhere
it says why it cannot run.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 1 << 20
IQN = "iqn.2026-11.org.euca.bench:read"
READS = 3  # per attach, as the guest script does
BOOT_TIMEOUT = 120.0
READ_TIMEOUT = 240.0


class Unavailable(RuntimeError):
    """This host cannot run the benchmark (not root, QEMU/libvirt/tgt missing); the message says why."""


@dataclass(frozen=True)
class Figures:
    size_mib: int
    iscsi_s: list[float]
    local_s: list[float]
    host_dd_s: list[float]
    boot_s: float

    def mib_s(self, seconds: list[float]) -> float:
        return self.size_mib / statistics.median(seconds)


def _prepare() -> None:
    if os.geteuid() != 0:
        raise Unavailable("needs root (libvirtd in namespaces, tgtd, apt-get for QEMU and tgt)")
    from tests.guest import host, iscsi

    try:
        host.prepare()
        iscsi.prepare()
    except (host.HostNotReady, iscsi.IscsiUnavailable) as exc:
        raise Unavailable(str(exc)) from exc


def _network_disk(serial: str, target: str) -> str:
    return f"""<disk type='network' device='disk'>
  <driver name='qemu' type='raw'/>
  <source protocol='iscsi' name='{IQN}/1'><host name='127.0.0.1' port='3260'/></source>
  <target dev='{target}' bus='virtio'/>
  <serial>{serial}</serial>
</disk>"""


def _file_disk(path: Path, serial: str, target: str) -> str:
    return f"""<disk type='file' device='disk'>
  <driver name='qemu' type='raw'/>
  <source file='{path}'/>
  <target dev='{target}' bus='virtio'/>
  <serial>{serial}</serial>
</disk>"""


def _reads(console: Path, serial: str) -> list[tuple[int, int]]:
    text = console.read_text(errors="replace") if console.exists() else ""
    return [(int(m.group(1)), int(m.group(2)))
            for m in re.finditer(rf"euca-guest: read {re.escape(serial)} (\d+) (\d+)", text)]


def _wait(console: Path, what: str, done: Any, dom: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if not dom.isActive():
            raise RuntimeError(f"the guest stopped before {what}:\n{console.read_text(errors='replace')[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} within {timeout:.0f} s:\n{console.read_text(errors='replace')[-2000:]}")
        time.sleep(0.25)


def _guest_reads(dom: Any, console: Path, xml: str, serial: str, size: int) -> list[float]:
    import libvirt

    dom.attachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    _wait(console, f"{READS} reads of {serial}", lambda: len(_reads(console, serial)) >= READS, dom, READ_TIMEOUT)
    reads = _reads(console, serial)[:READS]
    if any(nbytes != size for nbytes, _ in reads):
        raise RuntimeError(f"the guest read {[n for n, _ in reads]} bytes of {serial}, not {size}")
    return [cs / 100 for _, cs in reads]


def _host_dd(path: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["dd", f"if={path}", "of=/dev/null", "bs=1M"], capture_output=True, check=True)
    return time.perf_counter() - started


def measure(quick: bool = False) -> Figures:
    """Boot the guest, attach the file over iSCSI and then locally; the guest's read times for each."""
    _prepare()
    import libvirt

    from tests.guest.build_image import MARKER, BuildError, build
    from tests.guest.iscsi import Tgtd
    from tests.guest.libvirtd import Libvirtd
    from tests.test_real_guest import kvm_domain_xml

    size_mib = 256 if quick else 1024
    try:
        image = build()
    except BuildError as exc:
        raise Unavailable(f"cannot build the guest image: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="euca-bench-guest-", dir="/var/tmp") as tmp_name:
        tmp = Path(tmp_name)
        data = tmp / "volume.img"
        with open(data, "wb") as f:
            for _ in range(size_mib):
                f.write(os.urandom(MIB))
        root = tmp / "root.img"
        shutil.copyfile(image.root, root)
        console = tmp / "console.log"
        host_dd = [_host_dd(data) for _ in range(READS)]

        daemon = Libvirtd()
        daemon.start()
        tgtd: Tgtd | None = None
        try:
            tgtd = Tgtd(daemon)
            tgtd.start()
            for args in (("--op", "new", "--mode", "target", "--tid", "1", "-T", IQN),
                         ("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "-b", str(data)),
                         ("--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")):
                done = tgtd.tgtadm("--lld", "iscsi", *args)
                if done.returncode != 0:
                    raise RuntimeError(f"tgtadm {' '.join(args)}: {done.stderr.strip()}")
            conn = libvirt.open(daemon.uri)
            try:
                xml = kvm_domain_xml("euca-bench-read", image, root, console)
                xml = xml.replace("console=ttyS0 ", "console=ttyS0 euca.net=off ")
                dom = conn.defineXML(xml)
                try:
                    started = time.monotonic()
                    dom.create()
                    _wait(console, repr(MARKER), lambda: MARKER in console.read_text(errors="replace")
                          if console.exists() else False, dom, BOOT_TIMEOUT)
                    boot_s = time.monotonic() - started
                    size = size_mib * MIB
                    iscsi_s = _guest_reads(dom, console, _network_disk("bench-iscsi", "vdb"), "bench-iscsi", size)
                    local_s = _guest_reads(dom, console, _file_disk(data, "bench-local", "vdc"), "bench-local", size)
                finally:
                    if dom.isActive():
                        dom.destroy()
                    dom.undefine()
            finally:
                conn.close()
        finally:
            if tgtd is not None:
                tgtd.stop()
            daemon.stop()
    return Figures(size_mib, iscsi_s, local_s, host_dd, boot_s)


def format_report(f: Figures) -> str:
    def row(name: str, seconds: list[float]) -> str:
        runs = ", ".join(f"{s:.3f}" for s in seconds)
        return f"  {name:<34} {f.mib_s(seconds):8.1f} MiB/s  (median {statistics.median(seconds):.3f} s of {runs})"

    ratio = statistics.median(f.iscsi_s) / statistics.median(f.local_s)
    return "\n".join([
        row("guest, over iSCSI (tgtd, libiscsi)", f.iscsi_s),
        row("guest, local file disk", f.local_s),
        row("host dd of the file (page cache)", f.host_dd_s),
        f"  iSCSI/local read time: {ratio:.2f}x (the guest reads {1 / ratio:.0%} as fast over iSCSI); "
        f"guest booted in {f.boot_s:.1f} s",
    ])
