# A two-level bitset: the words, and a summary word per 64 words telling which words are non-zero.
# find-next-set-bit costs one word test plus a scan of the summary (n / 4096 words), so 100,000
# bits take at most 25 summary words. Used for "which nodes can take this VM type" and for the free
# slots of every network pool (pyx.slotpool): VLAN tags, host addresses, public IPs, MAC=IP pairs.
from libc.stdint cimport uint64_t
from libc.stdlib cimport calloc, free, realloc
from libc.string cimport memset


cdef extern from *:
    int __builtin_ctzll(unsigned long long) nogil
    int __builtin_popcountll(unsigned long long) nogil


ctypedef struct bitset_t:
    uint64_t* words
    uint64_t* summary
    Py_ssize_t nbits
    Py_ssize_t nwords
    Py_ssize_t nsummary


cdef inline Py_ssize_t _bs_words_for(Py_ssize_t nbits) noexcept nogil:
    cdef Py_ssize_t n = (nbits + 63) >> 6
    return n if n > 0 else 1


cdef inline int bs_init(bitset_t* b, Py_ssize_t nbits) noexcept nogil:
    """Zeroed bitset of nbits; returns -1 when out of memory."""
    b.nbits = nbits
    b.nwords = _bs_words_for(nbits)
    b.nsummary = _bs_words_for(b.nwords)
    b.words = <uint64_t*>calloc(b.nwords, sizeof(uint64_t))
    b.summary = <uint64_t*>calloc(b.nsummary, sizeof(uint64_t))
    if b.words == NULL or b.summary == NULL:
        return -1
    return 0


cdef inline void bs_free(bitset_t* b) noexcept nogil:
    free(b.words)
    free(b.summary)
    b.words = NULL
    b.summary = NULL
    b.nbits = 0


cdef inline int bs_grow(bitset_t* b, Py_ssize_t nbits) noexcept nogil:
    """Grow to at least nbits, new bits clear; returns -1 when out of memory."""
    cdef Py_ssize_t nw, ns
    cdef uint64_t* w
    cdef uint64_t* s
    if nbits <= b.nbits:
        return 0
    nw = _bs_words_for(nbits)
    ns = _bs_words_for(nw)
    if nw > b.nwords:
        w = <uint64_t*>realloc(b.words, nw * sizeof(uint64_t))
        if w == NULL:
            return -1
        memset(w + b.nwords, 0, (nw - b.nwords) * sizeof(uint64_t))
        b.words = w
        b.nwords = nw
    if ns > b.nsummary:
        s = <uint64_t*>realloc(b.summary, ns * sizeof(uint64_t))
        if s == NULL:
            return -1
        memset(s + b.nsummary, 0, (ns - b.nsummary) * sizeof(uint64_t))
        b.summary = s
        b.nsummary = ns
    b.nbits = nbits
    return 0


cdef inline bint bs_test(const bitset_t* b, Py_ssize_t i) noexcept nogil:
    return (b.words[i >> 6] >> (i & 63)) & 1


cdef inline void bs_set(bitset_t* b, Py_ssize_t i) noexcept nogil:
    cdef Py_ssize_t w = i >> 6
    b.words[w] |= (<uint64_t>1) << (i & 63)
    b.summary[w >> 6] |= (<uint64_t>1) << (w & 63)


cdef inline void bs_clear(bitset_t* b, Py_ssize_t i) noexcept nogil:
    cdef Py_ssize_t w = i >> 6
    b.words[w] &= ~((<uint64_t>1) << (i & 63))
    if b.words[w] == 0:
        b.summary[w >> 6] &= ~((<uint64_t>1) << (w & 63))


cdef inline void bs_assign(bitset_t* b, Py_ssize_t i, bint value) noexcept nogil:
    if value:
        bs_set(b, i)
    else:
        bs_clear(b, i)


cdef inline Py_ssize_t bs_next(const bitset_t* b, Py_ssize_t i) noexcept nogil:
    """The first set bit at or after i, or -1."""
    cdef Py_ssize_t w, s
    cdef uint64_t x
    if i < 0:
        i = 0
    if i >= b.nbits:
        return -1
    w = i >> 6
    x = b.words[w] & ((~(<uint64_t>0)) << (i & 63))
    if x:
        return (w << 6) + __builtin_ctzll(x)
    w += 1
    s = w >> 6
    if s >= b.nsummary:
        return -1
    x = b.summary[s] & ((~(<uint64_t>0)) << (w & 63))
    while True:
        if x:
            w = (s << 6) + __builtin_ctzll(x)
            return (w << 6) + __builtin_ctzll(b.words[w])
        s += 1
        if s >= b.nsummary:
            return -1
        x = b.summary[s]


cdef inline Py_ssize_t bs_count(const bitset_t* b) noexcept nogil:
    cdef Py_ssize_t i, n = 0
    for i in range(b.nwords):
        n += __builtin_popcountll(b.words[i])
    return n


cdef inline void bs_fill(bitset_t* b) noexcept nogil:
    """Set all nbits bits, word by word."""
    cdef Py_ssize_t w, full = b.nbits >> 6, rem = b.nbits & 63
    for w in range(b.nwords):
        b.words[w] = 0
    for w in range(b.nsummary):
        b.summary[w] = 0
    for w in range(full):
        b.words[w] = ~(<uint64_t>0)
    if rem:
        b.words[full] = ((<uint64_t>1) << rem) - 1
    for w in range(b.nwords):
        if b.words[w]:
            b.summary[w >> 6] |= (<uint64_t>1) << (w & 63)


cdef inline Py_ssize_t bs_next_clear(const bitset_t* b, Py_ssize_t i) noexcept nogil:
    """The first clear bit at or after i and below nbits, or -1.

    A plain word scan without the summary: the pools only list what they hold, never search for it
    in a hot loop.
    """
    cdef Py_ssize_t w
    cdef uint64_t x
    if i < 0:
        i = 0
    if i >= b.nbits:
        return -1
    w = i >> 6
    x = ~b.words[w] & ((~(<uint64_t>0)) << (i & 63))
    while True:
        if x:
            i = (w << 6) + __builtin_ctzll(x)
            return i if i < b.nbits else -1
        w += 1
        if w >= b.nwords:
            return -1
        x = ~b.words[w]
