/* trace_format.h: the fragscope trace, as data and as bytes.
 *
 * This header is the contract between the tracer (which writes traces), the replayer and the
 * analyzer (which read them). The byte layout is documented in FORMAT.md beside this file; the
 * structs here are the decoded, in-memory view of it.
 *
 * A trace is a header followed by independently zlib-compressed blocks. Each block holds the
 * events of one thread, varint/delta-encoded. Every event carries a global sequence number;
 * the reader merges the threads' blocks back into that one global order, in which the free of
 * a pointer always precedes any later allocation that returns the same address.
 *
 * Sequence numbers come from one counter per process and are dense (no number is skipped): the
 * reader delivers seq N as soon as it has read the block holding it, so it only looks ahead as
 * far as the writer let a thread's buffer lag behind (see FORMAT.md, "Merging").
 *
 * Nothing in the encoder allocates from the C heap: callers hand it their own (mmap'd) buffers,
 * and zlib runs with the allocation functions the caller supplies. The reader may use malloc.
 */
#ifndef FRAGSCOPE_TRACE_FORMAT_H
#define FRAGSCOPE_TRACE_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define TRACE_MAGIC "FRAGSCP1"          /* 8 bytes at offset 0 */
#define TRACE_VERSION 4               /* readers also take versions 1 to 3 */
#define TRACE_MAX_STACK_DEPTH 128

enum trace_event_kind {
    TRACE_EV_MALLOC = 1,        /* size -> ptr */
    TRACE_EV_CALLOC,            /* nmemb, size -> ptr */
    TRACE_EV_REALLOC,           /* old_ptr, size -> ptr */
    TRACE_EV_REALLOCARRAY,      /* old_ptr, nmemb, size -> ptr */
    TRACE_EV_FREE,              /* ptr */
    TRACE_EV_MEMALIGN,          /* alignment, size -> ptr */
    TRACE_EV_POSIX_MEMALIGN,    /* alignment, size -> ptr, result (0 or an errno value) */
    TRACE_EV_ALIGNED_ALLOC,     /* alignment, size -> ptr */
    TRACE_EV_VALLOC,            /* size -> ptr */
    TRACE_EV_PVALLOC,           /* size -> ptr */
    TRACE_EV_MALLOPT,           /* param, value -> result */
    TRACE_EV_MALLOC_TRIM,       /* size (the pad) -> result */
    TRACE_EV_THREAD_START,      /* thread (new index), os_tid; parent_thread in `value` */
    TRACE_EV_THREAD_EXIT,       /* thread */
    TRACE_EV_FORK,              /* child_pid in `value` (in the parent's stream) */
    TRACE_EV_MODULE,            /* module: see struct trace_module (reader: trace_reader_module) */
    TRACE_EV_SAMPLE,            /* sample: see struct trace_sample (in ev->sample) */
    TRACE_EV_KIND_COUNT
};

/* Which heap a returned pointer came from, as the tracer saw it in the real chunk header. */
#define TRACE_CHUNK_PREV_INUSE 0x1
#define TRACE_CHUNK_MMAPPED 0x2
#define TRACE_CHUNK_NON_MAIN_ARENA 0x4

/* A periodic sample of the real process. */
struct trace_sample {
    uint64_t rss_pages;            /* /proc/self/statm, resident */
    uint64_t heap_resident_pages;  /* mincore over [heap_start, brk) */
    uint64_t brk;                  /* sbrk(0) at the sample */
    /* mallinfo2 */
    uint64_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};

