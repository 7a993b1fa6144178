/* report_html.h: the HTML report (`fragscope report DB --format html -o FILE`) and the safe
 * creation of report output files.
 *
 * The HTML report is one self-contained page (inline CSS, inline SVG, a few lines of inline
 * script; no network) made from the report model (analyzer.h) plus bounded queries of the run's
 * tables: the timeline downsampled from `steps`, heap maps from `chunks`, the per-arena table and,
 * when the database holds several runs of the same trace (a sweep), the settings comparison.
 */
#ifndef FRAGSCOPE_REPORT_HTML_H
#define FRAGSCOPE_REPORT_HTML_H

#include <stdio.h>
#include "analyzer.h"

/* Writes the HTML report of r (loaded from db) to f. Returns 0, or -1 with a message. */
int analyzer_report_html(FILE *f, struct sqlite3 *db, const struct analyzer_report *r,
                         const struct analyzer_render_options *o, char *err, size_t errlen);

/* Creates a report output file: mode 0600, O_EXCL|O_NOFOLLOW; with force an existing regular
 * file is replaced, never a symlink or anything else. NULL with a message naming the file. */
FILE *report_output_open(const char *path, int force, char *err, size_t errlen);
/* Flushes and closes it; -1 with a message when a write failed (a full disk, ...). */
int report_output_close(FILE *f, const char *path, char *err, size_t errlen);

#endif
