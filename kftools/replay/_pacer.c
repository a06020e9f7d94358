/* Paced emission for `kftools replay`: the inner loop of Replay._play in C.
 *
 * emit() copies frames into the output page as they fall due, spinning
 * on CLOCK_MONOTONIC for the last stretch before each deadline, stamps each
 * copy's gen_time with CLOCK_REALTIME (its trigger_time keeps the original
 * gen_time) and publishes the page's write cursor
 * after the bytes (one release store per run of frames that are due together).
 * At a million frames a second a Python loop spends the whole budget of a frame
 * on its own overhead and falls behind by milliseconds; here a frame costs a
 * memcpy and two clock reads.
 *
 * The Python loop in replay/core.py is the twin: it does the same when this
 * module is not built, and for what this one leaves to it (pauses, strategies
 * that see every frame, an injected clock, sleeping through long gaps).
 *
 * Frames are read where they lie (the source page itself when it is in kftools'
 * layout: no copy), located by their offsets; preparing a batch is then only
 * walking to it and schedule(), a few µs, which frames due meanwhile wait through.
 *
 * Offsets (the cursor in the page header, fields of a frame header) come from
 * the layout declarations, passed in by the caller; nothing here knows them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "../journal/cursor.h"

enum { DONE = 0, WAIT = 1, FULL = 2, SLICE = 3 };

static inline int64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void release_buffers(Py_buffer *views, int n) {
    while (n-- > 0) PyBuffer_Release(&views[n]);
}

/* Contiguous views of objs[0..n), writable where `writable` has a 'w'; on failure none is held. */
static int get_buffers(PyObject *const *objs, const char *writable, Py_buffer *views, int n) {
    for (int k = 0; k < n; k++) {
        int flags = (writable[k] == 'w' ? PyBUF_WRITABLE : PyBUF_SIMPLE) | PyBUF_C_CONTIGUOUS;
        if (PyObject_GetBuffer(objs[k], &views[k], flags) < 0) {
            release_buffers(views, k);
            return -1;
        }
    }
    return 0;
}

/* A frame's bytes in `src` at `off`, bounds-checked; its whole size (header and payload), or -1. */
static inline int64_t frame_size(const Py_buffer *src, int64_t off, Py_ssize_t hdr, Py_ssize_t len_off) {
    if (off < 0 || off > src->len - hdr) return -1;
    uint32_t payload;
    memcpy(&payload, (const unsigned char *)src->buf + off + len_off, 4);
    int64_t size = (int64_t)hdr + payload;
    return size > src->len - off ? -1 : size;
}

static int check_layout(Py_ssize_t hdr, Py_ssize_t len_off, Py_ssize_t gen_off, Py_ssize_t trig_off) {
    if (hdr <= 0 || len_off < 0 || len_off + 4 > hdr || gen_off < 0 || gen_off + 8 > hdr || trig_off < 0 ||
        trig_off + 8 > hdr) {
        PyErr_SetString(PyExc_ValueError, "pacer: header offsets do not fit the header");
        return -1;
    }
    return 0;
}

/* Deadline of a gen_time, ns after the anchor: (gen - t0) / speed, truncated as numpy's astype(int64) does,
 * saturated where that does not fit (numpy's result there is undefined). */
static inline int64_t deadline(int64_t gen, int64_t t0, double speed) {
    double d = (double)(int64_t)((uint64_t)gen - (uint64_t)t0) / speed;
    if (!(d < 9223372036854775807.0)) return d != d ? 0 : INT64_MAX;
    if (d < -9223372036854775808.0) return INT64_MIN;
    return (int64_t)d;
}

/* schedule(src, offsets, n, hdr, len_off, gen_off, trig_off, t0, speed, last, rel) -> last
 *
 * src: frames in kftools' layout at `offsets` (int64, at least n): a page's mapping or a copy;
 * rel: int64 out, each frame's deadline in ns after the anchor, never before the one before it (nor `last`,
 * the previous batch's last deadline). Returns the last deadline. Checks that every frame lies in `src`.
 */
