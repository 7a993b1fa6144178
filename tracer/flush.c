/* flush.c: the flusher task, and how the program's threads hand it work and wait for it.
 *
 * The flusher is a task made with clone(CLONE_VM): it shares the program's memory but is not
 * in its thread group (no DTV calloc, no thread the program can see), has its own copy of the
 * file table, blocks every signal and has a private fake thread pointer (so zlib's
 * stack-protector reads work and no glibc thread state is touched). It sleeps on a futex;
 * writers wake it when a chunk fills, and it wakes by itself every FRAGSCOPE_FLUSH_MS to write
 * what is buffered (block_writer.c does the work).
 *
 * Ends of the program: exit() and fatal signals ask for a synchronous round and leave the rest
 * to the flusher; exec and _exit ask for the final round (all records, then the end marker)
 * and wait for it; a failed exec takes the end marker back. When the program is gone (getppid()
 * changes) or has exec'd (kcmp says its memory is not ours), the flusher still holds the
 * memory: it writes whatever was committed, closes the file with the end marker and exits. So
 * even SIGKILL loses nothing committed.
 *
 * A program thread that runs out of buffer memory, and exit(), do rounds themselves (in the
 * second drain context) rather than wait for a flusher that the machine may not be running.
 * Without a flusher (it could not be started) program threads do all the rounds.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include "recorder.h"
#include "rec_syscall.h"

#define FLUSHER_STACK (256u << 10)
#define FLUSHER_TLS (128u << 10)

/* Shared between the program's threads and the flusher. */
static volatile uint32_t wake_word, sleeping;
static volatile uint32_t req_gen, ack_gen;
static volatile uint32_t flusher_alive;
static volatile uint32_t final_req, final_done, unfinal_req;
static volatile uint32_t exiting_hint;
static volatile uint32_t room_word, room_waiters;   /* writers waiting for chunk memory */
static volatile uint64_t helped_rounds, room_waits;
static char *flusher_stack, *flusher_tls;

int flush_room_waiters(void)
{
    return __atomic_load_n(&room_waiters, __ATOMIC_RELAXED) != 0;
}

static void put_num(char *buf, size_t *at, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        buf[(*at)++] = tmp[--n];
}

/* FRAGSCOPE_STATS=1: one line on stderr when the flusher ends. */
static void report_stats(void)
{
    if (!rec.cfg.stats)
        return;
    struct {
        long utime_s, utime_us, stime_s, stime_us;
        long rest[14];
    } ru;
    rsys2(SYS_getrusage, 0 /* RUSAGE_SELF */, &ru);
    char buf[256];
    size_t at = 0;
    uint64_t b[3];
    blocks_stats(b);
    const char *parts[] = {"fragscope-trace: pid ", " events ", " blocks ", " raw_bytes ",
                           " bytes ", " flusher_cpu_ms ", " helped ", " waits ", "\n"};
    uint64_t vals[] = {(uint64_t)rec.pid, rec_seq, b[0], b[1], b[2],
                       (uint64_t)(ru.utime_s + ru.stime_s) * 1000 +
                           (uint64_t)(ru.utime_us + ru.stime_us) / 1000,
                       helped_rounds, room_waits};
    for (int i = 0; i < 9; i++) {
        for (const char *p = parts[i]; *p; p++)
            buf[at++] = *p;
        if (i < 8)
            put_num(buf, &at, vals[i]);
    }
    rsys3(SYS_write, 2, buf, at);
}

static __attribute__((noreturn)) void flusher_exit(void)
{
    report_stats();
    __atomic_store_n(&flusher_alive, 0, __ATOMIC_RELEASE);
    rec_futex_wake(&flusher_alive);
    for (;;)
        rsys1(SYS_exit, 0);
}

/* Is the program still running in the memory we share? getppid() changes when it has died;
 * kcmp tells an exec (the same pid, a new address space). */
static int program_gone(void)
{
    if (rsys0(SYS_getppid) != rec.pid)
        return 1;
    long r = rsys6(SYS_kcmp, rsys0(SYS_getpid), rec.pid, 0 /* KCMP_VM */, 0, 0, 0);
    return r > 0 || r == -ESRCH;
}

/* The clone copied the program's descriptor table: keep only the trace file (and stderr for
 * FRAGSCOPE_STATS), or the program's pipes and sockets would stay open in the flusher and, say,
 * a reader would not see EOF when the program closes its end. */
