"""Build a tiny bootable guest from Debian packages: Debian's cloud kernel and a busybox initramfs.

The guest is what a Eucalyptus user registers as a kernel (``eki-``), a ramdisk (``eri-``) and a machine
image (``emi-``). It runs entirely from its initramfs: ``/init`` loads the virtio, disk and ACPI button
modules, prints one line per disk it sees and then ``euca-guest: booted <kernel command line>`` on the
console (ttyS0 under the KVM layout), runs the scripts of ``tests/guest/guest.d/`` (one per part a test
exercises, each backgrounding its long work), and waits. A press of the ACPI power button (``virsh shutdown``,
libvirt's ``shutdown()``) powers it off. The machine image is a small ext4 file system whose first bytes
(the unused boot block) read ``EUCA-GUEST-ROOT``, so the guest can show which disk it was given.

Everything comes from ``apt-get download`` + ``dpkg-deb -x``; nothing is installed on the host. The result
is cached (``$EUCA_TEST_GUEST_CACHE``, else ``/var/cache/euca-test-guest`` as root, else
``$XDG_CACHE_HOME/euca-test-guest``) under a key of this recipe, so a rebuild only happens when the
recipe changes. ``python -m tests.guest.build_image`` builds it and prints the paths.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

MARKER = "euca-guest: booted"
ROOT_LABEL = b"EUCA-GUEST-ROOT"
KERNEL_META_PACKAGE = "linux-image-cloud-amd64"
BUSYBOX_PACKAGE = "busybox-static"
ROOT_SIZE = 8 * 1024 * 1024
GUEST_D = Path(__file__).with_name("guest.d")

# Loaded in dependency order; modules missing from a kernel build are skipped, not fatal, except the
# ones a guest cannot do without on the KVM layout.
MODULES = (
    "virtio_pci", "virtio_blk", "virtio_net", "virtio_scsi", "virtio_console",
    "sd_mod", "ata_piix", "ata_generic", "e1000",
    "button", "evdev", "af_packet",
)
REQUIRED_MODULES = ("virtio_pci", "virtio_blk", "button", "evdev")

INIT = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /run
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "euca-guest: init on Linux $(uname -r)"
while read -r m; do insmod "/lib/modules/$m.ko" 2>/dev/null; done < /etc/modules
# disks show up asynchronously after their driver loads
n=0
while [ $n -lt 20 ] && ! ls /sys/class/block | grep -qE '^(sd|vd|hd)'; do sleep 0.1; n=$((n + 1)); done
for b in /sys/class/block/*; do
    d=${b##*/}
    case $d in sd*|vd*|hd*) ;; *) continue ;; esac
    label=$(head -c 15 "/dev/$d" 2>/dev/null | tr -cd 'A-Z-')
    echo "euca-guest: disk $d sectors=$(cat "$b/size") label=${label:-none}"
done
for i in /sys/class/input/input*; do
    [ "$(cat "$i/name" 2>/dev/null)" = "Power Button" ] || continue
    for e in "$i"/event*; do
        [ -e "$e" ] || continue
        ev=/dev/input/${e##*/}
        # evdev hands out whole events only: 24 bytes on x86_64
        (dd if="$ev" of=/dev/null bs=24 count=1 2>/dev/null && echo "euca-guest: power button, powering off" &&
            poweroff -f) &
    done
done
# each part of the guest (network, volumes, ...) is a script of its own; long work goes to the background
for s in /etc/guest.d/*.sh; do [ -e "$s" ] && . "$s"; done
echo "euca-guest: booted $(cat /proc/cmdline)"
while :; do sleep 3600; done
"""


@dataclass(frozen=True)
class GuestImage:
    """A built guest: the three files to register, and what they were built from."""

    kernel: Path
    initrd: Path
    root: Path
    kernel_version: str
    packages: tuple[str, ...]


class BuildError(RuntimeError):
    """The guest could not be built (no apt, package not found, a tool failed); the message says which."""


def default_cache_dir() -> Path:
    explicit = os.environ.get("EUCA_TEST_GUEST_CACHE")
    if explicit:
        return Path(explicit)
    if os.geteuid() == 0:
        return Path("/var/cache/euca-test-guest")
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "euca-test-guest"


def guest_scripts() -> list[Path]:
    """The guest.d scripts, in the order /init runs them."""
    return sorted(GUEST_D.glob("*.sh"))


