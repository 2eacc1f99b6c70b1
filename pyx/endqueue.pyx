# cython: language_level=3
"""The simulator's queue of instance ends: a binary heap keyed by (time, event id), earliest first.

A planning run keeps one end per running instance (10^5 and more) and takes the earliest once per
instance end. As a heap of Python tuples each step compares tuples of boxed floats scattered over
memory; here the keys are C doubles and integers in one array, and only the payload (an instance
id) is a Python object. Event ids are unique, so no two keys are equal and the order is total.
"""
from cpython.ref cimport Py_DECREF, Py_INCREF, PyObject
from libc.stdint cimport int64_t
from libc.stdlib cimport free, realloc


cdef struct _End:
    double when
    int64_t seq
    PyObject* item


cdef inline bint _before(_End* a, _End* b) noexcept nogil:
    return a.when < b.when or (a.when == b.when and a.seq < b.seq)


cdef class EndQueue:
    cdef _End* heap
    cdef Py_ssize_t n
    cdef Py_ssize_t size

    def __cinit__(self):
        self.heap = NULL
        self.n = 0
        self.size = 0

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.heap != NULL:
            for i in range(self.n):
                Py_DECREF(<object>self.heap[i].item)
            free(self.heap)

    def __len__(self) -> int:
        return self.n

    def push(self, double when, int64_t seq, object item) -> bool:
        """Queue ``item`` to end at ``when`` (``seq`` breaks ties: the event id it drew). True when
        it is now the earliest."""
        cdef _End* grown
        cdef Py_ssize_t i, parent
        cdef _End entry
        if self.n == self.size:
            grown = <_End*>realloc(self.heap, (self.size * 2 + 64) * sizeof(_End))
            if grown == NULL:
                raise MemoryError()
            self.heap = grown
            self.size = self.size * 2 + 64
        Py_INCREF(item)
        entry.when = when
        entry.seq = seq
        entry.item = <PyObject*>item
        i = self.n
        self.n += 1
        while i > 0:
            parent = (i - 1) >> 1
            if not _before(&entry, &self.heap[parent]):
                break
            self.heap[i] = self.heap[parent]
            i = parent
        self.heap[i] = entry
        return i == 0

    def first(self):
        """(time, event id) of the earliest end."""
        if self.n == 0:
            raise IndexError("first of an empty EndQueue")
        return (self.heap[0].when, self.heap[0].seq)

    def pop(self):
        """Take the earliest end off the queue: its (event id, item)."""
        cdef _End top, last
        cdef Py_ssize_t i, child, n
        if self.n == 0:
            raise IndexError("pop from an empty EndQueue")
        top = self.heap[0]
        self.n -= 1
        n = self.n
        if n > 0:
            last = self.heap[n]
            i = 0
            while True:
                child = 2 * i + 1
                if child >= n:
                    break
                if child + 1 < n and _before(&self.heap[child + 1], &self.heap[child]):
                    child += 1
                if not _before(&self.heap[child], &last):
                    break
                self.heap[i] = self.heap[child]
                i = child
            self.heap[i] = last
        result = (top.seq, <object>top.item)
        Py_DECREF(<object>top.item)
        return result
