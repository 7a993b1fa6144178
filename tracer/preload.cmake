# The LD_PRELOAD recorder (libfragscope-trace.so) and `fragscope record` (record_cli.c, part of
# fs_trace). The recorder runs inside uninstrumented programs, so it is never built with the
# sanitizers, and it compiles its own copy of the allocation-free encoder.
target_sources(fs_trace PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/record_cli.c)

add_library(fragscope-trace SHARED
  ${CMAKE_CURRENT_SOURCE_DIR}/preload.c
  ${CMAKE_CURRENT_SOURCE_DIR}/thread_buffer.c
  ${CMAKE_CURRENT_SOURCE_DIR}/mmap_pool.c
  ${CMAKE_CURRENT_SOURCE_DIR}/stacks.c
  ${CMAKE_CURRENT_SOURCE_DIR}/modules.c
  ${CMAKE_CURRENT_SOURCE_DIR}/flush.c
  ${CMAKE_CURRENT_SOURCE_DIR}/call_order.c
  ${CMAKE_CURRENT_SOURCE_DIR}/block_writer.c
  ${CMAKE_CURRENT_SOURCE_DIR}/output_file.c
  ${CMAKE_CURRENT_SOURCE_DIR}/trace_encode.c
  ${CMAKE_CURRENT_SOURCE_DIR}/trace_block_encoder.c
  ${CMAKE_CURRENT_SOURCE_DIR}/column_coder.c
  ${CMAKE_CURRENT_SOURCE_DIR}/huffman_code.c
  ${CMAKE_CURRENT_SOURCE_DIR}/deflate_literals.c)
get_target_property(fs_preload_opts fragscope-trace COMPILE_OPTIONS)
if(fs_preload_opts)
  list(FILTER fs_preload_opts EXCLUDE REGEX "sanitize")
  set_target_properties(fragscope-trace PROPERTIES COMPILE_OPTIONS "${fs_preload_opts}")
endif()
get_target_property(fs_preload_link fragscope-trace LINK_OPTIONS)
if(fs_preload_link)
  list(FILTER fs_preload_link EXCLUDE REGEX "sanitize")
  set_target_properties(fragscope-trace PROPERTIES LINK_OPTIONS "${fs_preload_link}")
endif()
# Optimised even in Debug builds: the hooks sit on every malloc of the traced program.
target_compile_options(fragscope-trace PRIVATE -O2 -fvisibility=hidden -fno-stack-protector
                       -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc
                       -fno-builtin-realloc -ftls-model=initial-exec)
target_include_directories(fragscope-trace PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(fragscope-trace PRIVATE PkgConfig::ZLIB PkgConfig::LIBUNWIND ${CMAKE_DL_LIBS})
target_link_options(fragscope-trace PRIVATE -Wl,-z,nodelete -Wl,--no-undefined)
set_target_properties(fragscope-trace PROPERTIES C_VISIBILITY_PRESET hidden)
# `fragscope record` looks for the library next to the fragscope binary.
set_target_properties(fragscope-trace PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
