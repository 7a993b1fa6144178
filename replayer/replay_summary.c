/* replay_summary.c: the text summary of a replay (`fragscope replay` without --db, and after it).
 *
 * One labelled line per figure: events by kind, live / system / resident peaks and final values,
 * fragmentation at the live and resident peaks, what was skipped, --verify's match rate, speed,
 * and whether the replay reached the end of the trace.
 */
#include <inttypes.h>
#include <string.h>
#include "replay.h"

static const char *human(uint64_t b, char *buf, size_t len)
{
    if (b >= (1ull << 30))
        snprintf(buf, len, "%.2f GiB", (double)b / (double)(1ull << 30));
    else if (b >= (1ull << 20))
        snprintf(buf, len, "%.2f MiB", (double)b / (double)(1ull << 20));
    else if (b >= (1ull << 10))
        snprintf(buf, len, "%.1f KiB", (double)b / 1024.0);
    else
        snprintf(buf, len, "%" PRIu64 " B", b);
    return buf;
}

static void print_settings(FILE *f, const struct ptmalloc_settings *s)
{
    struct ptmalloc_settings d;
    ptmalloc_settings_default(&d);
    int changed = 0;
    fprintf(f, "settings       cpus %u", s->cpu_count);
#define SHOW(field, fmt, type)                                                                  \
    if (s->field != d.field) {                                                                  \
        fprintf(f, ", " #field " %" fmt, (type)s->field);                                      \
        changed = 1;                                                                            \
    }
    SHOW(mxfast, PRIu64, uint64_t) SHOW(trim_threshold, PRIu64, uint64_t)
    SHOW(top_pad, PRIu64, uint64_t) SHOW(mmap_threshold, PRIu64, uint64_t)
    SHOW(mmap_max, PRId64, int64_t) SHOW(arena_max, PRIu64, uint64_t)
    SHOW(arena_test, PRIu64, uint64_t) SHOW(tcache_count, PRIu64, uint64_t)
    SHOW(tcache_max, PRIu64, uint64_t) SHOW(tcache_unsorted_limit, PRIu64, uint64_t)
    SHOW(perturb, PRId64, int64_t) SHOW(hugetlb, PRId64, int64_t)
#undef SHOW
    fprintf(f, "%s\n", changed ? "" : ", glibc defaults otherwise");
}

void replay_print_summary(FILE *f, const struct replay_options *o, const struct replay_summary *s)
{
    char a[32], b[32];
    fprintf(f, "trace          %s\n", o->trace_path ? o->trace_path : "?");
    print_settings(f, &s->settings);
    fprintf(f, "events         %" PRIu64, s->events);
    const char *sep = " (";
    for (unsigned k = 1; k < TRACE_EV_KIND_COUNT; k++) {
        if (!s->events_by_kind[k])
            continue;
        fprintf(f, "%s%s %" PRIu64, sep, trace_event_kind_name(k), s->events_by_kind[k]);
        sep = ", ";
    }
    fprintf(f, "%s\n", strcmp(sep, ", ") ? "" : ")");
    fprintf(f, "threads        %u, arenas %u%s\n", s->threads, s->arenas,
            o->arenas == REPLAY_ARENAS_RECORDED ? " (pinned as recorded)" : "");
    fprintf(f, "live bytes     peak %s at step %" PRIu64 ", final %s\n",
            human(s->peak_live_bytes, a, sizeof a), s->peak_live_step,
            human(s->final_live_bytes, b, sizeof b));
    fprintf(f, "system bytes   peak %s at step %" PRIu64 ", final %s (heaps + mmapped chunks)\n",
            human(s->peak_system_bytes, a, sizeof a), s->peak_system_step,
            human(s->final_system_bytes, b, sizeof b));
    fprintf(f, "heap RSS       peak %s at step %" PRIu64 ", final %s (touch model: %s)\n",
            human(s->peak_rss_bytes, a, sizeof a), s->peak_rss_step,
            human(s->final_rss_bytes, b, sizeof b), o->touch == REPLAY_TOUCH_ALL ? "all" : "none");
    fprintf(f, "fragmentation  %.3f at the live peak (heap RSS %s), %.3f at the RSS peak (live %s)"
               "; (heap RSS - live) / live\n",
            s->frag_at_live_peak, human(s->rss_at_live_peak, a, sizeof a), s->frag_at_rss_peak,
            human(s->live_at_rss_peak, b, sizeof b));
    fprintf(f, "skipped        %" PRIu64 " frees of unknown pointers, %" PRIu64 " double frees, %"
               PRIu64 " reallocs of unknown pointers (replayed as malloc), %" PRIu64
               " missed frees, %" PRIu64 " refused by the model; %" PRIu64 " failed calls\n",
            s->unknown_frees, s->double_frees, s->unknown_reallocs, s->missed_frees,
            s->corrupt_calls, s->failed_calls);
    for (unsigned i = 0; i < s->unknown_free_site_count; i++) {
        const struct replay_site *u = &s->unknown_free_sites[i];
        fprintf(f, "  unknown frees: %" PRIu64 " from stack %u", u->count, u->stack_id);
        if (u->function[0])
            fprintf(f, " at %s%s%s%s [%s]", u->function, u->location[0] ? " (" : "", u->location,
                    u->location[0] ? ")" : "", u->where);
        else if (u->where[0])
            fprintf(f, " at %s", u->where);
        fputc('\n', f);
    }
    if (o->verify != REPLAY_VERIFY_OFF) {
        double rate = s->verified ? 100.0 * (double)s->matched / (double)s->verified : 100.0;
        /* Never round a mismatch up to 100.00%. */
        if (s->matched < s->verified && rate > 99.99)
            rate = 99.99;
        fprintf(f, "verify         %.2f%% of %" PRIu64 " allocations match (%" PRIu64
                   " diverged)", rate, s->verified, s->verified - s->matched);
        if (s->result_mismatches)
            fprintf(f, ", %" PRIu64 " mallopt/malloc_trim results differ", s->result_mismatches);
        if (s->first_divergence_step)
            fprintf(f, "; first divergence at step %" PRIu64, s->first_divergence_step);
        fputc('\n', f);
        if (s->samples)
            fprintf(f, "samples        %" PRIu64 ": mallinfo2 exact in %" PRIu64 ", brk exact in %"
                       PRIu64 "; heap residency model - real: mean %+.1f pages, largest %+"
                       PRId64 " pages\n",
                    s->samples, s->samples_mallinfo_matched, s->samples_brk_matched,
                    s->residency_diff_mean_pages, s->residency_diff_max_pages);
    }
    fprintf(f, "time           %.3f s, %.0f events/s\n", s->seconds,
            s->seconds > 0 ? (double)s->steps / s->seconds : 0.0);
    if (s->completed)
        fprintf(f, "status         complete\n");
    else if (s->interrupted)
        fprintf(f, "status         INCOMPLETE: interrupted at step %" PRIu64 "\n", s->steps);
    else if (s->until_step)
        fprintf(f, "status         INCOMPLETE: stopped at step %" PRIu64 "\n", s->until_step);
    else
        fprintf(f, "status         INCOMPLETE: the trace ends early at offset %" PRIu64 " (%s)\n",
                s->reader.stop_offset, s->reader.reason[0] ? s->reader.reason : "no end marker");
}
