# cython: language_level=3
"""The cluster controller's scheduler: which node runs the next instance of a VM type.

A *node* is a node controller in the cluster's ``NODES`` list: its maximum and free cores, memory (MB)
and disk (GB), its power state (UP, DOWN, ASLEEP under POWERSAVE, WAKING after a wake-on-LAN) and how
many instances it runs. A *VM type* is the (cores, memory, disk) row a request asks for (``m1.small``
is 1/256/5 in Eucalyptus 3.3+). ``SCHEDPOLICY`` picks the node: Eucalyptus's GREEDY, ROUNDROBIN and
POWERSAVE, plus BESTFIT, SPREAD, ALIGNED (Tetris-style: the node the placement leaves the least
unusable residue on) and CACHEAWARE (prefer a node whose image cache already holds the image, so it
need not be fetched from Walrus).

Every request is for a whole VM type, so the kernel keeps, per type, which nodes can take one more
copy right now: a bitset of awake nodes and one of asleep nodes (first-fit and round-robin are a
find-next-set-bit), and for the scoring policies a tournament tree over the nodes whose root is the
winner (BESTFIT's fullest node, SPREAD's emptiest, ALIGNED's least stranding). A change to one node
costs O(types * log nodes), plus O(types ** 2) for ALIGNED, which scores each type by what its
placement leaves for every other; a decision costs a bitset scan or a root read. ``describe-availability-zones
verbose``'s free / max counts are kept summed the same way.

The plain-Python twin in ``pyx/twins/placement.py`` gives the same answers, bit for bit.
"""
from libc.math cimport INFINITY
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, malloc, realloc
from libc.stdlib cimport free as c_free
from libc.string cimport memset

import numpy as np

from pyx.bitset cimport bitset_t, bs_assign, bs_free, bs_grow, bs_init, bs_next, bs_test
from pyx.common cimport node_t, res_t
from pyx.presence cimport PresenceMap

from pyx.errors import InsufficientCapacity

cdef extern from *:
    int __builtin_ctzll(unsigned long long) nogil


UP = 0
DOWN = 1
ASLEEP = 2
WAKING = 3
# A node's power state by its number: Eucalyptus's POWERSAVE vocabulary.
POWER_STATES = ("UP", "DOWN", "ASLEEP", "WAKING")
POLICIES = ("GREEDY", "ROUNDROBIN", "POWERSAVE", "BESTFIT", "SPREAD", "ALIGNED", "CACHEAWARE")

cdef enum:
    _UP = 0
    _DOWN = 1
    _ASLEEP = 2
    _WAKING = 3

cdef enum:
    _GREEDY = 0
    _ROUNDROBIN = 1
    _POWERSAVE = 2
    _BESTFIT = 3
    _SPREAD = 4
    _ALIGNED = 5
    _CACHEAWARE = 6

# Amounts are kept well inside int64 so that free + need can never overflow.
cdef res_t MAX_RESOURCE = (<res_t>1) << 62
# ALIGNED's score, smallest wins, weighed on bench/packing.py: the cores the placement strands, the
# imbalance between the cores and the memory it leaves, and the L2 norm of the normalised free vector
# it leaves, weighted down to a tie-break towards the fuller node. Weighed against it on the packing
# workload at loads 0.9 to 1.1 and seeds 1 to 7, none did better overall: the L2 norm of what is left
# as the main term (worse than GREEDY at 1.1), or weighted 0.1 or 1, or unsquared; the imbalance as
# an absolute value or weighted 0.5 or 2; the stranded cores after the placement rather than the
# change; stranded weights 1 to 4.
cdef double ALIGNED_STRANDED_WEIGHT = 2.0
cdef double ALIGNED_RESIDUAL_WEIGHT = 1e-3


cdef res_t _amount(object value, str what) except -1:
    import operator
    value = operator.index(value)
    if value < 0:
        raise ValueError(f"{what} must be >= 0, got {value}")
    if value >= MAX_RESOURCE:
        raise ValueError(f"{what} must be < 2**62, got {value}")
    return <res_t>value