static void close_other_fds(void)
{
    int keep = rec.fd;
    int from = 0;
    if (rec.cfg.stats) {
        rsys1(SYS_close, 0);
        rsys1(SYS_close, 1);
        from = 3;                              /* stderr stays */
    }
    long r = 0;
    if (keep > from)
        r |= rsys3(SYS_close_range, from, keep - 1, 0);
    r |= rsys3(SYS_close_range, keep + 1, ~0u, 0);
    if (r != 0)                                /* kernels before 5.9 */
        for (int fd = from; fd < 65536; fd++)
            if (fd != keep)
                rsys1(SYS_close, fd);
}

/* The flusher also keeps the program's clock (recorder.h, "time") within a tick of the coarse
 * clock: it wakes every CLOCK_TICK_MS, and runs a round only when a writer woke it, something was
 * asked of it, or FRAGSCOPE_FLUSH_MS has passed. */
#define CLOCK_TICK_MS 4
#define QUIET_TICKS 64                  /* ~1/4 s without a call: stop ticking */

static int flusher_main(void *arg)
{
    (void)arg;
    close_other_fds();
    uint32_t last_w = __atomic_load_n(&wake_word, __ATOMIC_ACQUIRE) - 1;
    uint64_t next_round = 0, seen_seq = 0;
    unsigned quiet = 0;
    for (;;) {
        uint32_t w = __atomic_load_n(&wake_word, __ATOMIC_ACQUIRE);
        uint64_t now = rec_clock_read();
        uint64_t seq = rec_seq;
        quiet = seq == seen_seq ? quiet + 1 : 0;
        seen_seq = seq;
        if (quiet == QUIET_TICKS)
            rec_clock_idle = 1;
        if (program_gone()) {
            blocks_program_dead();
            if (!blocks_ended()) {
                blocks_round(0, 1, 0);
                blocks_write_end();
            }
            rsys1(SYS_close, rec.fd);
            flusher_exit();
        }
        if (unfinal_req) {
            blocks_take_back_end();           /* exec failed: go on */
            final_done = 0;
            __atomic_store_n(&unfinal_req, 0, __ATOMIC_RELEASE);
            rec_futex_wake(&unfinal_req);
        }
        uint32_t r = __atomic_load_n(&req_gen, __ATOMIC_ACQUIRE);
        uint32_t f = __atomic_load_n(&final_req, __ATOMIC_ACQUIRE);
        if (f || ack_gen != r || now >= next_round || exiting_hint) {
            blocks_round(0, (int)f, 0);
            last_w = w;
            next_round = now + (uint64_t)rec.cfg.flush_ms * 1000000ull;
        } else if (w != last_w) {
            blocks_round(0, 0, 1);            /* a writer filled a chunk */
            last_w = w;
        }
        if (f) {
            blocks_write_end();
            __atomic_store_n(&final_done, 1, __ATOMIC_RELEASE);
            __atomic_store_n(&final_req, 0, __ATOMIC_RELEASE);
            rec_futex_wake(&final_done);
        }
        if (ack_gen != r) {
            __atomic_store_n(&ack_gen, r, __ATOMIC_RELEASE);
            rec_futex_wake(&ack_gen);
        }
        __atomic_exchange_n(&sleeping, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&wake_word, __ATOMIC_SEQ_CST) == w && !final_req && !unfinal_req &&
            req_gen == r)
            rec_futex_wait(&wake_word, w,
                           exiting_hint ? 2
                           : rec.cfg.flush_ms < CLOCK_TICK_MS || rec.cfg.precise_clock ||
                                   quiet >= QUIET_TICKS
                               ? rec.cfg.flush_ms
                               : CLOCK_TICK_MS);
        __atomic_store_n(&sleeping, 0, __ATOMIC_SEQ_CST);
    }
    return 0;
}

int flusher_start(void)
{
    if (!flusher_stack)
        flusher_stack = rec_map(FLUSHER_STACK);
    if (!flusher_tls)
        flusher_tls = rec_map(FLUSHER_TLS);
    if (!flusher_stack || !flusher_tls)
        return -1;
    /* A thread pointer of its own: self pointers and the stack-protector and pointer guards
     * copied from ours; static TLS below it is zeroed scratch the flusher never relies on. */
    uint64_t *tcb = (uint64_t *)(flusher_tls + FLUSHER_TLS - 32768);
    memset(tcb, 0, 4096);
    uint64_t guard, pguard;
    __asm__("mov %%fs:0x28, %0" : "=r"(guard));
    __asm__("mov %%fs:0x30, %0" : "=r"(pguard));
    tcb[0] = (uint64_t)(uintptr_t)tcb;
    tcb[2] = (uint64_t)(uintptr_t)tcb;
    tcb[5] = guard;
    tcb[6] = pguard;
    final_req = final_done = unfinal_req = 0;
    __atomic_store_n(&flusher_alive, 1, __ATOMIC_RELEASE);
    uint64_t all = ~0ull, old;
    rsys4(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, 8);
    int pid = clone(flusher_main, flusher_stack + FLUSHER_STACK - 64,
                    CLONE_VM | CLONE_SETTLS | CLONE_UNTRACED, NULL, NULL, tcb, NULL);
    rsys4(SYS_rt_sigprocmask, SIG_SETMASK, &old, 0, 8);
    if (pid <= 0) {
        flusher_alive = 0;
        return -1;
    }
    return 0;
}

