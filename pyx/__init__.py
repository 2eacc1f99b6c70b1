"""Cython hot paths shared by the cloud, the simulator and the benchmarks.

Each kernel here has a plain-Python twin in ``pyx.twins`` that the property tests hold it against
and that ``bench`` measures it against; the network pools (``pyx.netalloc`` hands them on) share
one, ``pyx.twins.netalloc``.
"""