/* One decoded event. Fields that a kind does not use are 0. */
struct trace_event {
    uint64_t seq;            /* global order, strictly increasing in the merged stream */
    uint64_t time_ns;        /* since the trace's start_time */
    uint32_t thread;         /* dense thread index: 0 = the main thread */
    uint32_t stack_id;       /* 0 = no stack; see trace_reader_stack */
    uint8_t kind;            /* enum trace_event_kind */
    uint8_t chunk_flags;     /* low 3 bits of the returned chunk's size field (TRACE_CHUNK_*) */
    int32_t err;             /* errno when an allocation failed (ptr == 0) */
    uint64_t size;           /* request size; malloc_trim pad */
    uint64_t nmemb;          /* calloc / reallocarray */
    uint64_t alignment;      /* memalign family */
    uint64_t old_ptr;        /* realloc / reallocarray input */
    uint64_t ptr;            /* returned pointer (0 = NULL), or the pointer freed */
    int64_t param;           /* mallopt param */
    int64_t value;           /* mallopt value; fork child pid; thread start: parent thread */
    int64_t result;          /* mallopt / malloc_trim / posix_memalign return value */
    uint64_t os_tid;         /* thread start: the kernel's tid */
    struct trace_sample sample; /* TRACE_EV_SAMPLE */
};

/* A loaded module, for symbolising stacks. */
struct trace_module {
    uint64_t load_address;
    uint64_t size;
    char path[512];
    uint8_t build_id[20];
    uint8_t build_id_len;
};

/* The file header. Strings are NUL-terminated; the reader owns them. */
struct trace_header {
    uint32_t version;
    int32_t pid, ppid;
    uint64_t start_time_ns;      /* CLOCK_REALTIME at start */
    uint64_t heap_start;         /* sbrk(0) before the first allocation */
    uint32_t page_size;
    uint32_t cpu_count;          /* what glibc's arena limit sees (get_nprocs) */
    uint8_t is_static;           /* statically linked program */
    uint8_t stacks;              /* stacks recorded */
    uint16_t stack_depth;
    int32_t parent_pid;          /* fork child: the parent's pid, else 0 */
    uint64_t fork_seq;           /* fork child: the fork's seq in the parent's stream */
    char glibc_version[32];
    char exe[4096];
    char *argv;                  /* arguments joined by '\n' */
    char *malloc_env;            /* GLIBC_TUNABLES=... and MALLOC_*=... joined by '\n' */
    /* ---- additions ---- */
    uint64_t first_seq;          /* seq of the trace's first event (0 for a fresh process; a fork
                                    child: the first number its counter hands out) */
};

/* ---- Encoding (used by the tracer; allocation-free) ---- */

/* Per-thread delta state: reset at the start of every block (memset to 0, or
 * trace_encode_state_reset). Treat the fields as private to the encoder. */
#define TRACE_RECENT_PTRS 32
#define TRACE_FREED_PTRS 32
#define TRACE_TIME_SLOTS 256
struct trace_encode_state {
    uint64_t last_seq, last_time_ns, last_ptr;
    /* ---- additions ---- */
    uint64_t recent[TRACE_RECENT_PTRS]; /* live pointers most recently returned, newest first */
    uint64_t freed[TRACE_FREED_PTRS];   /* pointers most recently freed, newest first */
    uint32_t recent_count, freed_count;
    uint32_t last_stack;
    /* The time since the previous event, the last time each stack (hashed) was seen: a call
     * site's time delta is predicted from its previous one. */
    uint32_t time_stack[TRACE_TIME_SLOTS];
    uint64_t time_delta[TRACE_TIME_SLOTS];
    /* ---- additions: version-2 blocks (BLK3) name pointers by how many allocations or frees
     * ago they were returned or freed. ring: the pointers of the last ring_mask + 1
     * allocations, then of the last ring_mask + 1 frees (memory the decoder provides); NULL for
     * BLK1 and BLK2 blocks, which use the lists above. */
    uint64_t *ring;
    uint64_t ring_mask;
    uint64_t allocs, frees;
    uint32_t last_free_stack;            /* BLK3: the stack of the last free */
    /* ---- additions ---- */
    uint32_t version;                    /* BLK3: the file's format version; from 4 a live
                                            pointer is named by its rank among the live
                                            allocations of the window */
};
static inline void trace_encode_state_reset(struct trace_encode_state *st)
{
    *st = (struct trace_encode_state){0};
}

/* Upper bound of the bytes one event takes once encoded (stacks are encoded separately). */
#define TRACE_EVENT_MAX_BYTES 256