static PyObject *schedule(PyObject *self, PyObject *args) {
    PyObject *src_o, *offsets_o, *rel_o;
    Py_ssize_t n, hdr, len_off, gen_off, trig_off;
    long long t0, last;
    double speed;
    if (!PyArg_ParseTuple(args, "OOnnnnnLdLO", &src_o, &offsets_o, &n, &hdr, &len_off, &gen_off, &trig_off, &t0,
                          &speed, &last, &rel_o)) {
        return NULL;
    }
    if (check_layout(hdr, len_off, gen_off, trig_off) < 0) return NULL;
    if (!(speed > 0)) {
        PyErr_SetString(PyExc_ValueError, "schedule: speed must be positive");
        return NULL;
    }
    PyObject *const objs[] = {src_o, offsets_o, rel_o};
    Py_buffer b[3];
    if (get_buffers(objs, "..w", b, 3) < 0) return NULL;
    const Py_buffer *src = &b[0];
    PyObject *result = NULL;
    if (n < 0 || b[1].len < (Py_ssize_t)sizeof(int64_t) * n || b[2].len < (Py_ssize_t)sizeof(int64_t) * n) {
        PyErr_SetString(PyExc_ValueError, "schedule: buffers do not match");
        goto done;
    }
    const int64_t *offsets = (const int64_t *)b[1].buf;
    int64_t *rel = (int64_t *)b[2].buf;
    const unsigned char *base = (const unsigned char *)src->buf;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (frame_size(src, offsets[k], hdr, len_off) < 0) {
            PyErr_Format(PyExc_ValueError, "schedule: frame %zd at %lld lies outside the buffer", k,
                         (long long)offsets[k]);
            goto done;
        }
        int64_t gen;
        memcpy(&gen, base + offsets[k] + gen_off, 8);
        int64_t r = deadline(gen, t0, speed);
        last = r > last ? r : last;
        rel[k] = last;
    }
    result = PyLong_FromLongLong(last);
done:
    release_buffers(b, 3);
    return result;
}

/* emit(src, offsets, rel, i, n, anchor, spin_ns, slice_ns, page, pos, cap, cursor_off, hdr, len_off, gen_off,
 *      trig_off, emitted[, waiters_off]) -> (i, pos, status)
 *
 * src: frames in kftools' layout at `offsets` (int64): the source page's mapping (read, never written) or a
 * copy; rel: int64 deadline of each frame in ns after `anchor` (CLOCK_MONOTONIC), non-decreasing (schedule);
 * page: the output page's writable mapping, with room up to `cap` and the next frame going at `pos`;
 * emitted: int64, receives for each frame emitted the moment after its cursor store, minus `anchor`;
 * waiters_off: the page header's waiter count (cursor.h: parked followers are woken), -1 for none.
 * Each copy's trigger_time is the source frame's gen_time, and its gen_time the wall clock when it went out.
 * Emits from frame i on while the next frame is due within spin_ns; stops with
 *   DONE  all n frames emitted;
 *   WAIT  the next frame is due later than spin_ns from now (the caller sleeps, prepares the next
 *         batch, or pauses);
 *   FULL  the next frame does not fit in the page (the caller rolls to a new page);
 *   SLICE slice_ns have passed since the call began (the caller checks for stop and pause).
 */
