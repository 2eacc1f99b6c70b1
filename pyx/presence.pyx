# cython: language_level=3
"""The node x image presence map: which nodes' image caches hold which images.

The CACHEAWARE placement policy reads it (a bitset over nodes per image) to prefer nodes that can
start an instance without fetching its image from Walrus. Images and nodes are dense integers;
the cluster controller maps ``emi-``/``eki-``/``eri-`` ids and node names onto them.
"""
from libc.stdlib cimport free, realloc

from pyx.bitset cimport bitset_t, bs_assign, bs_count, bs_free, bs_grow, bs_init, bs_next, bs_test


cdef class PresenceMap:
    def __cinit__(self, Py_ssize_t n_nodes=0, Py_ssize_t n_images=0):
        self.rows = NULL
        self.n_images = 0
        self.n_nodes = 0
        if n_nodes < 0 or n_images < 0:
            raise ValueError("n_nodes and n_images must be >= 0")
        if n_nodes or n_images:
            self._ensure(n_nodes - 1 if n_nodes else 0, n_images - 1 if n_images else -1)

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.rows != NULL:
            for i in range(self.n_images):
                bs_free(&self.rows[i])
            free(self.rows)

    cdef int _ensure(self, Py_ssize_t node, Py_ssize_t image) except -1:
        cdef Py_ssize_t i, n_nodes = max(self.n_nodes, node + 1)
        cdef bitset_t* rows
        if image >= self.n_images:
            rows = <bitset_t*>realloc(self.rows, (image + 1) * sizeof(bitset_t))
            if rows == NULL:
                raise MemoryError()
            self.rows = rows
            for i in range(self.n_images, image + 1):
                if bs_init(&self.rows[i], n_nodes) != 0:
                    self.n_images = i
                    raise MemoryError()
            self.n_images = image + 1
        if n_nodes > self.n_nodes:
            for i in range(self.n_images):
                if bs_grow(&self.rows[i], n_nodes) != 0:
                    raise MemoryError()
            self.n_nodes = n_nodes
        return 0

    @property
    def shape(self) -> tuple[int, int]:
        """(nodes, images) currently tracked."""
        return (self.n_nodes, self.n_images)

    def set(self, Py_ssize_t node, Py_ssize_t image, bint present) -> None:
        """Record that the node's cache now holds (or no longer holds) the image."""
        if node < 0 or image < 0:
            raise IndexError("node and image must be >= 0")
        self._ensure(node, image)
        bs_assign(&self.rows[image], node, present)

    def has(self, Py_ssize_t node, Py_ssize_t image) -> bool:
        if node < 0 or image < 0 or node >= self.n_nodes or image >= self.n_images:
            return False
        return bs_test(&self.rows[image], node)

    def count(self, Py_ssize_t image) -> int:
        """How many nodes hold the image."""
        if image < 0 or image >= self.n_images:
            return 0
        return bs_count(&self.rows[image])

    def nodes_with(self, Py_ssize_t image) -> list[int]:
        """The nodes holding the image, in NODES order."""
        cdef list out = []
        cdef Py_ssize_t i
        if image < 0 or image >= self.n_images:
            return out
        i = bs_next(&self.rows[image], 0)
        while i >= 0:
            out.append(i)
            i = bs_next(&self.rows[image], i + 1)
        return out

    def drop_node(self, Py_ssize_t node) -> None:
        """Forget everything the node held (its cache was wiped, or it left the cluster)."""
        cdef Py_ssize_t i
        if node < 0 or node >= self.n_nodes:
            return
        for i in range(self.n_images):
            bs_assign(&self.rows[i], node, False)
