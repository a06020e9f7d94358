/* A page's write cursor: the ordered operations on it, named once for every C file here
 * (cpp/include/kftools/journal.hpp has the C++ twin, journal/writer.py the Python one).
 *
 * kf_load_cursor   acquire: frame bytes are read only after the cursor that covers them.
 * kf_publish_cursor  the writer's commit: a release store, then a futex wake of the cursor when the
 *                  header's `waiters` says a follower is parked on it (a plain load: one load per commit).
 * kf_park          a follower's wait: add itself to `waiters`, re-read the cursor and the page's flags, and
 *                  futex-wait while the cursor still holds `seen` and the page is not sealed (bounded by a
 *                  timeout), then leave `waiters`. The kernel waits only while the cursor still holds `seen`,
 *                  so a commit that lands before the wait ends it at once; one that lands after is woken
 *                  when the writer's load of `waiters` sees the follower. x86 lets that load pass the
 *                  cursor store before it (a fence there would cost every commit ~30%), so a store still
 *                  in flight while the follower enters the wait, or a seal (it republishes the same
 *                  value), can leave one follower to its timeout: bounded, and rare.
 *
 * The futex is shared (not FUTEX_PRIVATE): the key is the file and offset, so a follower's mapping and
 * the writer's meet. Offsets come from format.py's layout (CURSOR_OFFSET, WAITERS_OFFSET), passed in. */
#ifndef KFTOOLS_CURSOR_H
#define KFTOOLS_CURSOR_H

#include <stdint.h>
#include <limits.h>
#include <time.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#define KF_HAVE_FUTEX 1
#endif

/* a frame's position as one u64, as format.py's pack_position: page << 32 | offset */
static inline uint64_t kf_pack_position(uint64_t page, uint64_t offset) { return page << 32 | offset; }

static inline uint32_t kf_load_cursor(const unsigned char *base, Py_ssize_t cursor_off) {
    return __atomic_load_n((const uint32_t *)(base + cursor_off), __ATOMIC_ACQUIRE);
}

/* waiters_off < 0: the page has no waiter count to read (the store only) */
static inline void kf_publish_cursor(unsigned char *base, Py_ssize_t cursor_off, Py_ssize_t waiters_off, uint32_t v) {
    uint32_t *cur = (uint32_t *)(base + cursor_off);
    __atomic_store_n(cur, v, __ATOMIC_RELEASE);
#ifdef KF_HAVE_FUTEX
    if (waiters_off >= 0 && __atomic_load_n((const uint32_t *)(base + waiters_off), __ATOMIC_RELAXED))
        syscall(SYS_futex, cur, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
#else
    (void)waiters_off;
#endif
}

/* Wait up to timeout_ns while the cursor holds `seen` and no bit of `sealed` is set in the u32 at flags_off
 * (flags_off < 0: not checked); returns the cursor then. `hdr` is a writable mapping of the page header
 * when waiters_off >= 0 (else the wait is timed only: no writer wakes it). */
static inline uint32_t kf_park(unsigned char *hdr, Py_ssize_t cursor_off, Py_ssize_t waiters_off,
                               Py_ssize_t flags_off, uint32_t sealed, uint32_t seen, long long timeout_ns) {
    uint32_t *cur = (uint32_t *)(hdr + cursor_off);
    uint32_t *waiters = waiters_off >= 0 ? (uint32_t *)(hdr + waiters_off) : NULL;
    struct timespec ts = {(time_t)(timeout_ns / 1000000000), (long)(timeout_ns % 1000000000)};
    if (waiters) __atomic_add_fetch(waiters, 1, __ATOMIC_SEQ_CST);
    uint32_t c = __atomic_load_n(cur, __ATOMIC_SEQ_CST);
    int ended = flags_off >= 0 && (__atomic_load_n((const uint32_t *)(hdr + flags_off), __ATOMIC_ACQUIRE) & sealed);
    if (c == seen && !ended) {
#ifdef KF_HAVE_FUTEX
        syscall(SYS_futex, cur, FUTEX_WAIT, seen, &ts, NULL, 0);
#else
        nanosleep(&ts, NULL);
#endif
        c = __atomic_load_n(cur, __ATOMIC_ACQUIRE);
    }
    if (waiters) __atomic_sub_fetch(waiters, 1, __ATOMIC_SEQ_CST);
    return c;
}

#endif
