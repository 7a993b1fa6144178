/* json_out.h: the few pieces every JSON writer of the analyzer needs (report --format json,
 * heap --format json, sweep --format json): strings escaped for JSON and numbers that are always
 * valid JSON. */
#ifndef FRAGSCOPE_JSON_OUT_H
#define FRAGSCOPE_JSON_OUT_H

#include <stdio.h>

/* Writes s as a quoted JSON string; NULL is written as null. Quotes, backslashes and control
 * characters are escaped; valid UTF-8 passes through; each byte that is not part of a valid
 * UTF-8 sequence is written as \u00XX (so any path or symbol from a trace gives valid JSON). */
void json_str(FILE *f, const char *s);

/* A real number with 6 decimals, or null when it is not finite (JSON has no NaN or inf). */
void json_real(FILE *f, double v);

#endif
