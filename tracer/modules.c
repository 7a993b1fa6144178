/* modules.c: the loaded objects (path, address range, GNU build-id), for symbolising stacks.
 *
 * dl_iterate_phdr walks the loader's list without allocating; for each object the range spans
 * its PT_LOAD segments and the build-id comes from its PT_NOTE segments in memory. The list is
 * scanned at start and again after every dlopen; objects not seen before are appended to an
 * mmap'd array that only grows, which the flusher writes out as module records. The scan also
 * finds the recorder's own range, whose frames stacks.c leaves out.
 */
#include <elf.h>
#include <link.h>
#include <string.h>
#include <unistd.h>
#include "recorder.h"
#include "rec_syscall.h"

#define MAX_MODULES 4096u

static struct trace_module *mods;
static volatile uint32_t mods_used;
static volatile int mods_lock;
static char exe_path[512];

uint32_t module_count(void)
{
    return __atomic_load_n(&mods_used, __ATOMIC_ACQUIRE);
}

const struct trace_module *module_at(uint32_t i)
{
    return &mods[i];
}

static void read_build_id(struct dl_phdr_info *info, const ElfW(Phdr) *ph, struct trace_module *m)
{
    const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr);
    const char *end = p + ph->p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
        const ElfW(Nhdr) *n = (const ElfW(Nhdr) *)p;
        const char *name = p + sizeof *n;
        const char *desc = name + ((n->n_namesz + 3) & ~3u);
        const char *next = desc + ((n->n_descsz + 3) & ~3u);
        if (next > end)
            break;
        if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 && !memcmp(name, "GNU", 4)) {
            unsigned len = n->n_descsz < sizeof m->build_id ? n->n_descsz : sizeof m->build_id;
            memcpy(m->build_id, desc, len);
            m->build_id_len = (uint8_t)len;
            return;
        }
        p = next;
    }
}

static int is_known(const struct trace_module *m)
{
    uint32_t n = mods_used;
    for (uint32_t i = 0; i < n; i++)
        if (mods[i].load_address == m->load_address && mods[i].size == m->size &&
            !strcmp(mods[i].path, m->path))
            return 1;
    return 0;
}

static int scan_one(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    (void)arg;
    struct trace_module m;
    memset(&m, 0, sizeof m);
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD) {
            uintptr_t a = info->dlpi_addr + ph->p_vaddr, b = a + ph->p_memsz;
            if (a < lo)
                lo = a;
            if (b > hi)
                hi = b;
        }
    }
    if (hi <= lo)
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_NOTE && !m.build_id_len)
            read_build_id(info, &info->dlpi_phdr[i], &m);
    m.load_address = lo;
    m.size = hi - lo;
    const char *name = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : exe_path;
    size_t len = strnlen(name, sizeof m.path - 1);
    memcpy(m.path, name, len);
    m.path[len] = 0;
    uintptr_t me = (uintptr_t)&modules_scan;
    if (me >= lo && me < hi) {
        rec.self_lo = lo;
        rec.self_hi = hi;
    }
    if (is_known(&m) || mods_used >= MAX_MODULES)
        return 0;
    mods[mods_used] = m;
    __atomic_store_n(&mods_used, mods_used + 1, __ATOMIC_RELEASE);
    return 0;
}

void modules_scan(void)
{
    for (unsigned spins_ = 0; __atomic_exchange_n(&mods_lock, 1, __ATOMIC_ACQUIRE);)
        rec_spin_pause(&spins_);
    if (!mods)
        mods = rec_map(MAX_MODULES * sizeof *mods);
    if (mods) {
        if (!exe_path[0]) {
            long n = rsys3(SYS_readlink, "/proc/self/exe", exe_path, sizeof exe_path - 1);
            if (n > 0)
                exe_path[n] = 0;
        }
        dl_iterate_phdr(scan_one, NULL);
    }
    __atomic_store_n(&mods_lock, 0, __ATOMIC_RELEASE);
}