/* Encodes `ev` into `out` (at least TRACE_EVENT_MAX_BYTES), returns the bytes written. */
size_t trace_encode_event(uint8_t *out, const struct trace_event *ev, struct trace_encode_state *st);

/* Encodes the definition of stack `id` (frames: return addresses, innermost first).
 * Returns the bytes written, 0 if cap is too small (TRACE_STACK_MAX_BYTES always suffices);
 * a depth above TRACE_MAX_STACK_DEPTH is cut to it. A stack must be defined in the same block
 * before its first use, or in an earlier block of the file; defining it again (e.g. once per
 * thread) is allowed if the frames are the same. */
size_t trace_encode_stack(uint8_t *out, size_t cap, uint32_t id, const uint64_t *frames, unsigned depth);
#define TRACE_STACK_MAX_BYTES (16 + 9 * TRACE_MAX_STACK_DEPTH)

/* Encodes a module record (returns 0 if cap is too small; TRACE_MODULE_MAX_BYTES suffices). */
size_t trace_encode_module(uint8_t *out, size_t cap, const struct trace_module *m);
#define TRACE_MODULE_MAX_BYTES 600

/* Encodes the file header into out; returns bytes, or 0 if cap is too small.
 * trace_header_bound(h) is enough (it grows with argv and malloc_env). */
size_t trace_encode_header(uint8_t *out, size_t cap, const struct trace_header *h);
size_t trace_header_bound(const struct trace_header *h);

/* Encodes the end marker written at a clean close: `blocks` = number of blocks in the file,
 * `next_seq` = one past the last seq handed out (0 = not known). Returns
 * TRACE_END_BYTES, or 0 if cap is too small. */
size_t trace_encode_end(uint8_t *out, size_t cap, uint64_t blocks, uint64_t next_seq);
#define TRACE_END_BYTES 28

/* A block's uncompressed records may not exceed this (the reader rejects larger blocks). */
#define TRACE_BLOCK_MAX_RAW (16u << 20)

/* Allocation functions zlib uses while sealing a block (never the traced heap). */
struct trace_zalloc {
    void *(*alloc)(void *opaque, unsigned items, unsigned size);
    void (*free)(void *opaque, void *addr);
    void *opaque;
};

/* Compresses `raw` (the concatenated encoded records of one thread) into a complete block with
 * its framing (length, CRC, thread, first seq) in `out`. Returns bytes written, 0 on error.
 * `out_cap` should be at least trace_block_bound(raw_len). first_seq/last_seq are the seqs of
 * the block's first and last event (the reader checks them; 0, 0 for a block without events).
 * Compresses at zlib level 1; zlib's memory comes from `za` only (NULL is an error). */
size_t trace_block_seal(uint8_t *out, size_t out_cap, const uint8_t *raw, size_t raw_len,
                        uint32_t thread, uint64_t first_seq, uint64_t last_seq,
                        const struct trace_zalloc *za);
size_t trace_block_bound(size_t raw_len);

/* trace_block_seal with another zlib level (0-9) and strategy (Z_DEFAULT_STRATEGY,
 * Z_HUFFMAN_ONLY, ...). Both split the records into columns when `za` can also lend a scratch
 * buffer of raw_len + 20 bytes after zlib's own state (the file is then about a third smaller;
 * FORMAT.md, BLK2), and otherwise write them as rows (BLK1). */
size_t trace_block_seal_level(uint8_t *out, size_t out_cap, const uint8_t *raw, size_t raw_len,
                              uint32_t thread, uint64_t first_seq, uint64_t last_seq,
                              const struct trace_zalloc *za, int level, int strategy);

/* ---- Version-2 blocks (BLK3): the recorder's and the file writer's encoder ----
 * Encodes a thread's events straight into the columns of a BLK3 block (pointers named by how
 * many allocations or frees ago they were seen, FORMAT.md) and seals them, each column coded on
 * its own (zlib's deflate by default): several times cheaper than trace_encode_event +
 * trace_block_seal, and smaller.
 * Allocation-free: the caller provides trace_block_encoder_size(column_cap) bytes (aligned to
 * 64); every column holds column_cap bytes, so a block whose raw size stays below column_cap
 * never runs out of room. */
