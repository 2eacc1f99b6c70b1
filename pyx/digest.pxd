from libc.stdint cimport int64_t


cdef extern from "<openssl/evp.h>" nogil:
    ctypedef struct EVP_MD:
        pass
    ctypedef struct EVP_MD_CTX:
        pass
    EVP_MD* EVP_MD_fetch(void* libctx, const char* algorithm, const char* properties)
    void EVP_MD_free(EVP_MD* md)
    EVP_MD_CTX* EVP_MD_CTX_new()
    void EVP_MD_CTX_free(EVP_MD_CTX* ctx)
    int EVP_DigestInit_ex2(EVP_MD_CTX* ctx, const EVP_MD* md, const void* params)
    int EVP_DigestUpdate(EVP_MD_CTX* ctx, const void* data, size_t count)
    int EVP_DigestFinal_ex(EVP_MD_CTX* ctx, unsigned char* out, unsigned int* size)


cdef extern from "<pthread.h>" nogil:
    ctypedef unsigned long pthread_t
    int pthread_create(pthread_t* thread, const void* attr, void* (*start)(void*) noexcept nogil, void* arg)
    int pthread_join(pthread_t thread, void** result)


# One batch of chunks, hashed by several workers that claim chunk numbers from ``next``.
ctypedef struct batch_t:
    int fd                       # the image file, or -1 when hashing ``data`` in memory
    const unsigned char* data
    int64_t total                # bytes in the whole image, fixed when digesting starts
    int64_t first                # chunk numbers [first, end) belong to this batch
    int64_t end
    int64_t next                 # the next unclaimed chunk; only touched atomically
    unsigned char* digests       # 32 bytes per chunk of the batch, in chunk order
    const EVP_MD* md


ctypedef struct worker_t:
    batch_t* batch
    unsigned char* buf           # a piece of a chunk read with pread; NULL for in-memory data
    EVP_MD_CTX* ctx
    int err                      # errno of a failed read, SHORT_READ, or HASH_FAILED
    pthread_t thread
    bint started


cdef void* run_worker(void* arg) noexcept nogil