cdef list _parse_types(object vmtypes):
    cdef list out = []
    cdef Py_ssize_t t = 0
    for row in vmtypes:
        if len(row) != 3:
            raise ValueError(f"VM type {t} must be (cores, memory, disk), got {len(row)} values")
        c = _amount(row[0], f"VM type {t} cores")
        m = _amount(row[1], f"VM type {t} memory")
        d = _amount(row[2], f"VM type {t} disk")
        if c == 0 and m == 0 and d == 0:
            raise ValueError(f"VM type {t} needs no cores, memory or disk")
        out.append((c, m, d))
        t += 1
    if not out:
        raise ValueError("at least one VM type is required")
    return out


cdef int _parse_state(object state) except -1:
    import operator
    state = operator.index(state)
    if state not in (_UP, _DOWN, _ASLEEP, _WAKING):
        raise ValueError(f"node state must be UP, DOWN, ASLEEP or WAKING (0-3), got {state}")
    return <int>state


cdef inline int64_t _copies(const res_t* have, const res_t* need) noexcept nogil:
    """How many copies of a VM type fit in the given capacity (the CC's repeated subtraction)."""
    cdef int64_t best = -1, q
    cdef int d
    for d in range(3):
        if need[d] > 0:
            q = have[d] // need[d]
            if best < 0 or q < best:
                best = q
    return best


cdef inline double _key_of(const res_t* f, const double* scale) noexcept nogil:
    return (<double>f[0]) / scale[0] + (<double>f[1]) / scale[1] + (<double>f[2]) / scale[2]


cdef inline bint _awake(int state) noexcept nogil:
    return state == _UP or state == _WAKING


cdef inline void _play(slot_t* tree, Py_ssize_t k) noexcept nogil:
    # The left child covers lower node indices, so it keeps a tie.
    if tree[2 * k + 1].score < tree[2 * k].score:
        tree[k] = tree[2 * k + 1]
    else:
        tree[k] = tree[2 * k]


