/* report_html_heapmap.c: heap maps: the chunks of a snapshot drawn to scale, like a memory map.
 *
 * A heap is laid out as rows of equal address span (a power of two chosen so the whole snapshot
 * takes a few dozen rows), left to right, top to bottom, at true scale: a chunk's width is its
 * size. Each contiguous stretch of chunks (a heap: the main arena's, or one per other arena's heap)
 * starts on a new row under a caption; mmapped chunks, each its own mapping, are summed below.
 * A chunk narrower than one pixel cannot be seen at true scale, so consecutive such chunks are
 * gathered into one mark at least a pixel wide (coloured by the state with the most bytes, its
 * tooltip counting the states in it). This bounds the marks to about two per pixel of row, so a
 * heap of millions of chunks still draws as a small page. Every mark has a tooltip (SVG <title>)
 * with the address, size, state and the call site that allocated it. Chunks that findings name
 * (the chunk that pins the top, ...) are outlined and labelled with the finding's number.
 *
 * Two streaming passes over the snapshot in address order (the primary key of `chunks`): the
 * first finds the contiguous stretches, the second draws; memory is the stretches only.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "db_util.h"
#include "report_html_int.h"

#define MAP_W 1100
#define LABEL_W 92
#define ROW_W (MAP_W - LABEL_W - 8)
#define ROW_H 11
#define ROW_GAP 2
#define SEG_HEAD 20
#define MAX_ROWS 96
#define MAX_SEGS 48
#define MAX_MARKED 8
#define MARK_BUDGET 3000         /* marks per map before chunks wider than a pixel are gathered */

struct seg {
    uint64_t start, end;
    int arena;
    uint64_t chunks;
    double y;                    /* the top of its caption */
};

enum { ST_IN_USE, ST_INTERNAL, ST_TCACHE, ST_FASTBIN, ST_UNSORTED, ST_SMALL, ST_LARGE, ST_TOP,
       ST_OTHER, ST_COUNT };
static const char *const state_names[ST_COUNT] = {"in_use", "internal", "tcache", "fastbin",
                                                  "unsorted", "small", "large", "top", "other"};
static const char *const state_labels[ST_COUNT] = {
    "in use", "allocator-internal", "tcache", "fastbin", "unsorted", "small bin", "large bin",
    "top", "other"};

static int state_index(const char *s)
{
    for (int i = 0; i < ST_OTHER; i++)
        if (!strcmp(s, state_names[i]))
            return i;
    return ST_OTHER;
}

/* Chunks under one pixel, gathered. */
struct group {
    int open;
    double x0, x1, y;
    uint64_t lo, hi, count;
    uint64_t bytes[ST_COUNT], n[ST_COUNT];
};

struct mark {
    uint64_t address;
    size_t finding;              /* 1-based, as numbered in the report */
    int pins_top;
    int found;
    double x, y, w;
};

struct map {
    FILE *f;
    uint64_t row_bytes;
    double scale;                /* pixels per byte */
    double gather;               /* chunks narrower than this (pixels) are gathered */
    double min_width;            /* of a mark, in pixels */
    FILE *overlay;               /* gathered marks, drawn over the chunks wider than a pixel */
    int arenas;                  /* the snapshot has more than one arena */
    struct group g;
    long rects;
    struct mark marks[MAX_MARKED];
    int nmarks;
};

static void group_flush(struct map *m)
{
    struct group *g = &m->g;
    if (!g->open)
        return;
    int best = 0;
    for (int i = 1; i < ST_COUNT; i++)
        if (g->bytes[i] > g->bytes[best])
            best = i;
    /* Widened around its true place, and drawn last so that its neighbours do not cover it. */
    double w = g->x1 - g->x0 < m->min_width ? m->min_width : g->x1 - g->x0;
    double x = g->x0 - (w - (g->x1 - g->x0)) / 2;
    FILE *f = m->overlay ? m->overlay : m->f;
    char b[32];
    fprintf(f, "<rect class=\"st-%s\" x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%d\">"
                  "<title>",
            state_names[best], x, g->y, w, ROW_H);
    if (g->count == 1) {
        fprintf(f, "0x%" PRIx64 ": %s, %s", g->lo, html_bytes(b, sizeof b, g->hi - g->lo, 0),
                state_labels[best]);
    } else {
        fprintf(f, "%" PRIu64 " small chunks, 0x%" PRIx64 " .. 0x%" PRIx64 " (%s):", g->count,
                g->lo, g->hi, html_bytes(b, sizeof b, g->hi - g->lo, 0));
        for (int i = 0; i < ST_COUNT; i++)
            if (g->n[i])
                fprintf(f, " %" PRIu64 " %s (%s)", g->n[i], state_labels[i],
                        html_bytes(b, sizeof b, g->bytes[i], 0));
    }
    fprintf(f, "</title></rect>\n");
    m->rects++;
    memset(g, 0, sizeof *g);
}