def recipe_key() -> str:
    """Changes whenever the guest would come out different, so a stale cache is never used."""
    h = hashlib.sha256()
    scripts = [f"{p.name}\n{p.read_text()}" for p in guest_scripts()]
    for part in (INIT, "\n".join(MODULES), ROOT_LABEL.decode(), str(ROOT_SIZE), "recipe-2", *scripts):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def build(cache_dir: Path | None = None) -> GuestImage:
    """The guest from the cache, building it first (about 10 s plus the 28 MB download) if needed."""
    cache = cache_dir or default_cache_dir()
    final = cache / f"guest-{recipe_key()}"
    found = _load(final)
    if found is not None:
        return found
    cache.mkdir(parents=True, exist_ok=True)
    os.chmod(cache, 0o755)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=cache))
    try:
        out = work / "out"
        out.mkdir()
        _build_into(work, out)
        os.chmod(out, 0o755)
        try:
            out.rename(final)
        except OSError:
            if _load(final) is None:  # not a concurrent build that won the race
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    found = _load(final)
    if found is None:
        raise BuildError(f"built the guest but {final} is incomplete")
    for stale in cache.glob("guest-*"):  # earlier recipes' guests, 25 MB each
        if stale != final:
            shutil.rmtree(stale, ignore_errors=True)
    return found


def _load(directory: Path) -> GuestImage | None:
    try:
        meta = json.loads((directory / "guest.json").read_text())
    except (OSError, ValueError):
        return None
    image = GuestImage(kernel=directory / "vmlinuz", initrd=directory / "initrd.img", root=directory / "root.img",
                       kernel_version=str(meta["kernel_version"]), packages=tuple(meta["packages"]))
    if not all(p.is_file() for p in (image.kernel, image.initrd, image.root)):
        return None
    return image