struct trace_block_encoder;
size_t trace_block_encoder_size(size_t column_cap);
struct trace_block_encoder *trace_block_encoder_init(void *mem, size_t column_cap);
/* Starts a new block of `thread` (also done by _init, for thread 0, and by _seal). */
void trace_block_encoder_begin(struct trace_block_encoder *e, uint32_t thread);
/* Append to the block. 0 = done, -1 = no room left (seal first). */
int trace_block_encoder_event(struct trace_block_encoder *e, const struct trace_event *ev);
int trace_block_encoder_stack(struct trace_block_encoder *e, uint32_t id, const uint64_t *frames,
                              unsigned depth);
int trace_block_encoder_module(struct trace_block_encoder *e, const struct trace_module *m);
/* The common calls without a struct trace_event: malloc, valloc, pvalloc (size), calloc (nmemb,
 * size), realloc (old_ptr, size), free (ptr), all without errno. 0 = done, -1 = no room,
 * -2 = not in this shape (use trace_block_encoder_event). */
int trace_block_encoder_call(struct trace_block_encoder *e, unsigned kind, unsigned chunk_flags,
                             uint32_t stack_id, uint64_t seq, uint64_t time_ns, uint64_t nmemb,
                             uint64_t size, uint64_t old_ptr, uint64_t ptr);
/* trace_block_encoder_call for a malloc, and for a free: the same bytes, fewer instructions. */
int trace_block_encoder_malloc(struct trace_block_encoder *e, unsigned chunk_flags,
                               uint32_t stack_id, uint64_t seq, uint64_t time_ns, uint64_t size,
                               uint64_t ptr);
int trace_block_encoder_free(struct trace_block_encoder *e, unsigned chunk_flags,
                             uint32_t stack_id, uint64_t seq, uint64_t time_ns, uint64_t ptr);
/* How sealing codes the columns (FORMAT.md, "Coded columns"): zlib's deflate (format version
 * 3), our rANS/Huffman coder, or stored. */
enum { TRACE_BLOCK_ZLIB = 1, TRACE_BLOCK_RANS = 2, TRACE_BLOCK_STORED = 3 };
#define TRACE_BLOCK_DEFAULT TRACE_BLOCK_ZLIB
void trace_block_encoder_method(struct trace_block_encoder *e, int method);
/* stored = 1: seal the columns as they are (TRACE_BLOCK_STORED); 0: the default method. */
void trace_block_encoder_store(struct trace_block_encoder *e, int stored);
size_t trace_block_encoder_raw(const struct trace_block_encoder *e);     /* raw bytes so far */
uint64_t trace_block_encoder_events(const struct trace_block_encoder *e);
uint32_t trace_block_encoder_thread(const struct trace_block_encoder *e);
/* Upper bound of the sealed block's size, and sealing it: a complete BLK3 frame in out.
 * Returns the bytes written (0 if out_cap is too small, or the block is empty: nothing to
 * write); then the encoder starts the next block of the same thread. */
size_t trace_block_encoder_bound(const struct trace_block_encoder *e);
size_t trace_block_encoder_seal(struct trace_block_encoder *e, uint8_t *out, size_t out_cap);

/* ---- Reading (used by replayer, analyzer, dump; may allocate) ---- */

struct trace_reader;

/* Opens a trace. On error returns NULL and writes a message naming the file to err. */
struct trace_reader *trace_reader_open(const char *path, char *err, size_t errlen);
const struct trace_header *trace_reader_header(const struct trace_reader *r);

/* Next event in global order: 1 = an event, 0 = end of the readable trace, -1 = error.
 * At 0 or -1, trace_reader_status tells whether the file ended cleanly or where and why
 * reading stopped (a truncated or damaged block: offset and reason). 0 also ends a file that is
 * merely cut short (no end marker, or a last block the file ends inside of); -1 means damaged
 * bytes (CRC, framing or encoding errors, I/O errors). Either way every event of every whole good
 * block before the stopping point has been delivered first. */