struct chunk_row {
    uint64_t address, size, resident, request, alloc_step;
    int arena, has_request, has_step;
    const char *state, *function, *location;
};

static void chunk_title(FILE *f, const struct chunk_row *c, int arenas)
{
    char b1[32], b2[32];
    fprintf(f, "0x%" PRIx64 ": %s, %s", c->address, html_bytes(b1, sizeof b1, c->size, 0),
            state_labels[state_index(c->state)]);
    if (c->has_request)
        fprintf(f, ", request %s", html_bytes(b2, sizeof b2, c->request, 0));
    if (arenas)
        fprintf(f, ", arena %d", c->arena);
    if (c->resident < c->size)
        fprintf(f, ", %s resident", html_bytes(b1, sizeof b1, c->resident, 0));
    if (c->has_step)
        fprintf(f, "; allocated at step %" PRIu64, c->alloc_step);
    if (c->function && *c->function) {
        fprintf(f, " by ");
        html_esc(f, c->function);
        if (c->location && *c->location) {
            const char *base = strrchr(c->location, '/');
            fprintf(f, " (");
            html_esc(f, base ? base + 1 : c->location);
            fprintf(f, ")");
        }
    }
}

/* One piece of a chunk within one row: [a, b) with the row starting at row_start. */
static void piece(struct map *m, const struct chunk_row *c, uint64_t a, uint64_t b,
                  uint64_t row_start, double y)
{
    double x0 = LABEL_W + (double)(a - row_start) * m->scale;
    double x1 = LABEL_W + (double)(b - row_start) * m->scale;
    int st = state_index(c->state);
    int is_free = st == ST_UNSORTED || st == ST_SMALL || st == ST_LARGE || st == ST_TOP;
    for (int i = 0; i < m->nmarks; i++)
        if (m->marks[i].address == c->address && !m->marks[i].found &&
            !(m->marks[i].pins_top && is_free)) {
            m->marks[i].found = 1;
            m->marks[i].x = x0;
            m->marks[i].y = y;
            m->marks[i].w = x1 - x0;
        }
    if (x1 - x0 < m->gather) {
        struct group *g = &m->g;
        if (g->open && (g->y != y || x1 - g->x0 > 2 * m->gather))
            group_flush(m);
        if (!g->open) {
            g->open = 1;
            g->x0 = x0;
            g->y = y;
            g->lo = a;
        }
        g->x1 = x1;
        g->hi = b;
        g->count++;
        g->bytes[st] += b - a;
        g->n[st]++;
        return;
    }
    group_flush(m);
    fprintf(m->f, "<rect class=\"st-%s\" x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%d\">"
                  "<title>",
            state_names[st], x0, y, x1 - x0, ROW_H);
    chunk_title(m->f, c, m->arenas);
    fprintf(m->f, "</title></rect>\n");
    m->rects++;
}

static const char *snapshot_title(const char *reason, char *buf, size_t cap)
{
    if (!strcmp(reason, "rss_peak"))
        return "at the heap RSS peak";
    if (!strcmp(reason, "end"))
        return "at the end";
    if (!strcmp(reason, "retention_peak"))
        return "where the most heap RSS is not live";
    snprintf(buf, cap, "at %s", reason);
    return buf;
}

static void map_legend(FILE *f)
{
    fprintf(f, "<div class=\"legend\">\n");
    for (int i = 0; i < ST_OTHER; i++)
        fprintf(f, "<span class=\"key\"><i style=\"background:%s\"></i>%s</span>\n",
                html_state_color(state_names[i]), state_labels[i]);
    fprintf(f, "<span class=\"key\"><b class=\"markkey\"></b>named by a finding</span>\n");
    fprintf(f, "</div>\n");
}

