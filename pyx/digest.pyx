# cython: language_level=3
"""Image digests for the node's cache: a chunked SHA-256 tree, ``tree-sha256``.

Eucalyptus 1.x/2.0 kept the image's manifest beside each cached file as its "digest" and compared
it byte for byte at launch; that catches a re-registered image but not a cached file whose bytes
went bad on disk. A node here also keeps a content digest of every cached emi/eki/eri file, and a
mismatch purges the file from the cache so the next instance fetches it from Walrus again.

The digest has to be a cryptographic integrity check, stream a multi-gigabyte image in bounded
memory, and use both cores of a node, which one plain SHA-256 cannot (each block depends on the
previous one). So the image is cut into fixed 4 MiB chunks, each chunk is hashed with SHA-256
independently, and the digest is::

    SHA-256( b"euca-tree-sha256\\0" || CHUNK_SIZE as 8-byte big-endian
             || total length as 8-byte big-endian || SHA-256(chunk 0) || SHA-256(chunk 1) || ... )

An empty image has no chunks; the last chunk may be short. Fixing the chunk size and the length in
the header makes the digest depend on the bytes alone, never on how many threads computed it. The
chunks are hashed by OpenSSL's libcrypto (the engine hashlib uses, SHA-NI accelerated), so a core
runs as fast as ``hashlib.sha256`` and two cores nearly twice as fast.

Work proceeds in batches of chunks with the GIL released; the threads of a batch claim chunks one
at a time from a shared counter (so a core that another process is busy on just takes fewer), read
them with ``pread`` into buffers of their own, and between batches the GIL is taken back to fold
the chunk digests into the outer hash and report progress.
"""
import os
import stat

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.errno cimport EINTR, EIO, EISDIR, errno
from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport calloc, free
from libc.string cimport memset
from posix.stdlib cimport posix_memalign
from posix.unistd cimport pread

ALGORITHM = "tree-sha256"
CHUNK_SIZE = 4 * 1024 * 1024

cdef enum:
    _CHUNK = 4 * 1024 * 1024
    _DIGEST = 32
    _PIECE = 256 * 1024
    # At least this many chunks per batch: enough that a batch's stragglers idle a core for a few
    # per cent of the batch, few enough that progress is reported every 128 MiB.
    _BATCH_CHUNKS = 32
    _MAX_THREADS = 64
    # Worker failures other than an errno.
    _SHORT_READ = -1
    _HASH_FAILED = -2

_HEADER_TAG = b"euca-tree-sha256\0"


cdef extern from *:
    int64_t __atomic_fetch_add(int64_t* ptr, int64_t val, int order) nogil
    int __ATOMIC_RELAXED


cdef int _read_fully(int fd, unsigned char* buf, int64_t n, int64_t offset) noexcept nogil:
    cdef int64_t got = 0
    cdef ssize_t r
    while got < n:
        r = pread(fd, buf + got, n - got, offset + got)
        if r < 0:
            if errno == EINTR:
                continue
            return errno if errno else EIO
        if r == 0:
            return _SHORT_READ
        got += r
    return 0


cdef void* run_worker(void* arg) noexcept nogil:
    """Hash chunks of the batch until none is left unclaimed, or this worker fails."""
    cdef worker_t* w = <worker_t*>arg
    cdef batch_t* b = w.batch
    cdef int64_t i, offset, n, done, piece
    while True:
        i = __atomic_fetch_add(&b.next, 1, __ATOMIC_RELAXED)
        if i >= b.end:
            return NULL
        offset = i * _CHUNK
        n = b.total - offset
        if n > _CHUNK:
            n = _CHUNK
        if EVP_DigestInit_ex2(w.ctx, b.md, NULL) != 1:
            w.err = _HASH_FAILED
            return NULL
        if b.fd >= 0:
            # Read in pieces that stay in the core's L2 cache: SHA-256 then reads back what the
            # copy out of the page cache just wrote, instead of fetching 4 MiB from memory again.
            done = 0
            while done < n:
                piece = n - done
                if piece > _PIECE:
                    piece = _PIECE
                w.err = _read_fully(b.fd, w.buf, piece, offset + done)
                if w.err:
                    return NULL
                if EVP_DigestUpdate(w.ctx, w.buf, <size_t>piece) != 1:
                    w.err = _HASH_FAILED
                    return NULL
                done += piece
        elif EVP_DigestUpdate(w.ctx, b.data + offset, <size_t>n) != 1:
            w.err = _HASH_FAILED
            return NULL
        if EVP_DigestFinal_ex(w.ctx, b.digests + (i - b.first) * _DIGEST, NULL) != 1:
            w.err = _HASH_FAILED
            return NULL


cdef void _run_batch(worker_t* workers, int n_workers) noexcept nogil:
    """Run a batch on the calling thread plus ``n_workers - 1`` pthreads."""
    cdef int t
    for t in range(1, n_workers):
        workers[t].started = pthread_create(&workers[t].thread, NULL, run_worker, &workers[t]) == 0
    # A thread that could not be started just leaves its chunks to the others.
    run_worker(&workers[0])
    for t in range(1, n_workers):
        if workers[t].started:
            pthread_join(workers[t].thread, NULL)
            workers[t].started = False


