# cython: language_level=3
"""The cluster controller's ledger of running instances: a reservation starts, and an instance
ends, in one call each.

``start`` has the placement kernel choose the nodes (all or nothing for MinCount), asks the network
for each instance's assignment, and records the instances; if the network runs out before MinCount
instances have addresses, every address and node taken is given back and the error raised, and past
MinCount the rest are skipped, as Eucalyptus skips them. ``end`` gives the node its capacity, the
network its address and the node's image cache its pin back.

Records are plain tuples of plain values, which CPython's collector need not track (``untracked``
stops it at once: a planning run keeps a hundred thousand alive, and named tuples would be walked by
every full collection):
``(instance_id, node, vmtype, image_id, node_index, image_cached)`` followed by the network
assignment's fields. What ``start`` and ``end`` hand back are the caller's record types, built from
those fields. The network and the image cache are the caller's: plain callables.
"""

from pyx.bitset cimport bs_test
from pyx.placement cimport Placement
from pyx.presence cimport PresenceMap
from pyx.untrack cimport untracked

from pyx.errors import Conflict, KernelError


cdef inline object _record(type kind, tuple fields):
    return fields if kind is None else tuple.__new__(kind, fields)


cdef class Ledger:
    cdef Placement placement
    cdef PresenceMap presence
    cdef list names
    cdef dict types
    cdef object attach
    cdef object detach
    cdef object use
    cdef object unpin
    cdef object node_index
    cdef type placed
    cdef type net
    cdef str cluster
    cdef dict running

    def __init__(self, Placement placement not None, PresenceMap presence not None, list names, dict types, attach, detach,
                 use, unpin, node_index, type placed=None, type net=None, str cluster="cluster01"):
        """``names``: node names by index (read as it grows); ``types``: VM type name to the
        placement's type index; ``attach(instance_id, key)`` gives an instance its network
        assignment (a 5-tuple) or raises a KernelError, ``detach(instance_id)`` takes it back;
        ``use(node, image, now)`` pins a cached image for a starting instance and ``unpin(node,
        image_id)`` lets it go; ``node_index(name)`` finds a restored record's node."""
        self.placement = placement
        self.presence = presence
        self.names = names
        self.types = types
        self.attach = attach
        self.detach = detach
        self.use = use
        self.unpin = unpin
        self.node_index = node_index
        self.placed = placed
        self.net = net
        self.cluster = cluster
        self.running = {}

    cdef object _placed(self, tuple r):
        return _record(self.placed, (r[0], r[1], r[2], _record(self.net, r[6:]), r[3], r[4], r[5]))

    def start(self, ids, str vmtype, Py_ssize_t min_count, str image_id, Py_ssize_t image, str key, double now):
        """Start up to ``len(ids)`` instances of ``vmtype`` (at least ``min_count``) from the image
        (``image`` its slot, -1 for none) in the security group ``key``; their launch records."""
        cdef Py_ssize_t t = self.types[vmtype]
        cdef Py_ssize_t n = len(ids), k, done, node
        cdef dict running = self.running
        cdef list nodes, nets = [], launches = []
        cdef bint cached
        cdef object instance_id, net
        cdef str name
        if n == 1:
            if ids[0] in running:
                raise Conflict("instance ids must be new and unique")
        elif len(set(ids)) != n or not running.keys().isdisjoint(ids):
            raise Conflict("instance ids must be new and unique")
        nodes = self.placement.place_many(t, min_count, n, image, now)
        try:
            for k in range(len(nodes)):
                nets.append(self.attach(ids[k], key))
        except KernelError:
            if len(nets) < min_count:
                for k in range(len(nets)):
                    self.detach(ids[k])
                for node in nodes:
                    self.placement.release(node, t, now)
                raise
        done = len(nets)
        for k in range(done, len(nodes)):
            self.placement.release(nodes[k], t, now)
        for k in range(done):
            instance_id, node, net = ids[k], nodes[k], nets[k]
            cached = image >= 0 and image < self.presence.n_images and node < self.presence.n_nodes \
                and bs_test(&self.presence.rows[image], node)
            name = self.names[node]
            running[instance_id] = untracked((instance_id, name, vmtype, image_id, node, cached) + tuple(net))
            launches.append(_record(self.placed, (instance_id, name, vmtype, net, image_id, node, cached)))
            if cached:
                self.use(node, image, now)
        return launches

    def end(self, instance_id, double now):
        """The instance is gone: its record, after capacity, address and image pin are given back."""
        cdef tuple r = self.running.pop(instance_id, None)
        cdef Py_ssize_t node
        if r is None:
            raise KeyError(f"{instance_id} is not running in {self.cluster}")
        node = r[4] if r[4] >= 0 else self.node_index(r[1])
        self.placement.release(node, self.types[r[2]], now)
        self.detach(instance_id)
        if r[5]:
            self.unpin(node, r[3])
        return self._placed(r)

    def add(self, record) -> None:
        """Record an instance as the state store kept it (after a restart); nothing else is taken."""
        cdef object instance_id = record[0]
        if instance_id in self.running:
            raise Conflict(f"{instance_id}: listed twice")
        self.running[instance_id] = untracked((record[0], record[1], record[2], record[4], record[5],
                                               bool(record[6])) + tuple(record[3]))

    def mark_cached(self, instance_id) -> None:
        """The instance now holds a pin on its node's cached image (taken by the caller)."""
        cdef tuple r = self.running[instance_id]
        self.running[instance_id] = untracked(r[:5] + (True,) + r[6:])

    def get(self, instance_id):
        """The instance's record, or None if it is not running."""
        cdef tuple r = self.running.get(instance_id)
        return None if r is None else self._placed(r)

    def records(self) -> list:
        return [self._placed(r) for r in self.running.values()]

    def __contains__(self, instance_id) -> bool:
        return instance_id in self.running

    def __len__(self) -> int:
        return len(self.running)