/* Captions and row backgrounds of the stretches; rows are rb bytes. */
static void draw_rows(FILE *f, const struct seg *segs, size_t nseg, uint64_t rb, double scale,
                      const char *caption)
{
    char b1[32];
    for (size_t i = 0; i < nseg; i++) {
        const struct seg *s = &segs[i];
        if (caption)
            fprintf(f, "<text class=\"seghead\" x=\"2\" y=\"%.1f\">%s</text>\n", s->y + 14,
                    caption);
        else
            fprintf(f, "<text class=\"seghead\" x=\"2\" y=\"%.1f\">arena %d: 0x%" PRIx64
                       " .. 0x%" PRIx64 ", %s in %" PRIu64 " chunk%s</text>\n",
                    s->y + 14, s->arena, s->start, s->end,
                    html_bytes(b1, sizeof b1, s->end - s->start, 0), s->chunks,
                    s->chunks == 1 ? "" : "s");
        uint64_t rows = (s->end - s->start + rb - 1) / rb;
        for (uint64_t k = 0; k < rows; k++) {
            double ry = s->y + SEG_HEAD + (double)k * (ROW_H + ROW_GAP);
            uint64_t len = s->end - s->start - k * rb < rb ? s->end - s->start - k * rb : rb;
            fprintf(f, "<text class=\"rowlabel\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">+%s"
                       "</text><rect class=\"rowbg\" x=\"%d\" y=\"%.1f\" width=\"%.2f\" "
                       "height=\"%d\"/>\n",
                    LABEL_W - 6, ry + ROW_H - 2, k ? html_bytes(b1, sizeof b1, k * rb, 0) : "0",
                    LABEL_W, ry, (double)len * scale, ROW_H);
        }
    }
}

/* Pass 2: the chunks overlapping [lo, hi), in address order, cut to the stretches and rows. */
static void draw_chunks(struct map *m, sqlite3 *db, long long run, int snap,
                        const struct seg *segs, size_t nseg, uint64_t lo, uint64_t hi)
{
    char err[256];
    uint64_t rb = m->row_bytes;
    /* From the chunk that contains lo (the primary key finds it), up to hi. */
    int64_t from = db_int(db, 0, "SELECT max(address) FROM chunks WHERE run = %lld AND snap = %d "
                                 "AND address <= %lld", run, snap, (long long)lo);
    sqlite3_stmt *st = db_prepare(db, err, sizeof err,
                                  "SELECT c.address, c.size, c.state, c.arena, c.resident, "
                                  "c.request, c.alloc_step, s.function, s.location FROM chunks c "
                                  "LEFT JOIN sites s ON s.run = c.run AND s.stack = c.stack "
                                  "WHERE c.run = %lld AND c.snap = %d AND c.address >= %lld AND "
                                  "c.address < %lld AND c.state <> 'mmapped' ORDER BY c.address",
                                  run, snap, (long long)from,
                                  (long long)(hi > INT64_MAX ? INT64_MAX : hi));
    char *ov = NULL;
    size_t ov_len = 0;
    m->overlay = open_memstream(&ov, &ov_len);
    size_t si = 0;
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        struct chunk_row c;
        c.address = (uint64_t)sqlite3_column_int64(st, 0);
        c.size = (uint64_t)sqlite3_column_int64(st, 1);
        c.state = (const char *)sqlite3_column_text(st, 2);
        c.arena = sqlite3_column_int(st, 3);
        c.resident = (uint64_t)sqlite3_column_int64(st, 4);
        c.has_request = sqlite3_column_type(st, 5) != SQLITE_NULL;
        c.request = (uint64_t)sqlite3_column_int64(st, 5);
        c.has_step = sqlite3_column_type(st, 6) != SQLITE_NULL;
        c.alloc_step = (uint64_t)sqlite3_column_int64(st, 6);
        c.function = (const char *)sqlite3_column_text(st, 7);
        c.location = (const char *)sqlite3_column_text(st, 8);
        if (!c.state)
            c.state = "other";
        while (si < nseg && c.address >= segs[si].end)
            si++;
        if (si == nseg)
            break;
        const struct seg *s = &segs[si];
        if (c.address + c.size <= s->start)
            continue;
        uint64_t a = c.address < s->start ? s->start : c.address, end = c.address + c.size;
        if (end > s->end)
            end = s->end;
        while (a < end) {
            uint64_t k = (a - s->start) / rb, row_start = s->start + k * rb;
            uint64_t b = end < row_start + rb ? end : row_start + rb;
            piece(m, &c, a, b, row_start, s->y + SEG_HEAD + (double)k * (ROW_H + ROW_GAP));
            a = b;
        }
    }
    sqlite3_finalize(st);
    group_flush(m);
    if (m->overlay) {
        fclose(m->overlay);
        m->overlay = NULL;
        fwrite(ov, 1, ov_len, m->f);
        free(ov);
    }
}

