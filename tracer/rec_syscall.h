/* rec_syscall.h: raw Linux system calls for the recorder (x86_64).
 *
 * The flusher task runs without a glibc thread of its own, so it must not touch errno or any
 * other thread-local variable: it calls the kernel directly through these. They return the
 * kernel's result (a negative errno on failure) and are also async-signal-safe, which the
 * recorder's fatal-signal and _exit paths rely on.
 */
#ifndef FRAGSCOPE_REC_SYSCALL_H
#define FRAGSCOPE_REC_SYSCALL_H

#include <stdint.h>
#include <sys/syscall.h>

static inline long rsys6(long n, long a, long b, long c, long d, long e, long f)
{
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
#define rsys0(n) rsys6((n), 0, 0, 0, 0, 0, 0)
#define rsys1(n, a) rsys6((n), (long)(a), 0, 0, 0, 0, 0)
#define rsys2(n, a, b) rsys6((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define rsys3(n, a, b, c) rsys6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define rsys4(n, a, b, c, d) rsys6((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

/* Spin a little, then give the CPU away: the holder of a recorder lock may be descheduled. */
static inline void rec_spin_pause(unsigned *spins)
{
    if (++*spins < 64)
        __builtin_ia32_pause();
    else
        rsys0(SYS_sched_yield);
}

/* futex on a 32-bit word shared by the program's threads and the flusher (same memory). */
#define REC_FUTEX_WAIT 0
#define REC_FUTEX_WAKE 1
struct rec_timespec {
    long tv_sec, tv_nsec;
};
static inline long rec_futex_wait(volatile uint32_t *w, uint32_t val, unsigned ms)
{
    struct rec_timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    return rsys4(SYS_futex, w, REC_FUTEX_WAIT, val, &ts);
}
static inline long rec_futex_wake(volatile uint32_t *w)
{
    return rsys3(SYS_futex, w, REC_FUTEX_WAKE, 0x7fffffff);
}

/* Writes all of buf, retrying on EINTR and short writes. 0 or a negative errno. */
static inline long rec_write_all(int fd, const void *buf, uint64_t len)
{
    const char *p = (const char *)buf;
    while (len) {
        long n = rsys3(SYS_write, fd, p, len);
        if (n == -4) /* EINTR */
            continue;
        if (n <= 0)
            return n ? n : -5;
        p += n;
        len -= (uint64_t)n;
    }
    return 0;
}

#endif
