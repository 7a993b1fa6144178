/* shrink.c: delta debugging of a failing op sequence (see shrink.h).
 *
 * Any difference counts as "still failing": the goal is a short sequence the allocator
 * engineer can read, and the reproducer printed at the end states which difference it shows.
 */
#include "shrink.h"

#include <stdlib.h>
#include <string.h>

/* Runs the trial; 1 if it still shows a difference (then *r is updated). */
static int still_fails(const struct seq *t, struct diff_result *r)
{
    struct diff_result tr;
    char err[256];
    if (diff_run(t, &tr, err, sizeof err) != 1)
        return 0;
    *r = tr;
    return 1;
}

/* Keeps ops [0, r->op]: nothing after the first difference matters. */
static void cut_after(struct seq *s, const struct diff_result *r)
{
    if (r->op != UINT64_MAX && r->op + 1 < s->n)
        s->n = r->op + 1;
}

unsigned shrink_seq(struct seq *s, struct diff_result *r, unsigned max_runs)
{
    unsigned runs = 0;
    struct seq t;
    seq_init(&t);
    cut_after(s, r);
    uint64_t chunk = s->n / 2 ? s->n / 2 : 1;
    while (runs < max_runs) {
        int removed_any = 0;
        for (uint64_t start = 0; start < s->n && runs < max_runs;) {
            seq_copy(&t, s);
            uint8_t *drop = calloc(t.n + 1, 1);
            if (!drop)
                abort();
            for (uint64_t j = start; j < start + chunk && j < t.n; j++)
                drop[j] = 1;
            seq_remove(&t, drop);
            free(drop);
            runs++;
            if (t.n < s->n && still_fails(&t, r)) {
                cut_after(&t, r);
                seq_copy(s, &t);
                removed_any = 1;
            } else {
                start += chunk;
            }
        }
        if (!removed_any) {
            if (chunk == 1)
                break;
            chunk /= 2;
        } else if (chunk > s->n / 2 && s->n / 2) {
            chunk = s->n / 2;
        }
    }
    seq_free(&t);
    return runs;
}