void flusher_wake(void)
{
    __atomic_add_fetch(&wake_word, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&sleeping, __ATOMIC_SEQ_CST))
        rec_futex_wake(&wake_word);
}

static void wake_now(void)
{
    __atomic_add_fetch(&wake_word, 1, __ATOMIC_SEQ_CST);
    rec_futex_wake(&wake_word);
}

/* Waits until *w differs from v, or timeout_ms passes, or the flusher is gone. */
static void wait_while(volatile uint32_t *w, uint32_t v, unsigned timeout_ms)
{
    uint64_t deadline = rec_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    while (__atomic_load_n(w, __ATOMIC_ACQUIRE) == v && flusher_alive) {
        uint64_t now = rec_now_ns();
        if (now >= deadline)
            return;
        unsigned ms = (unsigned)((deadline - now) / 1000000ull) + 1;
        rec_futex_wait(w, v, ms > 20 ? 20 : ms);
    }
}

/* Everything committed before the call is in the file when it returns (or timeout_ms passed). */
void flush_sync(unsigned timeout_ms)
{
    if (!flusher_alive) {
        blocks_round(1, 1, 0);
        return;
    }
    /* Do what can be done here (the machine may not be running the flusher), then make sure
     * the flusher has finished the pieces it was holding. */
    blocks_round(1, 0, 0);
    uint32_t g = __atomic_add_fetch(&req_gen, 1, __ATOMIC_SEQ_CST);
    wake_now();
    uint64_t deadline = rec_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    for (;;) {
        uint32_t a = __atomic_load_n(&ack_gen, __ATOMIC_ACQUIRE);
        if ((int32_t)(a - g) >= 0 || !flusher_alive || rec_now_ns() >= deadline)
            return;
        rec_futex_wait(&ack_gen, a, 20);
    }
}

void flush_note_exiting(void)
{
    exiting_hint = 1;
}

/* exec, _exit: every record, then the end marker. */
void flush_final(void)
{
    if (flusher_alive) {
        __atomic_store_n(&final_req, 1, __ATOMIC_SEQ_CST);
        wake_now();
        wait_while(&final_done, 0, 10000);
        if (final_done)
            return;
    }
    blocks_round(1, 1, 0);
    blocks_write_end();
    final_done = 1;
}

void flush_resume_after_failed_exec(void)
{
    if (flusher_alive) {
        __atomic_store_n(&unfinal_req, 1, __ATOMIC_SEQ_CST);
        wake_now();
        wait_while(&unfinal_req, 1, 5000);
        return;
    }
    blocks_take_back_end();
    final_done = 0;
}

/* A writer is out of buffer memory: drain its own records (whoever the machine runs does
 * the work), or wait for the flusher to free some. */
void flush_wait_for_room(struct rec_thread *t)
{
    if (!blocks_ended() && blocks_help(t) > 0) {
        helped_rounds++;
        return;
    }
    __atomic_add_fetch(&room_waits, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&room_waiters, 1, __ATOMIC_SEQ_CST);
    uint32_t w = __atomic_load_n(&room_word, __ATOMIC_SEQ_CST);
    flusher_wake();
    rec_futex_wait(&room_word, w, 2);
    __atomic_sub_fetch(&room_waiters, 1, __ATOMIC_SEQ_CST);
}

void flush_note_recycled(void)
{
    __atomic_add_fetch(&room_word, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&room_waiters, __ATOMIC_SEQ_CST))
        rec_futex_wake(&room_word);
}

/* In a fork child: the parent's flusher is not here and its file is not ours. */
void flush_after_fork_child(void)
{
    if (rec.fd >= 0)
        rsys1(SYS_close, rec.fd);
    rec.fd = -1;
    wake_word = sleeping = 0;
    req_gen = ack_gen = 0;
    flusher_alive = 0;
    final_req = final_done = unfinal_req = 0;
    exiting_hint = 0;
    room_word = room_waiters = 0;
    blocks_after_fork();
}
