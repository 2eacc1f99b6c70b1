from libc.stdint cimport int64_t

from pyx.bitset cimport bitset_t
from pyx.common cimport node_t, res_t
from pyx.presence cimport PresenceMap


# One slot of a per-VM-type tournament tree: the winning node of a subtree and its score
# (smaller wins; a node that may not take the type scores +inf).
ctypedef struct slot_t:
    double score
    node_t node


# One instance of a reservation, remembered so a failed reservation can be undone exactly.
ctypedef struct undo_t:
    node_t node
    signed char state
    double waking_since


cdef class Placement:
    cdef int _policy
    cdef int _fallback
    # Which score the tournament trees rank by (0: no trees needed by the policy).
    cdef int _tree_kind
    cdef Py_ssize_t _n
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _ntypes
    # Distinct (cores, memory, disk) rows among the VM types; per-type structures are per shape.
    cdef Py_ssize_t _nshapes
    cdef Py_ssize_t* _shape
    cdef Py_ssize_t _leaves
    cdef Py_ssize_t _rr
    cdef Py_ssize_t _tree_cap

    # Per node (index * 3 + dimension for resources).
    cdef res_t* _maxr
    cdef res_t* _freer
    cdef signed char* _st
    cdef int64_t* _inst
    cdef double* _idle_since
    cdef double* _waking_since
    cdef double* _key

    # Per node and shape (node * nshapes + shape): copies that fit in free / max capacity.
    cdef int64_t* _fcnt
    cdef int64_t* _mcnt

    # Per shape (distinct VM type row).
    cdef res_t* _need
    cdef int64_t* _totals
    cdef bitset_t* _awake
    cdef bitset_t* _asleep
    cdef slot_t* _tree

    cdef res_t _scale_raw[3]
    cdef double _scale[3]
    # Keys and trees are stale (scale or tree size changed); rebuilt before the next decision.
    cdef bint _dirty
    cdef PresenceMap _presence

    cdef int _set_types(self, list types) except -1
    cdef void _free_types(self) noexcept nogil
    cdef int _grow(self) except -1
    cdef int _rebuild(self) except -1
    cdef void _refresh(self, Py_ssize_t i, int old_state, bint max_changed) noexcept nogil
    cdef void _tree_set(self, Py_ssize_t t, Py_ssize_t i, bint eligible, double held) noexcept nogil
    cdef double _score(self, Py_ssize_t t, Py_ssize_t i, double held) noexcept nogil
    cdef double _stranded(self, const res_t* free) noexcept nogil
    cdef bint _rescale(self) noexcept nogil
    cdef Py_ssize_t _choose(self, int policy, Py_ssize_t t, const bitset_t* row, bint* moves_rr) noexcept nogil
    cdef Py_ssize_t _cached(self, Py_ssize_t t, const bitset_t* row) noexcept nogil
    cdef Py_ssize_t _place(self, Py_ssize_t t, Py_ssize_t image, double now, undo_t* undo) except -2
    cdef void _unplace(self, Py_ssize_t t, const undo_t* undo) noexcept nogil
    cdef Py_ssize_t _check_node(self, Py_ssize_t node) except -1
    cdef Py_ssize_t _check_type(self, Py_ssize_t t) except -1
