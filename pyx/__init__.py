"""Cython hot paths shared by the cloud, the simulator and the benchmarks.

Each module here has a plain-Python twin in ``pyx.twins`` that the property tests hold it
against and that ``bench`` measures it against.
"""
