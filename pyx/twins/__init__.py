"""Plain-Python twins of the Cython kernels, one module each, shipped beside them.

Each twin has its kernel's API, results, exceptions and messages, written the obvious way (sets,
dicts, ``min()``, straight scans). The property tests hold every kernel to its twin, and
``python -m bench`` prints the speed ratio between the two, so both must be importable from an
installed package.
"""