/* The outlines of the chunks findings name, on top of everything. */
static void draw_marks(struct map *m)
{
    for (int i = 0; i < m->nmarks; i++) {
        const struct mark *k = &m->marks[i];
        if (!k->found)
            continue;
        double w = k->w < 5 ? 5 : k->w, x = k->x - (w - k->w) / 2;
        fprintf(m->f, "<a href=\"#finding-%zu\"><g class=\"mark\"><title>finding %zu names this "
                      "chunk (0x%" PRIx64 ")%s</title><rect x=\"%.2f\" y=\"%.1f\" "
                      "width=\"%.2f\" height=\"%d\"/>",
                k->finding, k->finding, k->address, k->pins_top ? ": it pins the top" : "", x,
                k->y - 3, w, ROW_H + 6);
        int left = x > MAP_W - 200;
        fprintf(m->f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">%zu%s</text></g></a>\n",
                left ? x - 5 : x + w + 5, k->y + ROW_H - 1, left ? "end" : "start", k->finding,
                k->pins_top ? ": pins the top" : "");
    }
}

/* The chunks findings name in a snapshot: at the finding's own step, or, for the chunk that
 * pins the top, in any later snapshot where that chunk is still not free (checked as drawn). */
static void find_marks(struct map *m, const struct analyzer_report *r, uint64_t snap_step)
{
    m->nmarks = 0;
    for (size_t i = 0; i < r->finding_count && m->nmarks < MAX_MARKED; i++) {
        const struct analyzer_finding *x = &r->findings[i];
        int pins = !strncmp(x->kind, "top-pinned", 10);
        if (!x->chunk_address)
            continue;
        if (x->step != snap_step && !(pins && x->alloc_step <= snap_step))
            continue;
        m->marks[m->nmarks++] = (struct mark){x->chunk_address, i + 1, pins, 0, 0, 0, 0};
    }
}

/* A close-up at a finer scale of the stretch around the first chunk a finding names, when the
 * map draws it narrower than a few pixels: where the chunks pinning the top can be seen. */
static long zoom(FILE *f, sqlite3 *db, const struct analyzer_report *r, long long run, int snap,
                 uint64_t snap_step, const struct seg *segs, size_t nseg, const struct map *big,
                 const struct mark *k)
{
    const struct seg *s = NULL;
    for (size_t i = 0; i < nseg && !s; i++)
        if (segs[i].start <= k->address && k->address < segs[i].end)
            s = &segs[i];
    if (!s)
        return 0;
    /* A window of 2 rows ending a quarter past the chunk, so the top after it shows too. */
    uint64_t zw = 256 << 10;
    while (zw < big->row_bytes / 32 && zw < (s->end - s->start) / 2)
        zw *= 2;
    uint64_t rb = zw / 2;
    uint64_t hi = k->address + zw / 4 < s->end ? k->address + zw / 4 : s->end;
    uint64_t lo = hi - s->start > zw ? hi - zw : s->start;
    struct seg z = {lo, hi, s->arena, 0, 4};
    struct map m = {.f = f, .row_bytes = rb, .scale = (double)ROW_W / (double)rb, .gather = 1,
                    .min_width = 3, .arenas = big->arenas};
    find_marks(&m, r, snap_step);
    char b1[32], b2[32], caption[256];
    snprintf(caption, sizeof caption, "close-up near finding %zu: 0x%" PRIx64 " .. 0x%" PRIx64
             " (%s), 1 pixel = %s, chunks at least 3 pixels wide", k->finding, lo, hi,
             html_bytes(b1, sizeof b1, hi - lo, 0),
             html_bytes(b2, sizeof b2, (uint64_t)((double)rb / ROW_W + 0.5), 0));
    double height = 4 + SEG_HEAD + 2.0 * (ROW_H + ROW_GAP) + 8;
    fprintf(f, "<svg class=\"map zoom\" viewBox=\"0 0 %d %.0f\" role=\"img\" aria-label=\"heap "
               "map close-up\">\n",
            MAP_W, height);
    draw_rows(f, &z, 1, rb, m.scale, caption);
    draw_chunks(&m, db, run, snap, &z, 1, lo, hi);
    draw_marks(&m);
    fprintf(f, "</svg>\n");
    return m.rects;
}

