# Shared C types of the hot paths.
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t

# A resource amount: cores, memory in MB or disk in GB.
ctypedef int64_t res_t
# A node's position in the cluster's NODES order.
ctypedef int32_t node_t
ctypedef uint64_t word_t
