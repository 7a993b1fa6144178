/* test_recorded.c: the committed corpus (traces/NAME.fstrace) is readable and replays exactly.
 *
 * For every trace: `fragscope dump --stats` exits 0 and says the file ended cleanly, with the
 * operation counts the program makes (derived from its source: e.g. 8001 mallocs and 8001 frees
 * for 4000-blocks); `fragscope replay --verify=strict` exits 0, i.e. every replayed address equals
 * the recorded one; and each trace has its NAME.heapstat, the real numbers of the recorded run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define OUT_CAP 65536

static int run(const char *args, char *out)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", FRAGSCOPE_BIN, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, OUT_CAP - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The COUNT column of an operation's row in dump --stats (0 if the row is absent). */
static unsigned long op_count(const char *out, const char *op)
{
    char want[64];
    snprintf(want, sizeof want, "\n%s ", op);
    const char *table = strstr(out, "\nOPERATION");
    const char *row = table ? strstr(table, want) : NULL;
    return row ? strtoul(row + strlen(want), NULL, 10) : 0;
}

struct expected {
    const char *name;
    unsigned long mallocs, frees, thread_starts, thread_exits;
};

/* From the programs: allocation counts are fixed by their loops; thread starts include main.
 * Frees are a lower bound: glibc also frees the DTVs (calloc'd by pthread_create) of thread
 * stacks it drops from its stack cache, and those frees are recorded too. */
static const struct expected corpus[] = {
    {"4000-blocks", 8001, 8001, 1, 0},
    {"4000-blocks-trim", 8001, 8001, 1, 0},
    {"hoarding", 0, 0, 5, 4},
    {"arena-explosion", 32 * (200 + 4), 32 * 200, 33, 32},
    {"aligned-gaps", 400 + 300, 400, 1, 0},
    {"mmap-ratchet", 96, 48, 1, 0},
    {"producer-consumer", 300 * 64, 300 * 64, 3, 2},
    {"thread-churn", 40 * 4 * 200, 40 * 4 * 200, 161, 160},
};
#define N_CORPUS (sizeof corpus / sizeof corpus[0])

static void dump_stats_reads_every_trace_cleanly(void **state)
{
    (void)state;
    static char out[OUT_CAP];
    for (size_t i = 0; i < N_CORPUS; i++) {
        char args[1024];
        snprintf(args, sizeof args, "dump --stats %s/%s.fstrace", TRACES_DIR, corpus[i].name);
        int rc = run(args, out);
        if (rc != 0 || !strstr(out, "cleanly"))
            fail_msg("%s: dump --stats exit %d:\n%s", corpus[i].name, rc, out);
        if ((corpus[i].mallocs && op_count(out, "malloc") != corpus[i].mallocs) ||
            (corpus[i].frees && op_count(out, "free") < corpus[i].frees) ||
            op_count(out, "thread_start") != corpus[i].thread_starts ||
            op_count(out, "thread_exit") != corpus[i].thread_exits)
            fail_msg("%s: expected %lu mallocs, >= %lu frees, %lu thread starts, %lu exits:\n%s",
                     corpus[i].name, corpus[i].mallocs, corpus[i].frees,
                     corpus[i].thread_starts, corpus[i].thread_exits, out);
    }
}

static void replay_verify_matches_every_address(void **state)
{
    (void)state;
    static char out[OUT_CAP];
    for (size_t i = 0; i < N_CORPUS; i++) {
        char args[1024];
        snprintf(args, sizeof args, "replay --verify=strict --no-progress %s/%s.fstrace", TRACES_DIR,
                 corpus[i].name);
        int rc = run(args, out);
        if (rc != 0)
            fail_msg("%s: replay --verify=strict exit %d:\n%s", corpus[i].name, rc, out);
    }
}

static void every_trace_has_its_real_numbers(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CORPUS; i++) {
        char path[1024], line[1024];
        snprintf(path, sizeof path, "%s/%s.heapstat", TRACES_DIR, corpus[i].name);
        FILE *f = fopen(path, "r");
        if (!f)
            fail_msg("missing %s", path);
        int lines = 0;
        while (fgets(line, sizeof line, f))
            if (strstr(line, " phase=") && strstr(line, " brk_offset=") && strstr(line, " fordblks="))
                lines++;
        fclose(f);
        if (lines == 0)
            fail_msg("%s has no heapstat line", path);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dump_stats_reads_every_trace_cleanly),
        cmocka_unit_test(replay_verify_matches_every_address),
        cmocka_unit_test(every_trace_has_its_real_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
