/* report_json.c: the report's data model as one JSON object (exact byte counts), for scripts
 * and for the HTML renderer. Strings are escaped by json_out.c. */
#include <inttypes.h>
#include <stdio.h>
#include "analyzer.h"
#include "json_out.h"

static void ledger(FILE *f, const char *name, const struct analyzer_ledger *l)
{
    fprintf(f, "  \"%s\": ", name);
    if (!l->valid) {
        fprintf(f, "null,\n");
        return;
    }
    fprintf(f,
            "{\"step\": %" PRIu64 ", \"exact\": %s, \"held\": %" PRIu64 ", \"overhead\": %" PRIu64
            ", \"tcache\": %" PRIu64 ", \"fastbins\": %" PRIu64 ", \"unsorted\": %" PRIu64
            ", \"small\": %" PRIu64 ", \"large\": %" PRIu64 ", \"top\": %" PRIu64
            ", \"mmapped\": %" PRIu64 ", \"rss\": %" PRIu64 ", \"not_resident\": %" PRIu64
            ", \"released\": %" PRIu64 "},\n",
            l->step, l->exact ? "true" : "false", l->held, l->overhead, l->tcache, l->fastbins,
            l->unsorted, l->small, l->large, l->top, l->mmapped, l->rss, l->not_resident,
            l->released);
}

void analyzer_report_json(FILE *f, const struct analyzer_report *r)
{
    const struct analyzer_run_info *ri = &r->run;
    fprintf(f, "{\n  \"run\": {\"id\": %" PRId64 ", \"trace\": ", ri->id);
    json_str(f, ri->trace);
    fprintf(f, ", \"settings\": ");
    json_str(f, ri->settings);
    fprintf(f, ", \"tool_version\": ");
    json_str(f, ri->tool_version);
    fprintf(f, ", \"started\": ");
    json_str(f, ri->started);
    fprintf(f, ", \"ended\": ");
    json_str(f, ri->ended);
    fprintf(f,
            ", \"completed\": %s, \"events\": %" PRIu64 ", \"steps_stored\": %" PRIu64
            ", \"every\": %" PRIu64 ", \"arenas\": %" PRIu64 ", \"threads\": %" PRIu64
            ", \"final_step\": %" PRIu64 ", \"seconds\": %.6f},\n",
            ri->completed ? "true" : "false", ri->events, ri->steps_stored, ri->every, ri->arenas,
            ri->threads, ri->final_step, ri->seconds);
    ledger(f, "ledger_end", &r->at_end);
    ledger(f, "ledger_rss_peak", &r->at_rss_peak);
    const struct analyzer_measures *m = &r->measures;
    fprintf(f,
            "  \"measures\": {\"peak_live\": %" PRIu64 ", \"peak_live_step\": %" PRIu64
            ", \"rss_at_live_peak\": %" PRIu64 ", \"peak_rss\": %" PRIu64
            ", \"peak_rss_step\": %" PRIu64 ", \"live_at_rss_peak\": %" PRIu64
            ", \"frag_at_live_peak\": %.6f, \"frag_at_rss_peak\": %.6f, \"jw_ratio\": %.6f"
            ", \"final_live\": %" PRIu64 ", \"final_rss\": %" PRIu64 ", \"retention\": %.6f",
            m->peak_live, m->peak_live_step, m->rss_at_live_peak, m->peak_rss, m->peak_rss_step,
            m->live_at_rss_peak, m->frag_at_live_peak, m->frag_at_rss_peak, m->jw_ratio,
            m->final_live, m->final_rss, m->retention);
    if (m->trim_known)
        fprintf(f, ", \"trim_gain\": %" PRIu64 ", \"top_trim_gain\": %" PRIu64, m->trim_gain,
                m->top_trim_gain);
    fprintf(f, "},\n  \"free_histogram\": [");
    for (size_t i = 0; i < r->hist_count; i++) {
        const struct analyzer_hist_bucket *h = &r->hist[i];
        fprintf(f, "%s\n    {\"arena\": %d, \"lo\": %" PRIu64 ", \"hi\": %" PRIu64
                   ", \"count\": %" PRIu64 ", \"bytes\": %" PRIu64 "}",
                i ? "," : "", h->arena, h->lo, h->hi, h->count, h->bytes);
    }
    fprintf(f, "%s],\n  \"findings\": [", r->hist_count ? "\n  " : "");
    for (size_t i = 0; i < r->finding_count; i++) {
        const struct analyzer_finding *x = &r->findings[i];
        fprintf(f, "%s\n    {\"kind\": ", i ? "," : "");
        json_str(f, x->kind);
        fprintf(f, ", \"cause\": ");
        json_str(f, x->cause);
        fprintf(f, ", \"evidence\": ");
        json_str(f, x->evidence);
        fprintf(f, ", \"fix\": ");
        json_str(f, x->fix);
        fprintf(f, ", \"site\": ");
        json_str(f, x->site);
        fprintf(f,
                ", \"bytes\": %" PRIu64 ", \"step\": %" PRIu64 ", \"arena\": %d"
                ", \"chunk_address\": %" PRIu64 ", \"chunk_size\": %" PRIu64
                ", \"alloc_step\": %" PRIu64 ", \"whatifs\": [",
                x->bytes, x->step, x->arena, x->chunk_address, x->chunk_size, x->alloc_step);
        for (unsigned k = 0; k < x->whatif_count; k++) {
            const struct analyzer_whatif *w = &x->whatif[k];
            fprintf(f, "%s{\"setting\": ", k ? ", " : "");
            json_str(f, w->setting);
            fprintf(f,
                    ", \"step\": %" PRIu64 ", \"rss_before\": %" PRIu64
                    ", \"rss_after\": %" PRIu64 ", \"system_before\": %" PRIu64
                    ", \"system_after\": %" PRIu64 ", \"peak_before\": %" PRIu64
                    ", \"peak_after\": %" PRIu64 ", \"helps\": %s, \"verified\": true}",
                    w->step, w->before, w->after, w->system_before, w->system_after,
                    w->peak_before, w->peak_after, w->helps ? "true" : "false");
        }
        fprintf(f, "]}");
    }
    fprintf(f, "%s]\n}\n", r->finding_count ? "\n  " : "");
}
