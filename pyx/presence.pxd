from pyx.bitset cimport bitset_t


cdef class PresenceMap:
    # rows[image] is a bitset over nodes: which nodes' caches hold the image.
    cdef bitset_t* rows
    cdef Py_ssize_t n_images
    cdef Py_ssize_t n_nodes
    cdef int _ensure(self, Py_ssize_t node, Py_ssize_t image) except -1
    cdef inline const bitset_t* row(self, Py_ssize_t image) noexcept nogil:
        if image < 0 or image >= self.n_images:
            return NULL
        return &self.rows[image]
