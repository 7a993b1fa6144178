/* test_support.h: what many test suites need around the code under test - a private temporary
 * directory, running a shell command and keeping its output, waiting for a recording to be
 * complete. Plain functions without CMocka: callers assert on what they return.
 */
#ifndef FRAGSCOPE_TEST_SUPPORT_H
#define FRAGSCOPE_TEST_SUPPORT_H

#include <stddef.h>

/* Makes a fresh directory $TMPDIR/fs-NAME.XXXXXX (TMPDIR unset or empty: /tmp; mode 0700) and puts its path in dir[0..cap).
 * Returns 0, or -1 with errno set. */
int ts_tmpdir(char *dir, size_t cap, const char *name);

/* Removes dir and everything below it (`rm -rf`). Returns 0 on success. */
int ts_rmtree(const char *dir);

/* Runs cmd with /bin/sh; its standard output goes to out (NUL-terminated, cut at cap - 1
 * bytes; the rest is read and dropped), or is read and dropped when out is NULL. Standard error
 * is left alone unless cmd redirects it. Returns the exit status, 128 + the signal number if
 * the shell was killed, or -1 if it could not be started. */
int ts_shell(const char *cmd, char *out, size_t cap);

/* The same, with all of the output kept in a malloc'd string (*out, the caller frees it). */
int ts_shell_all(const char *cmd, char **out);

/* Waits up to 10 s for the recorder to finish the trace at path (its flusher holds a lock on
 * the file until the file is complete). Returns 1 when it is complete, 0 if not in time or the
 * file cannot be opened. */
int ts_wait_trace(const char *path);

#endif
