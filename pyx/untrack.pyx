# cython: language_level=3
"""Tuples of plain values out of the collector's sight from the start.

CPython tracks every new tuple and stops tracking one only when a collection finds that none of its
items can take part in a reference cycle (no item is a container, or a tracked tuple). A planning run
keeps 10^5 and more such tuples alive (a node's rows, the CC's records), created faster than the
collector reaches them, and its youngest-generation walks spent their time on them. ``untracked``
applies the collector's own rule at once: the same tuples end up untracked, only earlier.
"""
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE


cdef extern from "Python.h":
    bint PyObject_IS_GC(object)
    bint PyObject_GC_IsTracked(object)
    void PyObject_GC_UnTrack(void*)
    bint PyTuple_CheckExact(object)


cpdef tuple untracked(tuple t):
    """``t``, untracked when the collector would untrack it: when it is a plain tuple none of whose
    items is a container that may be tracked."""
    cdef Py_ssize_t i
    cdef object item
    if not PyTuple_CheckExact(t) or not PyObject_GC_IsTracked(t):
        return t
    for i in range(PyTuple_GET_SIZE(t)):
        item = <object>PyTuple_GET_ITEM(t, i)
        if PyObject_IS_GC(item) and (not PyTuple_CheckExact(item) or PyObject_GC_IsTracked(item)):
            return t
    PyObject_GC_UnTrack(<void*>t)
    return t