static PyObject *emit(PyObject *self, PyObject *args) {
    PyObject *src_o, *offsets_o, *rel_o, *page_o, *emitted_o;
    Py_ssize_t i, n, pos, cap, cursor_off, hdr, len_off, gen_off, trig_off, waiters_off = -1;
    long long anchor, spin_ns, slice_ns;
    if (!PyArg_ParseTuple(args, "OOOnnLLLOnnnnnnnO|n", &src_o, &offsets_o, &rel_o, &i, &n, &anchor, &spin_ns,
                          &slice_ns, &page_o, &pos, &cap, &cursor_off, &hdr, &len_off, &gen_off, &trig_off,
                          &emitted_o, &waiters_off)) {
        return NULL;
    }
    if (check_layout(hdr, len_off, gen_off, trig_off) < 0) return NULL;
    PyObject *const objs[] = {src_o, offsets_o, rel_o, page_o, emitted_o};
    Py_buffer b[5];
    if (get_buffers(objs, "...ww", b, 5) < 0) return NULL;
    const Py_buffer *src = &b[0], *page = &b[3];
    PyObject *result = NULL;
    const int64_t *offsets = (const int64_t *)b[1].buf;
    const int64_t *rel = (const int64_t *)b[2].buf;
    int64_t *emitted = (int64_t *)b[4].buf;
    unsigned char *out = (unsigned char *)page->buf;
    const unsigned char *in = (const unsigned char *)src->buf;
    if (n < 0 || i < 0 || i > n || b[1].len < (Py_ssize_t)sizeof(int64_t) * n ||
        b[2].len < (Py_ssize_t)sizeof(int64_t) * n || b[4].len < (Py_ssize_t)sizeof(int64_t) * n ||
        cap > page->len || pos < 0 || pos > cap || cursor_off < 0 || cursor_off + 4 > page->len || cursor_off % 4 ||
        waiters_off < -1 || (waiters_off >= 0 && (waiters_off + 4 > page->len || waiters_off % 4))) {
        PyErr_SetString(PyExc_ValueError, "emit: buffers and positions do not match");
        goto done;
    }

    int status = DONE, bad = 0;
    int64_t began = clock_ns(CLOCK_MONOTONIC), now = began;
    while (i < n) {
        int64_t due = anchor + rel[i];
        if (due > now) {
            if (due - now > spin_ns) { status = WAIT; break; }
            if (now - began > slice_ns) { status = SLICE; break; }
            while ((now = clock_ns(CLOCK_MONOTONIC)) < due) cpu_relax();
        }
        /* every frame due by now goes out in one run, behind one cursor store */
        int64_t wall = clock_ns(CLOCK_REALTIME);
        Py_ssize_t j = i;
        int full = 0;
        while (j < n && (j == i || anchor + rel[j] <= now)) {
            int64_t off = offsets[j], size = frame_size(src, off, hdr, len_off);
            if (size < 0) { bad = 1; break; }
            if (size > cap - pos) { full = 1; break; }
            memcpy(out + pos, in + off, (size_t)size);
            memcpy(out + pos + trig_off, in + off + gen_off, 8);  /* the original event time */
            memcpy(out + pos + gen_off, &wall, 8);
            pos += (Py_ssize_t)size;
            j++;
        }
        if (j > i) {
            /* commit: readers that see the cursor see the bytes before it; parked followers wake */
            kf_publish_cursor(out, cursor_off, waiters_off, (uint32_t)pos);
            now = clock_ns(CLOCK_MONOTONIC);
            for (Py_ssize_t k = i; k < j; k++) emitted[k] = now - anchor;
            i = j;
        }
        if (bad) break;
        if (full) { status = FULL; break; }
        if (i < n && now - began > slice_ns) { status = SLICE; break; }
    }
    if (bad)
        PyErr_Format(PyExc_ValueError, "emit: frame %zd at %lld lies outside the buffer", i, (long long)offsets[i]);
    else
        result = Py_BuildValue("nni", i, pos, status);
done:
    release_buffers(b, 5);
    return result;
}

static PyMethodDef methods[] = {
    {"schedule", schedule, METH_VARARGS,
     "schedule(src, offsets, n, hdr, len_off, gen_off, trig_off, t0, speed, last, rel) -> last:"
     " each frame's deadline (see the module source)."},
    {"emit", emit, METH_VARARGS,
     "emit(src, offsets, rel, i, n, anchor, spin_ns, slice_ns, page, pos, cap, cursor_off, hdr, len_off, gen_off,"
     " trig_off, emitted) -> (i, pos, status): copy frames into the page as they fall due (see the module source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_pacer", "Paced emission for replay.", -1, methods};

PyMODINIT_FUNC PyInit__pacer(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddIntConstant(m, "DONE", DONE) < 0 || PyModule_AddIntConstant(m, "WAIT", WAIT) < 0 ||
        PyModule_AddIntConstant(m, "FULL", FULL) < 0 || PyModule_AddIntConstant(m, "SLICE", SLICE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
