"""Image bundles: where the time of euca bundle-image and of the cloud's unbundle goes.

One image (1 GiB; --quick 64 MiB) of alternating 4 MiB runs of random bytes and zeros, as a root
file system half full. Each stage's rate is the bytes it handled over the seconds spent inside it
(the stages run interleaved in one pass, so their times add up to the pass's, less Python's glue;
the deflate threads' seconds overlap the main thread's). ``openssl enc -aes-128-cbc`` on the same
image, encrypting and decrypting, is the reference for the crypto stage, and ``gzip -6 -c`` (what
euca2ools runs when it finds no pigz) for the gzip stage. A pass with one deflate thread shows what
the parallel gzip buys. The image sits in the page cache, as it does after it was just written.
"""

from __future__ import annotations

import random
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from euca.auth.certs import cloud_credentials, load_certificate, load_private_key, user_credentials
from euca.walrus.bundle import Stages, bundle_image, parts_in, read_manifest, unbundle

_RUN = 4 * 1024 * 1024
REPEATS = 3


@dataclass(frozen=True)
class StageRate:
    direction: str  # "bundle" or "unbundle"
    stage: str
    mb: float  # bytes in, MB
    seconds: float

    @property
    def mb_s(self) -> float:
        return self.mb / self.seconds if self.seconds > 0 else float("inf")


def _write_image(path: Path, size: int) -> None:
    pattern = random.Random(11).randbytes(_RUN + 256)
    zeros = bytes(_RUN)
    with path.open("wb") as out:
        for index, offset in enumerate(range(0, size, _RUN)):
            n = min(_RUN, size - offset)
            out.write(pattern[index % 256: index % 256 + n] if index % 2 == 0 else zeros[:n])


def _openssl(args: list[str], source: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["openssl", "enc", *args, "-in", str(source), "-out", "/dev/null"], check=True)
    return time.perf_counter() - start


def measure(quick: bool = False) -> list[StageRate]:
    """Per-stage rates of bundle and unbundle (medians of REPEATS passes), and openssl's."""
    size = (64 if quick else 1024) * 1024 * 1024
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {}

    def record(direction: str, stages: Stages, wall: float, image_bytes: int) -> None:
        for name, seconds in stages.seconds.items():
            runs.setdefault((direction, name), []).append((stages.bytes[name] / 1e6, seconds))
        # the deflate threads' seconds overlap the main thread's, which waits for them
        glue = wall - sum(s for name, s in stages.seconds.items() if "each thread" not in name)
        runs.setdefault((direction, "other (Python, tarfile)"), []).append((image_bytes / 1e6, glue))
        runs.setdefault((direction, "whole pass"), []).append((image_bytes / 1e6, wall))

    with tempfile.TemporaryDirectory(prefix="euca-bench-bundle-") as tmp:
        root = Path(tmp)
        cloud = cloud_credentials(root / "keys")
        user = user_credentials(root / "keys", "bench", "000000000000")
        cloud_cert, cloud_key = load_certificate(cloud.cert), load_private_key(cloud.key)
        user_cert, user_key = load_certificate(user.cert), load_private_key(user.key)
        image = root / "emi-bench.img"
        _write_image(image, size)
        for _ in range(REPEATS):
            shutil.rmtree(root / "bundle", ignore_errors=True)
            stages = Stages()
            start = time.perf_counter()
            made = bundle_image(image, root / "bundle", "emi-bench", user_cert, user_key, cloud_cert, "x86_64",
                                stages=stages)
            record("bundle", stages, time.perf_counter() - start, size)
            manifest = read_manifest(made.manifest.read_bytes(), cloud_key, [user_cert])
            stages = Stages()
            start = time.perf_counter()
            unbundle(manifest, parts_in(root / "bundle"), root / "restored.img", stages=stages)
            record("unbundle", stages, time.perf_counter() - start, size)
            (root / "restored.img").unlink()
            shutil.rmtree(root / "bundle")
            start = time.perf_counter()
            bundle_image(image, root / "bundle", "emi-bench", user_cert, user_key, cloud_cert, "x86_64", threads=1)
            runs.setdefault(("bundle", "whole pass, one deflate thread"), []).append(
                (size / 1e6, time.perf_counter() - start))
        if shutil.which("openssl"):
            key = ["-aes-128-cbc", "-K", manifest.key.hex(), "-iv", manifest.iv.hex()]
            encrypted = root / "image.enc"
            subprocess.run(["openssl", "enc", *key, "-in", str(image), "-out", str(encrypted)], check=True)
            for _ in range(REPEATS):
                runs.setdefault(("reference", "openssl enc -aes-128-cbc"), []).append(
                    (size / 1e6, _openssl(key, image)))
                runs.setdefault(("reference", "openssl enc -d -aes-128-cbc"), []).append(
                    (encrypted.stat().st_size / 1e6, _openssl(["-d", *key], encrypted)))
        if shutil.which("gzip"):
            for _ in range(REPEATS):
                start = time.perf_counter()
                with image.open("rb") as source:
                    subprocess.run(["gzip", "-6", "-c"], stdin=source, stdout=subprocess.DEVNULL, check=True)
                runs.setdefault(("reference", "gzip -6 -c"), []).append((size / 1e6, time.perf_counter() - start))
    return [StageRate(direction, stage, statistics.median(m for m, _ in samples),
                      statistics.median(s for _, s in samples))
            for (direction, stage), samples in runs.items()]


def format_report(rates: list[StageRate]) -> str:
    header = ("pass", "stage", "MB in", "seconds", "MB/s")
    body = [(r.direction, r.stage, f"{r.mb:,.0f}", f"{r.seconds:.2f}", f"{r.mb_s:,.0f}") for r in rates]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True)))
             for line in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