long html_heap_map(FILE *f, sqlite3 *db, const struct analyzer_report *r, int snap,
                   const char *title)
{
    char err[256], b1[32], b2[32];
    const long long run = (long long)r->run.id;
    uint64_t snap_step = (uint64_t)db_int(db, 0, "SELECT step FROM snapshots WHERE run = %lld "
                                                 "AND snap = %d", run, snap);
    /* Pass 1: the contiguous stretches. */
    sqlite3_stmt *st = db_prepare(db, err, sizeof err,
                                  "SELECT address, size, arena FROM chunks WHERE run = %lld AND "
                                  "snap = %d AND state <> 'mmapped' ORDER BY address",
                                  run, snap);
    if (!st)
        return -1;
    struct seg *segs = NULL;
    size_t nseg = 0, cap = 0, more_segs = 0;
    uint64_t total = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        uint64_t a = (uint64_t)sqlite3_column_int64(st, 0);
        uint64_t sz = (uint64_t)sqlite3_column_int64(st, 1);
        if (nseg && segs[nseg - 1].end == a) {
            segs[nseg - 1].end = a + sz;
            segs[nseg - 1].chunks++;
            continue;
        }
        if (nseg == MAX_SEGS) {
            more_segs++;
            continue;
        }
        if (nseg == cap) {
            cap = cap ? cap * 2 : 8;
            struct seg *n = realloc(segs, cap * sizeof *n);
            if (!n)
                break;
            segs = n;
        }
        segs[nseg++] = (struct seg){a, a + sz, sqlite3_column_int(st, 2), 1, 0};
    }
    sqlite3_finalize(st);
    for (size_t i = 0; i < nseg; i++)
        total += segs[i].end - segs[i].start;
    int64_t mm_n = db_int(db, 0, "SELECT count(*) FROM chunks WHERE run = %lld AND snap = %d AND "
                                 "state = 'mmapped'", run, snap);
    int64_t mm_b = db_int(db, 0, "SELECT sum(size) FROM chunks WHERE run = %lld AND snap = %d AND "
                                 "state = 'mmapped'", run, snap);
    if (!nseg && !mm_n) {
        free(segs);
        return -1;
    }

    struct map m = {.f = f, .min_width = 1};
    uint64_t rb = 4096;
    while (rb * 40 < total)
        rb *= 2;
    for (;;) {
        uint64_t rows = 0;
        for (size_t i = 0; i < nseg; i++)
            rows += (segs[i].end - segs[i].start + rb - 1) / rb;
        if (rows <= MAX_ROWS || rows <= nseg || rb >= (1ull << 50))
            break;
        rb *= 2;
    }
    m.row_bytes = rb;
    m.scale = (double)ROW_W / (double)rb;
    uint64_t nchunks = 0, nrows = 0;
    for (size_t i = 0; i < nseg; i++) {
        nchunks += segs[i].chunks;
        nrows += (segs[i].end - segs[i].start + rb - 1) / rb;
        m.arenas |= segs[i].arena != segs[0].arena;
    }
    m.gather = 1;
    if (nchunks > MARK_BUDGET) {
        m.gather = (double)nrows * ROW_W / MARK_BUDGET;
        m.gather = m.gather < 1 ? 1 : m.gather > 16 ? 16 : m.gather;
    }
    double y = 4;
    for (size_t i = 0; i < nseg; i++) {
        segs[i].y = y;
        y += SEG_HEAD + (double)((segs[i].end - segs[i].start + rb - 1) / rb) * (ROW_H + ROW_GAP);
    }
    double height = y + 4;
    find_marks(&m, r, snap_step);

    fprintf(f, "<figure class=\"heapmap\" id=\"heapmap-%d\">\n<h3>Heap map ", snap);
    html_esc(f, title);
    fprintf(f, " (step %" PRIu64 ")</h3>\n", snap_step);
    fprintf(f, "<p class=\"note\">Each row is %s of address space drawn to scale (1 pixel = %s); "
               "hover over a chunk for its address, size, state and allocating call site. ",
            html_bytes(b1, sizeof b1, rb, 0),
            html_bytes(b2, sizeof b2, (uint64_t)((double)rb / ROW_W + 0.5), 0));
    if (m.gather > 1)
        fprintf(f, "Chunks under %.3g pixels wide are gathered into one mark, coloured by the "
                   "state with the most bytes in it.",
                m.gather);
    else
        fprintf(f, "Chunks under a pixel wide are drawn a pixel wide (runs of them gathered into "
                   "one mark).");
    fprintf(f, "</p>\n");
    if (nseg) {
        fprintf(f, "<svg class=\"map\" viewBox=\"0 0 %d %.0f\" role=\"img\" aria-label=\"heap "
                   "map\">\n",
                MAP_W, height);
        draw_rows(f, segs, nseg, rb, m.scale, NULL);
        draw_chunks(&m, db, run, snap, segs, nseg, 0, UINT64_MAX);
        draw_marks(&m);
        fprintf(f, "</svg>\n");
        /* Close-ups of (at most two) chunks findings name that the map draws too thin. */
        int zooms = 0;
        for (int i = 0; i < m.nmarks && zooms < 2; i++)
            if (m.marks[i].found && m.marks[i].w < 3) {
                m.rects += zoom(f, db, r, run, snap, snap_step, segs, nseg, &m, &m.marks[i]);
                zooms++;
            }
    }
    if (more_segs)
        fprintf(f, "<p class=\"note\">%zu more stretches of chunks are not drawn.</p>\n",
                more_segs);
    if (mm_n)
        fprintf(f, "<p class=\"note\">%lld mmapped chunk%s (%s), each its own mapping, not "
                   "drawn.</p>\n",
                (long long)mm_n, mm_n == 1 ? "" : "s",
                html_bytes(b1, sizeof b1, (uint64_t)mm_b, 0));
    for (int i = 0; i < m.nmarks; i++)
        if (m.marks[i].found)
            fprintf(f, "<p class=\"note\">Outlined: chunk 0x%" PRIx64 ", named by <a "
                       "href=\"#finding-%zu\">finding %zu</a>%s.</p>\n",
                    m.marks[i].address, m.marks[i].finding, m.marks[i].finding,
                    m.marks[i].pins_top ? ": the chunk nearest the top that is not free, which "
                                          "keeps the free memory below it from being trimmed"
                                        : "");
    fprintf(f, "</figure>\n");
    free(segs);
    return m.rects;
}

void html_heap_maps(FILE *f, sqlite3 *db, const struct analyzer_report *r)
{
    char err[256], buf[128];
    fprintf(f, "<section id=\"heapmaps\">\n<h2>Heap maps</h2>\n");
    map_legend(f);
    sqlite3_stmt *st = db_prepare(db, err, sizeof err,
                                  "SELECT snap, reason FROM snapshots WHERE run = %lld ORDER BY "
                                  "step, snap LIMIT 4",
                                  (long long)r->run.id);
    int drawn = 0;
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        const char *reason = (const char *)sqlite3_column_text(st, 1);
        char title[160];
        snprintf(title, sizeof title, "%s", snapshot_title(reason ? reason : "", buf, sizeof buf));
        if (html_heap_map(f, db, r, sqlite3_column_int(st, 0), title) >= 0)
            drawn++;
    }
    sqlite3_finalize(st);
    if (!drawn)
        fprintf(f, "<p class=\"note\">The run has no chunk snapshot (stored with --no-analysis, "
                   "or not analysed yet).</p>\n");
    fprintf(f, "</section>\n");
}
