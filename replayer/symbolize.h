/* symbolize.h: return addresses of a trace's stacks to function and file:line.
 *
 * Shared by the replayer (call sites of unknown frees in the summary) and the analyzer (the
 * sites of its reports): dependencies run CLI -> analyzer -> replayer, so it lives here. Each
 * frame is mapped to the module that contains it (the trace's module records, as the reader has
 * them so far), named module+0xoffset, then the frames of each module go to one
 * `addr2line -f -C -e MODULE` process in batches (return address minus one, so that the line is
 * the call's). A frame whose module cannot be read, or has no debug information, keeps the
 * module+0xoffset name and an empty location.
 */
#ifndef FRAGSCOPE_SYMBOLIZE_H
#define FRAGSCOPE_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>
#include "../tracer/trace_format.h"

struct sym_frame {
    uint64_t address;        /* the return address as recorded */
    int module;              /* index in the trace's modules, -1 = none */
    char where[96];          /* "module+0xoffset", or "0xaddress" outside every module */
    char function[160];      /* the function (demangled), or `where` when unknown */
    char location[200];      /* "file:line", or "" when unknown */
};

/* Fills module and where of frames[0..n) (each .address set by the caller), function = where,
 * location = "": no process is run. */
void symbolize_modules(struct trace_reader *r, struct sym_frame *const *frames, size_t n);

/* symbolize_modules, then function and location from addr2line where it knows them.
 * skip_uninteresting: no addr2line for the modules symbolize_uninteresting names. Never fails:
 * what cannot be resolved keeps module+0xoffset. */
void symbolize_frames(struct trace_reader *r, struct sym_frame *const *frames, size_t n,
                      int skip_uninteresting);

/* The modules a call site is not in: libc, the dynamic loader, libstdc++ and fragscope's own
 * recorder (the frames between the program's call and the allocator). */
int symbolize_uninteresting(const char *module_path);

/* The innermost of frames[0..depth) outside the uninteresting modules (0 if all are). */
unsigned symbolize_pick(struct trace_reader *r, const struct sym_frame *frames, unsigned depth);

#endif