cdef class _Tree:
    """The buffers, OpenSSL contexts and outer hash of one digest computation."""

    cdef batch_t batch
    cdef worker_t* workers
    cdef int n_workers
    cdef EVP_MD* md
    cdef EVP_MD_CTX* outer
    cdef unsigned char* digests
    cdef int64_t batch_chunks

    def __cinit__(self, int threads, int64_t total, int fd, bint buffered):
        cdef int t
        cdef void* p
        cdef int64_t n_chunks = (total + _CHUNK - 1) // _CHUNK
        self.workers = NULL
        self.digests = NULL
        self.outer = NULL
        self.md = EVP_MD_fetch(NULL, b"SHA256", NULL)
        if self.md == NULL:
            raise RuntimeError("OpenSSL's libcrypto offers no SHA256")
        self.outer = EVP_MD_CTX_new()
        if self.outer == NULL:
            raise MemoryError()
        threads = min(threads, _MAX_THREADS)
        self.batch_chunks = max(_BATCH_CHUNKS, 4 * threads)
        # More threads than a batch has chunks (or than the image has) would only sit idle.
        self.n_workers = <int>min(threads, max(1, min(n_chunks, self.batch_chunks)))
        self.workers = <worker_t*>calloc(self.n_workers, sizeof(worker_t))
        self.digests = <unsigned char*>calloc(self.batch_chunks, _DIGEST)
        if self.workers == NULL or self.digests == NULL:
            raise MemoryError()
        memset(&self.batch, 0, sizeof(batch_t))
        self.batch.fd = fd
        self.batch.total = total
        self.batch.digests = self.digests
        self.batch.md = self.md
        for t in range(self.n_workers):
            self.workers[t].batch = &self.batch
            self.workers[t].ctx = EVP_MD_CTX_new()
            if self.workers[t].ctx == NULL:
                raise MemoryError()
            if buffered:
                if posix_memalign(&p, 4096, _PIECE) != 0:
                    raise MemoryError()
                self.workers[t].buf = <unsigned char*>p
        if EVP_DigestInit_ex2(self.outer, self.md, NULL) != 1:
            raise RuntimeError("SHA-256 initialisation failed in libcrypto")
        header = _HEADER_TAG + CHUNK_SIZE.to_bytes(8, "big") + total.to_bytes(8, "big")
        self._fold(header, len(header))

    def __dealloc__(self):
        cdef int t
        if self.workers != NULL:
            for t in range(self.n_workers):
                EVP_MD_CTX_free(self.workers[t].ctx)
                free(self.workers[t].buf)
            free(self.workers)
        free(self.digests)
        EVP_MD_CTX_free(self.outer)
        EVP_MD_free(self.md)

    cdef int _fold(self, const unsigned char* data, size_t n) except -1:
        if EVP_DigestUpdate(self.outer, data, n) != 1:
            raise RuntimeError("SHA-256 update failed in libcrypto")
        return 0

    cdef int run(self, const unsigned char* data, object path, object progress) except -1:
        """Hash every chunk, batch by batch; ``path`` names the file in errors."""
        cdef int64_t total = self.batch.total
        cdef int64_t n_chunks = (total + _CHUNK - 1) // _CHUNK
        cdef int64_t first = 0, end, done
        cdef int t, err
        self.batch.data = data
        if n_chunks == 0 and progress is not None:
            progress(0, 0)
        while first < n_chunks:
            end = min(first + self.batch_chunks, n_chunks)
            self.batch.first = first
            self.batch.end = end
            self.batch.next = first
            with nogil:
                _run_batch(self.workers, self.n_workers)
            for t in range(self.n_workers):
                err = self.workers[t].err
                if err == _SHORT_READ:
                    raise OSError(EIO, "image file shrank while its digest was computed", path)
                if err == _HASH_FAILED:
                    raise RuntimeError("SHA-256 failed in libcrypto")
                if err:
                    raise OSError(err, os.strerror(err), path)
            self._fold(self.digests, <size_t>((end - first) * _DIGEST))
            first = end
            if progress is not None:
                done = min(end * _CHUNK, total)
                progress(done, total)
        return 0

    cdef str hexdigest(self):
        cdef unsigned char out[_DIGEST]
        if EVP_DigestFinal_ex(self.outer, out, NULL) != 1:
            raise RuntimeError("SHA-256 finalisation failed in libcrypto")
        return PyBytes_FromStringAndSize(<char*>out, _DIGEST).hex()


cdef inline int _check_threads(int threads) except -1:
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return 0


def tree_digest_file(path, int threads=2, progress=None) -> str:
    """The ``tree-sha256`` hex digest of a cached image file, hashed by ``threads`` cores.

    ``progress(done_bytes, total_bytes)``, if given, is called with the GIL held after each batch of
    chunks (every 128 MiB or so, and once for an empty file); an exception it raises stops the
    digest. The digest covers the file's size when it starts; a file that shrinks meanwhile raises
    OSError, as do a missing or unreadable file (naming the path) and a directory.
    """
    _check_threads(threads)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(EISDIR, os.strerror(EISDIR), path)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(EIO, "not a regular file", path)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        tree = _Tree(threads, st.st_size, fd, True)
        tree.run(NULL, path, progress)
        return tree.hexdigest()
    finally:
        os.close(fd)


def tree_digest_bytes(data, int threads=1) -> str:
    """The ``tree-sha256`` hex digest of an image held in memory (bytes or a contiguous buffer)."""
    _check_threads(threads)
    cdef const uint8_t[::1] view = memoryview(data).cast("B")
    cdef int64_t n = view.shape[0]
    tree = _Tree(threads, n, -1, False)
    tree.run(&view[0] if n > 0 else NULL, None, None)
    return tree.hexdigest()
