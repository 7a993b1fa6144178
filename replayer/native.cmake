# The real-libc runner: an executable that performs a decoded request sequence on the real allocator.