cdef class Placement:
    """The scheduler of one cluster controller (CC): node capacities, power states and ``SCHEDPOLICY``.

    ``vmtypes`` is the VM type table, (cores, memory MB, disk GB) per type index; ``policy`` is the
    ``SCHEDPOLICY``; ``fallback`` is what CACHEAWARE does when no awake node holding the image fits.
    """

    def __cinit__(self, *args, **kwargs):
        self._n = self._cap = self._ntypes = self._nshapes = self._leaves = self._rr = 0
        self._shape = NULL
        self._maxr = self._freer = NULL
        self._st = NULL
        self._inst = NULL
        self._idle_since = self._waking_since = self._key = NULL
        self._fcnt = self._mcnt = NULL
        self._need = NULL
        self._totals = NULL
        self._awake = self._asleep = NULL
        self._tree = NULL
        self._tree_cap = 0
        self._scale_raw[0] = self._scale_raw[1] = self._scale_raw[2] = 0
        self._scale[0] = self._scale[1] = self._scale[2] = 1.0
        self._dirty = True
        self._presence = None

    def __init__(self, vmtypes, str policy="GREEDY", str fallback="BESTFIT"):
        cdef list types = _parse_types(vmtypes)
        if policy not in POLICIES:
            raise ValueError(f"unknown placement policy {policy!r}; expected one of {', '.join(POLICIES)}")
        if fallback not in POLICIES or fallback == "CACHEAWARE":
            raise ValueError(f"unknown fallback policy {fallback!r}; CACHEAWARE needs a cache-blind fallback")
        self._policy = POLICIES.index(policy)
        self._fallback = POLICIES.index(fallback)
        ranked = self._fallback if self._policy == _CACHEAWARE else self._policy
        if ranked == _BESTFIT:
            self._tree_kind = 1
        elif ranked == _SPREAD:
            self._tree_kind = 2
        elif ranked == _ALIGNED:
            self._tree_kind = 3
        else:
            self._tree_kind = 0
        self._set_types(types)

    def __dealloc__(self):
        self._free_types()
        c_free(self._maxr)
        c_free(self._freer)
        c_free(self._st)
        c_free(self._inst)
        c_free(self._idle_since)
        c_free(self._waking_since)
        c_free(self._key)

    # -- storage ------------------------------------------------------------------------------------

    cdef void _free_types(self) noexcept nogil:
        cdef Py_ssize_t t
        if self._awake != NULL:
            for t in range(self._nshapes):
                bs_free(&self._awake[t])
        if self._asleep != NULL:
            for t in range(self._nshapes):
                bs_free(&self._asleep[t])
        c_free(self._awake)
        c_free(self._asleep)
        c_free(self._need)
        c_free(self._totals)
        c_free(self._fcnt)
        c_free(self._mcnt)
        c_free(self._tree)
        c_free(self._shape)
        self._shape = NULL
        self._ntypes = 0
        self._awake = self._asleep = NULL
        self._need = NULL
        self._totals = self._fcnt = self._mcnt = NULL
        self._tree = NULL
        self._tree_cap = 0
        self._leaves = 0
        self._nshapes = 0

    cdef int _set_types(self, list types) except -1:
        # VM types with the same (cores, memory, disk) share one shape: Eucalyptus's own defaults
        # repeat rows (c1.medium and m1.large are both 2/512/10), and every structure here is per shape.
        cdef list shapes = list(dict.fromkeys(types))
        cdef Py_ssize_t t, i, nt = len(shapes)
        cdef Py_ssize_t nbits = self._cap if self._cap > 0 else 1
        self._free_types()
        self._shape = <Py_ssize_t*>malloc(len(types) * sizeof(Py_ssize_t))
        self._need = <res_t*>malloc(3 * nt * sizeof(res_t))
        self._totals = <int64_t*>calloc(2 * nt, sizeof(int64_t))
        self._fcnt = <int64_t*>calloc(nbits * nt, sizeof(int64_t))
        self._mcnt = <int64_t*>calloc(nbits * nt, sizeof(int64_t))
        self._awake = <bitset_t*>calloc(nt, sizeof(bitset_t))
        self._asleep = <bitset_t*>calloc(nt, sizeof(bitset_t))
        if (self._shape == NULL or self._need == NULL or self._totals == NULL or self._fcnt == NULL
                or self._mcnt == NULL or self._awake == NULL or self._asleep == NULL):
            self._free_types()
            raise MemoryError()
        self._nshapes = nt
        self._ntypes = len(types)
        for t in range(self._ntypes):
            self._shape[t] = shapes.index(types[t])
        for t in range(nt):
            self._need[3 * t] = shapes[t][0]
            self._need[3 * t + 1] = shapes[t][1]
            self._need[3 * t + 2] = shapes[t][2]
            if bs_init(&self._awake[t], nbits) != 0 or bs_init(&self._asleep[t], nbits) != 0:
                raise MemoryError()
        self._dirty = True
        for i in range(self._n):
            # Counts start at zero, so "was DOWN" makes the refresh add the whole contribution.
            self._refresh(i, _DOWN, True)
        return 0

    cdef int _grow(self) except -1:
        cdef Py_ssize_t cap = self._cap * 2 if self._cap >= 16 else 16
        cdef Py_ssize_t t, nt = self._nshapes
        cdef void* p
        p = realloc(self._maxr, 3 * cap * sizeof(res_t))
        if p == NULL:
            raise MemoryError()
        self._maxr = <res_t*>p
        p = realloc(self._freer, 3 * cap * sizeof(res_t))
        if p == NULL:
            raise MemoryError()
        self._freer = <res_t*>p
        p = realloc(self._st, cap * sizeof(signed char))
        if p == NULL:
            raise MemoryError()
        self._st = <signed char*>p
        p = realloc(self._inst, cap * sizeof(int64_t))
        if p == NULL:
            raise MemoryError()
        self._inst = <int64_t*>p
        p = realloc(self._idle_since, cap * sizeof(double))
        if p == NULL:
            raise MemoryError()
        self._idle_since = <double*>p
        p = realloc(self._waking_since, cap * sizeof(double))
        if p == NULL:
            raise MemoryError()
        self._waking_since = <double*>p
        p = realloc(self._key, cap * sizeof(double))
        if p == NULL:
            raise MemoryError()
        self._key = <double*>p
        p = realloc(self._fcnt, cap * nt * sizeof(int64_t))
        if p == NULL:
            raise MemoryError()
        self._fcnt = <int64_t*>p
        p = realloc(self._mcnt, cap * nt * sizeof(int64_t))
        if p == NULL:
            raise MemoryError()
        self._mcnt = <int64_t*>p
        for t in range(nt):
            if bs_grow(&self._awake[t], cap) != 0 or bs_grow(&self._asleep[t], cap) != 0:
                raise MemoryError()
        self._cap = cap
        return 0

    cdef bint _rescale(self) noexcept nogil:
        """Recompute the score scale (largest max per dimension); True when it changed."""
        cdef res_t top[3]
        cdef Py_ssize_t i
        cdef int d
        cdef bint changed = False
        top[0] = top[1] = top[2] = 0
        for i in range(self._n):
            for d in range(3):
                if self._maxr[3 * i + d] > top[d]:
                    top[d] = self._maxr[3 * i + d]
        for d in range(3):
            if top[d] != self._scale_raw[d]:
                self._scale_raw[d] = top[d]
                self._scale[d] = <double>(top[d] if top[d] > 0 else 1)
                changed = True
        return changed

    cdef int _rebuild(self) except -1:
        """Recompute every node's key and rebuild the trees after the scale or the node count changed."""
        cdef Py_ssize_t i, t, k, leaves = 1
        cdef slot_t* tree
        cdef void* p
        cdef double held
        for i in range(self._n):
            self._key[i] = _key_of(&self._freer[3 * i], self._scale)
        while leaves < self._n:
            leaves *= 2
        self._leaves = leaves
        if self._tree_kind != 0:
            if self._tree == NULL or 2 * leaves * self._nshapes > self._tree_cap:
                p = realloc(self._tree, 2 * leaves * self._nshapes * sizeof(slot_t))
                if p == NULL:
                    raise MemoryError()
                self._tree = <slot_t*>p
                self._tree_cap = 2 * leaves * self._nshapes
            for i in range(leaves):
                # ALIGNED: what the node strands before a placement is the same for every type
                held = self._stranded(&self._freer[3 * i]) if self._tree_kind == 3 and i < self._n else 0.0
                for t in range(self._nshapes):
                    tree = &self._tree[2 * leaves * t]
                    tree[leaves + i].node = <node_t>i
                    if i < self._n and _awake(self._st[i]) and self._fcnt[i * self._nshapes + t] > 0:
                        tree[leaves + i].score = self._score(t, i, held)
                    else:
                        tree[leaves + i].score = INFINITY
            for t in range(self._nshapes):
                tree = &self._tree[2 * leaves * t]
                k = leaves - 1
                while k >= 1:
                    _play(tree, k)
                    k -= 1
        self._dirty = False
        return 0

    cdef double _score(self, Py_ssize_t t, Py_ssize_t i, double held) noexcept nogil:
        """The node's score for the type under the ranked policy; the smallest wins. ``held`` is
        ALIGNED's ``_stranded`` of the node's free capacity, worked out once for all the types."""
        cdef const res_t* f
        cdef const res_t* n
        cdef res_t r[3]
        cdef double x0, x1, x2
        if self._tree_kind == 1:
            return self._key[i]
        if self._tree_kind == 2:
            return -self._key[i]
        f = &self._freer[3 * i]
        n = &self._need[3 * t]
        r[0] = f[0] - n[0]
        r[1] = f[1] - n[1]
        r[2] = f[2] - n[2]
        x0 = (<double>r[0]) / self._scale[0]
        x1 = (<double>r[1]) / self._scale[1]
        x2 = (<double>r[2]) / self._scale[2]
        return (ALIGNED_STRANDED_WEIGHT * (self._stranded(r) - held)
                + (x0 - x1) * (x0 - x1)
                + ALIGNED_RESIDUAL_WEIGHT * (x0 * x0 + x1 * x1 + x2 * x2))

    cdef double _stranded(self, const res_t* free) noexcept nogil:
        """The node's free cores (scaled) that VM types cannot use, averaged over the types: for each
        distinct type that no longer fits, all of them."""
        cdef Py_ssize_t s, unfit = 0
        cdef const res_t* need
        for s in range(self._nshapes):
            need = &self._need[3 * s]
            if free[0] < need[0] or free[1] < need[1] or free[2] < need[2]:
                unfit += 1
        return ((<double>free[0]) / self._scale[0]) * ((<double>unfit) / (<double>self._nshapes))

    cdef void _tree_set(self, Py_ssize_t t, Py_ssize_t i, bint eligible, double held) noexcept nogil:
        cdef slot_t* tree = &self._tree[2 * self._leaves * t]
        cdef Py_ssize_t k = self._leaves + i
        cdef double score = self._score(t, i, held) if eligible else INFINITY
        cdef const slot_t* winner
        if score == tree[k].score:
            return
        tree[k].score = score
        k >>= 1
        while k >= 1:
            winner = &tree[2 * k + 1] if tree[2 * k + 1].score < tree[2 * k].score else &tree[2 * k]
            if winner.node == tree[k].node and winner.score == tree[k].score:
                # The subtree's result is unchanged, so nothing above it can change either.
                break
            tree[k] = winner[0]
            k >>= 1

    cdef void _refresh(self, Py_ssize_t i, int old_state, bint max_changed) noexcept nogil:
        """Bring the node's fit bits, counts and tree leaves up to date after it changed."""
        cdef int state = self._st[i]
        cdef bint live = state != _DOWN, old_live = old_state != _DOWN
        cdef bint awake = _awake(state), asleep = state == _ASLEEP
        cdef bint trees = self._tree_kind != 0 and not self._dirty
        cdef const res_t* f = &self._freer[3 * i]
        cdef const res_t* m = &self._maxr[3 * i]
        cdef Py_ssize_t t, nt = self._nshapes, k = i * nt
        cdef int64_t c, old
        cdef double held = self._stranded(f) if trees and self._tree_kind == 3 else 0.0
        if not self._dirty:
            self._key[i] = _key_of(f, self._scale)
        for t in range(nt):
            c = _copies(f, &self._need[3 * t])
            old = self._fcnt[k + t]
            self._totals[2 * t] += (c if live else 0) - (old if old_live else 0)
            self._fcnt[k + t] = c
            if max_changed:
                c = _copies(m, &self._need[3 * t])
                old = self._mcnt[k + t]
                self._totals[2 * t + 1] += (c if live else 0) - (old if old_live else 0)
                self._mcnt[k + t] = c
                c = self._fcnt[k + t]
            elif live != old_live:
                self._totals[2 * t + 1] += self._mcnt[k + t] if live else -self._mcnt[k + t]
            bs_assign(&self._awake[t], i, awake and c > 0)
            bs_assign(&self._asleep[t], i, asleep and c > 0)
            if trees:
                self._tree_set(t, i, awake and c > 0, held)

    cdef Py_ssize_t _check_node(self, Py_ssize_t node) except -1:
        if node < 0 or node >= self._n:
            raise IndexError(f"node {node} out of range (0..{self._n - 1})")
        return node

    cdef Py_ssize_t _check_type(self, Py_ssize_t t) except -1:
        if t < 0 or t >= self._ntypes:
            raise IndexError(f"VM type {t} out of range (0..{self._ntypes - 1})")
        return t

    # -- read-only views ----------------------------------------------------------------------------

    @property
    def policy(self):
        """The ``SCHEDPOLICY`` in force."""
        return POLICIES[self._policy]

    @property
    def fallback(self):
        """What CACHEAWARE does when no awake node holding the image can take the request."""
        return POLICIES[self._fallback]

    @property
    def n_nodes(self):
        return self._n

    @property
    def n_types(self):
        return self._ntypes

    @property
    def rr_position(self):
        """Where ROUNDROBIN starts its next scan (Eucalyptus's ``schedState``; 0 at CC start)."""
        return self._rr

    def state(self, Py_ssize_t node):
        self._check_node(node)
        return <int>self._st[node]

    def free(self, Py_ssize_t node):
        """(cores, memory MB, disk GB) the node can still give to new instances."""
        self._check_node(node)
        return (self._freer[3 * node], self._freer[3 * node + 1], self._freer[3 * node + 2])

    def max(self, Py_ssize_t node):
        """The node's capacity (MAX_CORES / MAX_MEM / MAX_DISK, or what it detected)."""
        self._check_node(node)
        return (self._maxr[3 * node], self._maxr[3 * node + 1], self._maxr[3 * node + 2])

    def instances(self, Py_ssize_t node):
        self._check_node(node)
        return self._inst[node]

    # -- the cluster changing -----------------------------------------------------------------------

    def add_node(self, cores, mem, disk, state=_UP, double now=0.0):
        """A node controller registered with the CC; it comes last in ``NODES`` order, with nothing running."""
        cdef res_t c = _amount(cores, "cores"), m = _amount(mem, "memory"), d = _amount(disk, "disk")
        cdef int s = _parse_state(state)
        cdef Py_ssize_t i = self._n, t
        if i == self._cap:
            self._grow()
        self._maxr[3 * i] = self._freer[3 * i] = c
        self._maxr[3 * i + 1] = self._freer[3 * i + 1] = m
        self._maxr[3 * i + 2] = self._freer[3 * i + 2] = d
        self._st[i] = <signed char>s
        self._inst[i] = 0
        self._idle_since[i] = now
        self._waking_since[i] = now
        for t in range(self._nshapes):
            self._fcnt[i * self._nshapes + t] = 0
            self._mcnt[i * self._nshapes + t] = 0
        self._n = i + 1
        # Adding a node can only raise the scale, so no scan over the others is needed.
        if c > self._scale_raw[0]:
            self._scale_raw[0] = c
            self._scale[0] = <double>c
            self._dirty = True
        if m > self._scale_raw[1]:
            self._scale_raw[1] = m
            self._scale[1] = <double>m
            self._dirty = True
        if d > self._scale_raw[2]:
            self._scale_raw[2] = d
            self._scale[2] = <double>d
            self._dirty = True
        if i >= self._leaves:
            self._dirty = True
        self._refresh(i, _DOWN, True)
        return i

    def set_max(self, Py_ssize_t node, cores, mem, disk):
        """The node's capacity changed (a MAX_CORES-style override): what is in use stays in use."""
        self._check_node(node)
        cdef res_t caps[3]
        cdef res_t used
        cdef int d
        cdef bint shrank = False
        caps[0] = _amount(cores, "cores")
        caps[1] = _amount(mem, "memory")
        caps[2] = _amount(disk, "disk")
        for d in range(3):
            used = self._maxr[3 * node + d] - self._freer[3 * node + d]
            if self._maxr[3 * node + d] == self._scale_raw[d] and caps[d] < self._scale_raw[d]:
                shrank = True
            if caps[d] > self._scale_raw[d]:
                shrank = True
            self._maxr[3 * node + d] = caps[d]
            self._freer[3 * node + d] = caps[d] - used if caps[d] > used else 0
        if shrank and self._rescale():
            self._dirty = True
        self._refresh(node, self._st[node], True)

    def report(self, Py_ssize_t node, free_cores, free_mem, free_disk, instances):
        """The node's answer to the CC's resource poll (ncDescribeResource) replaces the CC's estimate."""
        self._check_node(node)
        cdef res_t f[3]
        cdef int d
        f[0] = _amount(free_cores, "free cores")
        f[1] = _amount(free_mem, "free memory")
        f[2] = _amount(free_disk, "free disk")
        cdef res_t count = _amount(instances, "instances")
        for d in range(3):
            self._freer[3 * node + d] = f[d] if f[d] < self._maxr[3 * node + d] else self._maxr[3 * node + d]
        self._inst[node] = count
        self._refresh(node, self._st[node], False)

    def set_state(self, Py_ssize_t node, state, double now=0.0):
        """The node changed power state; entering WAKING starts the POWER_WAKETHRESH clock and
        entering UP with nothing running starts the POWER_IDLETHRESH clock. Setting the state a
        node is already in changes nothing."""
        self._check_node(node)
        cdef int s = _parse_state(state), old = self._st[node]
        if s == old:
            return
        self._st[node] = <signed char>s
        if s == _WAKING:
            self._waking_since[node] = now
        elif s == _UP and self._inst[node] == 0:
            self._idle_since[node] = now
        self._refresh(node, old, False)

    def attach_presence(self, PresenceMap presence):
        """The node x image map CACHEAWARE reads (None detaches it)."""
        self._presence = presence

    def set_vmtypes(self, vmtypes):
        """Replace the VM type table (an administrator edited the types)."""
        self._set_types(_parse_types(vmtypes))

    # -- decisions ----------------------------------------------------------------------------------

    cdef Py_ssize_t _cached(self, Py_ssize_t t, const bitset_t* row) noexcept nogil:
        """The BESTFIT choice among awake nodes that fit and already hold the image, or -1."""
        cdef const bitset_t* aw = &self._awake[t]
        cdef Py_ssize_t nwords = aw.nwords if aw.nwords < row.nwords else row.nwords
        cdef Py_ssize_t s, w, i, best = -1
        cdef unsigned long long summary, x
        cdef double key, best_key = 0.0
        for s in range(aw.nsummary):
            summary = aw.summary[s]
            while summary:
                w = (s << 6) + __builtin_ctzll(summary)
                summary &= summary - 1
                if w >= nwords:
                    break
                x = aw.words[w] & row.words[w]
                while x:
                    i = (w << 6) + __builtin_ctzll(x)
                    x &= x - 1
                    key = self._key[i]
                    if best < 0 or key < best_key:
                        best = i
                        best_key = key
        return best

    cdef Py_ssize_t _choose(self, int policy, Py_ssize_t t, const bitset_t* row,
                            bint* moves_rr) noexcept nogil:
        cdef Py_ssize_t a, b
        cdef slot_t* tree
        if policy == _GREEDY:
            return bs_next(&self._awake[t], 0)
        if policy == _ROUNDROBIN:
            moves_rr[0] = True
            a = bs_next(&self._awake[t], self._rr)
            b = bs_next(&self._asleep[t], self._rr)
            if a < 0 or (0 <= b < a):
                a = b
            if a >= 0:
                return a
            a = bs_next(&self._awake[t], 0)
            b = bs_next(&self._asleep[t], 0)
            if a < 0 or (0 <= b < a):
                a = b
            return a
        if policy == _POWERSAVE:
            a = bs_next(&self._awake[t], 0)
            if a >= 0:
                return a
            return bs_next(&self._asleep[t], 0)
        if policy == _CACHEAWARE:
            if row != NULL:
                a = self._cached(t, row)
                if a >= 0:
                    return a
            return self._choose(self._fallback, t, NULL, moves_rr)
        if self._n == 0:
            return -1
        tree = &self._tree[2 * self._leaves * t]
        if tree[1].score == INFINITY:
            return -1
        return tree[1].node

    cdef Py_ssize_t _place(self, Py_ssize_t t, Py_ssize_t image, double now, undo_t* undo) except -2:
        cdef const bitset_t* row = NULL
        cdef bint moves_rr = False
        cdef Py_ssize_t i
        cdef int old
        cdef const res_t* need = &self._need[3 * t]
        if self._dirty:
            self._rebuild()
        if self._policy == _CACHEAWARE and image >= 0 and self._presence is not None:
            row = self._presence.row(image)
        i = self._choose(self._policy, t, row, &moves_rr)
        if i < 0:
            return -1
        old = self._st[i]
        if undo != NULL:
            undo.node = <node_t>i
            undo.state = <signed char>old
            undo.waking_since = self._waking_since[i]
        self._freer[3 * i] -= need[0]
        self._freer[3 * i + 1] -= need[1]
        self._freer[3 * i + 2] -= need[2]
        self._inst[i] += 1
        if old == _ASLEEP:
            self._st[i] = _WAKING
            self._waking_since[i] = now
        if moves_rr:
            self._rr = (i + 1) % self._n
        self._refresh(i, old, False)
        return i

    cdef void _unplace(self, Py_ssize_t t, const undo_t* undo) noexcept nogil:
        cdef Py_ssize_t i = undo.node
        cdef int old = self._st[i]
        cdef const res_t* need = &self._need[3 * t]
        self._freer[3 * i] += need[0]
        self._freer[3 * i + 1] += need[1]
        self._freer[3 * i + 2] += need[2]
        self._inst[i] -= 1
        self._st[i] = undo.state
        self._waking_since[i] = undo.waking_since
        self._refresh(i, old, False)

    def place(self, Py_ssize_t vmtype, Py_ssize_t image=-1, double now=0.0):
        """Run one instance of the VM type (of the image, for CACHEAWARE): the chosen node, or -1.

        The node's free capacity is consumed at once, as the CC does before the next poll corrects it;
        an ASLEEP node chosen is woken (WAKING).
        """
        if vmtype < 0 or vmtype >= self._ntypes:
            self._check_type(vmtype)
        return self._place(self._shape[vmtype], image, now, NULL)

    def place_many(self, Py_ssize_t vmtype, Py_ssize_t min_count, Py_ssize_t max_count,
                   Py_ssize_t image=-1, double now=0.0):
        """A reservation (RunInstances with MinCount/MaxCount): at least ``min_count`` instances or
        none at all, then as many more as fit up to ``max_count``. Raises InsufficientCapacity and
        changes nothing when fewer than ``min_count`` fit."""
        cdef list placed = []
        cdef undo_t* undo = NULL
        cdef undo_t* grown
        cdef Py_ssize_t i, k, shape, room = 0, saved_rr = self._rr
        if not 0 <= min_count <= max_count:
            raise ValueError(f"need 0 <= min_count <= max_count, got {min_count} and {max_count}")
        self._check_type(vmtype)
        shape = self._shape[vmtype]
        try:
            while len(placed) < max_count:
                k = len(placed)
                if k == room:
                    room = room * 2 if room else 16
                    grown = <undo_t*>realloc(undo, room * sizeof(undo_t))
                    if grown == NULL:
                        raise MemoryError()
                    undo = grown
                i = self._place(shape, image, now, &undo[k])
                if i < 0:
                    break
                placed.append(i)
            if len(placed) < min_count:
                for k in range(len(placed) - 1, -1, -1):
                    self._unplace(shape, &undo[k])
                self._rr = saved_rr
                raise InsufficientCapacity()
        finally:
            c_free(undo)
        return placed

    def release(self, Py_ssize_t node, Py_ssize_t vmtype, double now=0.0):
        """An instance of the VM type on the node ended: its capacity goes back to the node."""
        cdef int d
        cdef res_t f
        if node < 0 or node >= self._n:
            self._check_node(node)
        if vmtype < 0 or vmtype >= self._ntypes:
            self._check_type(vmtype)
        cdef const res_t* need = &self._need[3 * self._shape[vmtype]]
        for d in range(3):
            f = self._freer[3 * node + d] + need[d]
            self._freer[3 * node + d] = f if f < self._maxr[3 * node + d] else self._maxr[3 * node + d]
        if self._inst[node] > 0:
            self._inst[node] -= 1
            if self._inst[node] == 0:
                self._idle_since[node] = now
        self._refresh(node, self._st[node], False)

    # -- reports ------------------------------------------------------------------------------------

    def availability(self):
        """Per VM type, [free, max] copies summed over nodes that are not DOWN: the CC's
        doDescribeResources behind ``describe-availability-zones verbose``."""
        out = np.empty((self._ntypes, 2), dtype=np.int64)
        cdef int64_t[:, ::1] view = out
        cdef Py_ssize_t t, shape
        for t in range(self._ntypes):
            shape = self._shape[t]
            view[t, 0] = self._totals[2 * shape]
            view[t, 1] = self._totals[2 * shape + 1]
        return out

    def power_tick(self, double now, double idle_thresh, double wake_thresh):
        """(UP nodes idle past POWER_IDLETHRESH, to power down; WAKING nodes silent past
        POWER_WAKETHRESH, to mark DOWN), each in NODES order. The caller applies the changes."""
        cdef list idle = [], lost = []
        cdef Py_ssize_t i
        for i in range(self._n):
            if self._st[i] == _UP and self._inst[i] == 0 and now - self._idle_since[i] > idle_thresh:
                idle.append(i)
        for i in range(self._n):
            if self._st[i] == _WAKING and now - self._waking_since[i] > wake_thresh:
                lost.append(i)
        return idle, lost