int trace_reader_next(struct trace_reader *r, struct trace_event *ev);

/* Frames of a stack seen so far (stacks are defined in the stream before their first use).
 * Returns the depth, 0 if unknown. *frames stays valid until trace_reader_close. */
unsigned trace_reader_stack(struct trace_reader *r, uint32_t stack_id, const uint64_t **frames);

/* Modules seen so far. */
size_t trace_reader_module_count(const struct trace_reader *r);
const struct trace_module *trace_reader_module(const struct trace_reader *r, size_t i);

struct trace_reader_status {
    int clean_end;          /* the file ended with its end marker */
    uint64_t stop_offset;   /* offset of the first byte not read */
    char reason[256];       /* why reading stopped, when not clean */
    uint64_t blocks, events;
    /* ---- additions ---- */
    int damaged;            /* stopped at a damaged block (trace_reader_next returned -1),
                               as opposed to a file that is merely cut short */
    uint64_t seq_gaps;      /* places where the merged stream skipped sequence numbers */
    uint64_t file_bytes;    /* bytes of the file read so far */
};
void trace_reader_status(const struct trace_reader *r, struct trace_reader_status *st);

void trace_reader_close(struct trace_reader *r);

/* ---- additions (reading) ---- */

/* Distinct stacks defined so far. */
size_t trace_reader_stack_count(const struct trace_reader *r);

/* The module whose [load_address, load_address + size) holds addr, or NULL. */
const struct trace_module *trace_reader_module_at(const struct trace_reader *r, uint64_t addr);

/* How many bytes of decoded blocks the merge may hold while it looks for the next seq
 * (default TRACE_READER_LOOKAHEAD). When the window is full and the next seq has not been
 * found, the reader delivers the smallest seq it has and counts a gap. */
#define TRACE_READER_LOOKAHEAD (64u << 20)
void trace_reader_set_lookahead(struct trace_reader *r, size_t bytes);

/* ---- A simple trace file writer for tools and tests (may allocate; not for the recorder) ----
 * Buffers each thread's records, seals a thread's block when it reaches the block size, and
 * seals every thread's block every `flush_every` events, as the recorder does. */
struct trace_file_writer;
/* Creates `path` (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600; force: first remove an existing regular
 * file, never a symlink) and writes the header. NULL and a message naming the file on error. */
struct trace_file_writer *trace_file_writer_open(const char *path, int force,
                                                 const struct trace_header *h,
                                                 char *err, size_t errlen);
void trace_file_writer_set_block_size(struct trace_file_writer *w, size_t raw_bytes,
                                      uint64_t flush_every);
/* How blocks from now on code their columns: TRACE_BLOCK_ZLIB (the default), _RANS, _STORED. */
void trace_file_writer_set_method(struct trace_file_writer *w, int method);
/* ev->thread picks the thread's stream. 0 on success, -1 on error (see _close). */
int trace_file_writer_event(struct trace_file_writer *w, const struct trace_event *ev);
int trace_file_writer_stack(struct trace_file_writer *w, uint32_t thread, uint32_t id,
                            const uint64_t *frames, unsigned depth);
int trace_file_writer_module(struct trace_file_writer *w, uint32_t thread,
                             const struct trace_module *m);
/* Seals every thread's pending block. */
int trace_file_writer_flush(struct trace_file_writer *w);
/* Flushes, writes the end marker, closes. Returns 0, or -1 with the first error in err. */
int trace_file_writer_close(struct trace_file_writer *w, char *err, size_t errlen);
/* Closes without flushing or an end marker (what a killed process leaves). */
void trace_file_writer_abandon(struct trace_file_writer *w);
uint64_t trace_file_writer_bytes(const struct trace_file_writer *w);

const char *trace_event_kind_name(unsigned kind);

#endif
