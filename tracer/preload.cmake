# The LD_PRELOAD recorder and `fragscope record`.
target_sources(fs_trace PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/record_cli.c)
add_library(fragscope-trace SHARED preload.c)
