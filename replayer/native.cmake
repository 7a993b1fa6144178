# The real-libc runner: an executable that performs a decoded request sequence (native_ops.h) on
# the real allocator of a fresh process (`fragscope replay --native`, the differential tests).
#
# It defines malloc & co. itself (to see the loader's and libc's own calls), so it must never be
# built with sanitizers, whose runtimes replace the allocator: sanitizers are switched off for
# this target even in the FRAGSCOPE_SANITIZE build. -rdynamic puts the interposing symbols in the
# dynamic symbol table, where ld.so's __rtld_malloc lookup finds them.
add_executable(fragscope-native-runner ${CMAKE_CURRENT_LIST_DIR}/native_runner.c)
target_compile_options(fragscope-native-runner PRIVATE -fno-sanitize=all -fno-builtin-malloc
                       -fno-builtin-calloc -fno-builtin-realloc -fno-builtin-free)
target_link_options(fragscope-native-runner PRIVATE -fno-sanitize=all -rdynamic)
target_link_libraries(fragscope-native-runner PRIVATE Threads::Threads)
