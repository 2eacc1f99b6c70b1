cpdef tuple untracked(tuple t)