def _run(argv: Sequence[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise BuildError(f"{argv[0]} is not available: {exc}") from exc
    if done.returncode != 0:
        raise BuildError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


def kernel_package() -> str:
    """The versioned kernel package the cloud meta-package points at (linux-image-6.1.0-NN-cloud-amd64)."""
    def resolve() -> str | None:
        try:
            text = _run(["apt-cache", "depends", KERNEL_META_PACKAGE])
        except BuildError:
            return None
        found = re.search(r"Depends:\s*(linux-image-[0-9][^\s]*-cloud-amd64)\b", text)
        return found.group(1) if found else None

    name = resolve()
    if name is None:  # a fresh machine may have no package lists yet
        _run(["apt-get", "update"])
        name = resolve()
    if name is None:
        raise BuildError(f"apt-cache finds no kernel behind {KERNEL_META_PACKAGE}")
    return name


def _download(packages: Iterable[str], into: Path) -> list[Path]:
    # apt drops to the _apt user for downloads unless told not to, and that user cannot write a root-only dir
    _run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", *packages], cwd=into)
    return sorted(into.glob("*.deb"))


def _build_into(work: Path, out: Path) -> None:
    debs = work / "debs"
    debs.mkdir()
    kpkg = kernel_package()
    downloaded = _download([kpkg, BUSYBOX_PACKAGE], debs)
    if len(downloaded) != 2:
        raise BuildError(f"expected two packages from apt-get download, got {[p.name for p in downloaded]}")
    tree = work / "tree"
    for deb in downloaded:
        _run(["dpkg-deb", "-x", str(deb), str(tree)])
    kernels = sorted((tree / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise BuildError(f"{kpkg} holds {len(kernels)} kernels")
    version = kernels[0].name.removeprefix("vmlinuz-")
    busybox = tree / "bin" / "busybox"
    if not busybox.is_file():
        raise BuildError(f"{BUSYBOX_PACKAGE} has no /bin/busybox")

    modules = _module_closure(tree / "lib" / "modules" / version, MODULES, REQUIRED_MODULES)
    entries: list[_Entry] = [
        _Entry.dir("bin"), _Entry.dir("dev"), _Entry.dir("etc"), _Entry.dir("lib"), _Entry.dir("lib/modules"),
        _Entry.dir("proc"), _Entry.dir("sys"), _Entry.dir("tmp"), _Entry.dir("run"),
        _Entry.char("dev/console", 5, 1), _Entry.char("dev/null", 1, 3), _Entry.char("dev/ttyS0", 4, 64),
        _Entry.file("bin/busybox", busybox.read_bytes(), 0o755),
        _Entry.file("init", INIT.encode(), 0o755),
        _Entry.file("etc/modules", "".join(f"{name}\n" for name, _ in modules).encode(), 0o644),
        _Entry.dir("etc/guest.d"),
    ]
    entries += [_Entry.file(f"etc/guest.d/{p.name}", p.read_bytes(), 0o644) for p in guest_scripts()]
    entries += [_Entry.file(f"lib/modules/{name}.ko", path.read_bytes(), 0o644) for name, path in modules]
    (out / "initrd.img").write_bytes(gzip.compress(newc_archive(entries), compresslevel=6, mtime=0))
    shutil.copyfile(kernels[0], out / "vmlinuz")
    _make_root(out / "root.img")
    for f in out.iterdir():
        os.chmod(f, 0o644)
    packages = [p.name for p in downloaded]
    (out / "guest.json").write_text(json.dumps({"kernel_version": version, "packages": packages,
                                                "modules": [n for n, _ in modules]}, indent=1))


def _make_root(path: Path) -> None:
    """An ext4 file system (when mke2fs is there, as on any Debian) with the label in its boot block."""
    with open(path, "wb") as fh:
        fh.truncate(ROOT_SIZE)
    if shutil.which("mke2fs"):
        _run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "euca-root", str(path)])
    with open(path, "r+b") as fh:
        fh.write(ROOT_LABEL + b"\n")


def _modinfo_depends(path: Path) -> list[str]:
    data = path.read_bytes()
    found = re.search(rb"\0depends=([^\0]*)\0", data)
    if not found or not found.group(1):
        return []
    return found.group(1).decode().split(",")


def _module_closure(moddir: Path, wanted: Sequence[str], required: Sequence[str]) -> list[tuple[str, Path]]:
    """The wanted modules and everything they depend on, each after its dependencies."""
    index = {p.name.removesuffix(".ko").replace("-", "_"): p for p in moddir.rglob("*.ko")}
    if not index:
        raise BuildError(f"no kernel modules under {moddir}")
    missing = [m for m in required if m not in index]
    if missing:
        raise BuildError(f"kernel lacks modules {missing}")
    ordered: list[tuple[str, Path]] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in index:
            return
        seen.add(name)
        for dep in _modinfo_depends(index[name]):
            visit(dep.replace("-", "_"))
        ordered.append((name, index[name]))

    for name in wanted:
        visit(name)
    return ordered


@dataclass(frozen=True)
class _Entry:
    name: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)

    @classmethod
    def dir(cls, name: str) -> _Entry:
        return cls(name, stat.S_IFDIR | 0o755)

    @classmethod
    def file(cls, name: str, data: bytes, perm: int) -> _Entry:
        return cls(name, stat.S_IFREG | perm, data)

    @classmethod
    def char(cls, name: str, major: int, minor: int) -> _Entry:
        return cls(name, stat.S_IFCHR | 0o600, rdev=(major, minor))


def newc_archive(entries: Sequence[_Entry]) -> bytes:
    """A cpio archive in the "new ASCII" (newc) format the kernel unpacks, owned by root, mtime 0."""
    parts: list[bytes] = []

    def pad(n: int) -> None:
        if n % 4:
            parts.append(b"\0" * (4 - n % 4))

    def member(ino: int, name: str, mode: int, data: bytes, rdev: tuple[int, int]) -> None:
        encoded = name.encode() + b"\0"
        nlink = 2 if stat.S_ISDIR(mode) else 1
        fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        parts.append(header + encoded)
        pad(len(header) + len(encoded))
        parts.append(data)
        pad(len(data))

    for ino, entry in enumerate(entries, start=1):
        member(ino, entry.name, entry.mode, entry.data, entry.rdev)
    member(0, "TRAILER!!!", 0, b"", (0, 0))
    return b"".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cache-dir", type=Path, default=None, help=f"default {default_cache_dir()}")
    args = parser.parse_args(argv)
    image = build(args.cache_dir)
    print(f"kernel  {image.kernel}\ninitrd  {image.initrd}\nroot    {image.root}\n"
          f"version {image.kernel_version}\nfrom    {' '.join(image.packages)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
