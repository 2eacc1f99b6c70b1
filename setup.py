"""Build the Cython hot paths in ``pyx/``.

``EUCA_DEBUG=1`` builds every extension with bounds, wraparound and division checks turned back
on, and writes Cython's annotated HTML (``pyx/*.html``) to show where Python objects leak into a
hot loop.
"""

from __future__ import annotations

import os
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("EUCA_DEBUG", "") not in ("", "0")

# Extensions with needs beyond the defaults: OpenSSL's libcrypto for SHA-256 and OpenMP threads.
EXTRA: dict[str, dict[str, list[str]]] = {
    "digest": {"libraries": ["crypto"]},
}


# EUCA_ONLY=placement,vlans builds just those (a faster edit-compile loop).
ONLY = {name for name in os.environ.get("EUCA_ONLY", "").split(",") if name}


def extensions() -> list[Extension]:
    exts = []
    for source in sorted(Path("pyx").glob("*.pyx")):
        if ONLY and source.stem not in ONLY:
            continue
        extra = EXTRA.get(source.stem, {})
        exts.append(
            Extension(
                f"pyx.{source.stem}",
                [str(source)],
                libraries=extra.get("libraries", []),
                extra_compile_args=["-O3", *extra.get("compile", [])] + (["-O0", "-g"] if DEBUG else []),
                extra_link_args=extra.get("link", []),
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            )
        )
    return exts


directives = {
    "language_level": "3",
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "cdivision": not DEBUG,
    "initializedcheck": DEBUG,
    "embedsignature": True,
}

setup(ext_modules=cythonize(extensions(), compiler_directives=directives, annotate=DEBUG))
