/* heapstat.c: measures this process's real heap without calling malloc (see heapstat.h).
 *
 * /proc/self/smaps is read through a static buffer, one line at a time: a mapping's header line
 * starts with a lowercase hex address, its fields ("Rss:   132 kB") with an uppercase letter.
 * The [heap] mapping is the main arena; glibc's other arenas live in heaps it maps aligned to
 * HEAP_MAX_SIZE (64 MiB on x86_64) and reserve whole: an arena heap is an anonymous read-write
 * mapping starting on a 64 MiB boundary that is either 64 MiB long or followed by the PROT_NONE
 * rest of its reservation, ending exactly 64 MiB after its start. (Other large anonymous
 * mappings, such as a recorder's buffers, can start on such a boundary by chance; they are not
 * followed by that reservation. Thread stacks start with a guard page and never match.) */
#include "heapstat.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARENA_HEAP_ALIGN (64ull << 20)

static uintptr_t initial_brk;

void heapstat_init(void)
{
    initial_brk = (uintptr_t)sbrk(0);
}

void heapstat_write(int fd, const char *s)
{
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t n = write(fd, s, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        s += n;
        len -= (size_t)n;
    }
}

/* One line of smaps that starts a mapping: "lo-hi perms offset dev inode [path]". */
struct mapping {
    uint64_t start, end;
    int anonymous;             /* inode 0 and no path */
    int heap;                  /* the [heap] mapping */
    char perms[5];
};

static int parse_mapping(const char *line, struct mapping *m)
{
    char *end;
    memset(m, 0, sizeof *m);
    m->start = strtoull(line, &end, 16);
    if (*end != '-')
        return 0;
    m->end = strtoull(end + 1, &end, 16);
    const char *p = end;
    int field = 1;
    unsigned long long inode = 0;
    const char *path = NULL;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        field++;
        if (field == 2)
            memcpy(m->perms, p, 4);
        if (field == 5)
            inode = strtoull(p, NULL, 10);
        if (field == 6) {
            path = p;
            break;
        }
        while (*p && *p != ' ')
            p++;
    }
    m->heap = path && !strncmp(path, "[heap]", 6);
    m->anonymous = !path && inode == 0;
    return 1;
}

/* Could this mapping be the read-write part of a non-main arena heap? */
static int arena_heap_candidate(const struct mapping *m)
{
    return m->anonymous && !strcmp(m->perms, "rw-p") && m->start % ARENA_HEAP_ALIGN == 0 &&
           m->end - m->start <= ARENA_HEAP_ALIGN;
}

/* Reads smaps: the [heap] start and Rss, and the arena heaps' count and Rss. */
static void read_smaps(struct heapstat *hs, uint64_t *heap_start)
{
    static char buf[65536];
    static char line[4096];
    size_t line_len = 0;
    struct mapping cur = {0}, candidate = {0};
    int have_cur = 0, have_candidate = 0;
    uint64_t cur_rss = 0, candidate_rss = 0;
    int fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                if (line_len + 1 < sizeof line)
                    line[line_len++] = buf[i];
                continue;
            }
            line[line_len] = '\0';
            line_len = 0;
            int is_header = (line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f');
            if (!is_header) {
                if (have_cur && !strncmp(line, "Rss:", 4))
                    cur_rss = strtoull(line + 4, NULL, 10) * 1024;
                continue;
            }
            /* The previous mapping is complete: account for it. */
            if (have_cur) {
                if (cur.heap) {
                    *heap_start = cur.start;
                    hs->heap_rss += cur_rss;
                }
                if (arena_heap_candidate(&cur)) {
                    candidate = cur;
                    candidate_rss = cur_rss;
                    have_candidate = 1;
                    if (cur.end - cur.start == ARENA_HEAP_ALIGN) {
                        hs->nonmain_heaps++;
                        hs->nonmain_rss += cur_rss;
                        have_candidate = 0;
                    }
                }
            }
            have_cur = parse_mapping(line, &cur);
            cur_rss = 0;
            /* A candidate followed by the PROT_NONE rest of its 64 MiB is an arena heap. */
            if (have_candidate && have_cur && !(cur.heap) && cur.start == candidate.end) {
                if (cur.anonymous && !strcmp(cur.perms, "---p") &&
                    cur.end == candidate.start + ARENA_HEAP_ALIGN) {
                    hs->nonmain_heaps++;
                    hs->nonmain_rss += candidate_rss;
                }
            }
            if (have_candidate && (!have_cur || cur.start != candidate.start))
                have_candidate = 0;
        }
    }
    if (have_cur && cur.heap) {
        *heap_start = cur.start;
        hs->heap_rss += cur_rss;
    }
    close(fd);
}

static uint64_t read_statm_resident(void)
{
    char buf[256];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *p;
    strtoull(buf, &p, 10);                    /* size */
    return strtoull(p, NULL, 10) * (uint64_t)sysconf(_SC_PAGESIZE);
}

void heapstat_take(struct heapstat *hs)
{
    memset(hs, 0, sizeof *hs);
    uint64_t heap_start = initial_brk;
    read_smaps(hs, &heap_start);
    uintptr_t brk_now = (uintptr_t)sbrk(0);
    hs->brk_offset = brk_now >= heap_start ? brk_now - heap_start : 0;
    hs->rss = read_statm_resident();
    struct mallinfo2 mi = mallinfo2();
    hs->arena = mi.arena;
    hs->ordblks = mi.ordblks;
    hs->smblks = mi.smblks;
    hs->hblks = mi.hblks;
    hs->hblkhd = mi.hblkhd;
    hs->fsmblks = mi.fsmblks;
    hs->uordblks = mi.uordblks;
    hs->fordblks = mi.fordblks;
    hs->keepcost = mi.keepcost;
}

void heapstat_print(const char *prog, const char *phase, const struct heapstat *hs)
{
    char line[1024];
    snprintf(line, sizeof line,
             "%s: phase=%s brk_offset=%llu heap_rss=%llu nonmain_heaps=%llu nonmain_rss=%llu "
             "rss=%llu arena=%llu ordblks=%llu smblks=%llu hblks=%llu hblkhd=%llu fsmblks=%llu "
             "uordblks=%llu fordblks=%llu keepcost=%llu\n",
             prog, phase, (unsigned long long)hs->brk_offset, (unsigned long long)hs->heap_rss,
             (unsigned long long)hs->nonmain_heaps, (unsigned long long)hs->nonmain_rss,
             (unsigned long long)hs->rss, (unsigned long long)hs->arena,
             (unsigned long long)hs->ordblks, (unsigned long long)hs->smblks,
             (unsigned long long)hs->hblks, (unsigned long long)hs->hblkhd,
             (unsigned long long)hs->fsmblks, (unsigned long long)hs->uordblks,
             (unsigned long long)hs->fordblks, (unsigned long long)hs->keepcost);
    heapstat_write(STDOUT_FILENO, line);
}
