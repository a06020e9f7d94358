/* Paced emission for `kftools replay`: the inner loop of Replay._play in C.
 *
 * emit() copies prepared frames into the output page as they fall due, spinning
 * on CLOCK_MONOTONIC for the last stretch before each deadline, stamps each
 * copy's gen_time with CLOCK_REALTIME and publishes the page's write cursor
 * after the bytes (one release store per run of frames that are due together).
 * At a million frames a second a Python loop spends the whole budget of a frame
 * on its own overhead and falls behind by milliseconds; here a frame costs a
 * memcpy and two clock reads.
 *
 * The Python loop in replay/core.py is the twin: it does the same when this
 * module is not built, and for what this one leaves to it (pauses, single
 * steps, strategies that see every frame, sleeping through long gaps).
 *
 * Offsets (the cursor in the page header, gen_time in a frame header) come from
 * the layout declarations, passed in by the caller; nothing here knows them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

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

static int get_buffer(PyObject *obj, Py_buffer *view, int writable) {
    return PyObject_GetBuffer(obj, view, (writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) | PyBUF_C_CONTIGUOUS);
}

/* emit(data, starts, rel, i, n, anchor, spin_ns, slice_ns, page, pos, cap, cursor_off, gen_off, emitted)
 *   -> (i, pos, status)
 *
 * data: the batch's frames back to back; starts: int64 offsets of frames 0..n (the last is the end);
 * rel: int64 deadline of each frame in ns after `anchor` (CLOCK_MONOTONIC), non-decreasing;
 * page: the output page's writable mapping, with room up to `cap` and the next frame going at `pos`;
 * emitted: int64, receives for each frame emitted the moment after its cursor store, minus `anchor`.
 * Emits from frame i on while the next frame is due within spin_ns; stops with
 *   DONE  all n frames emitted;
 *   WAIT  the next frame is due later than spin_ns from now (the caller sleeps, prepares the next
 *         batch, or pauses);
 *   FULL  the next frame does not fit in the page (the caller rolls to a new page);
 *   SLICE slice_ns have passed since the call began (the caller checks for stop and pause).
 */
static PyObject *emit(PyObject *self, PyObject *args) {
    PyObject *data_o, *starts_o, *rel_o, *page_o, *emitted_o;
    Py_ssize_t i, n, pos, cap, cursor_off, gen_off;
    long long anchor, spin_ns, slice_ns;
    if (!PyArg_ParseTuple(args, "OOOnnLLLOnnnnO", &data_o, &starts_o, &rel_o, &i, &n, &anchor, &spin_ns, &slice_ns,
                          &page_o, &pos, &cap, &cursor_off, &gen_off, &emitted_o)) {
        return NULL;
    }
    Py_buffer data, starts_b, rel_b, page, emitted_b;
    if (get_buffer(data_o, &data, 0) < 0) return NULL;
    if (get_buffer(starts_o, &starts_b, 0) < 0) goto fail_data;
    if (get_buffer(rel_o, &rel_b, 0) < 0) goto fail_starts;
    if (get_buffer(page_o, &page, 1) < 0) goto fail_rel;
    if (get_buffer(emitted_o, &emitted_b, 1) < 0) goto fail_page;

    const int64_t *starts = (const int64_t *)starts_b.buf;
    const int64_t *rel = (const int64_t *)rel_b.buf;
    int64_t *emitted = (int64_t *)emitted_b.buf;
    unsigned char *out = (unsigned char *)page.buf;
    const unsigned char *src = (const unsigned char *)data.buf;
    if (n < 0 || i < 0 || i > n || starts_b.len < (Py_ssize_t)sizeof(int64_t) * (n + 1) ||
        rel_b.len < (Py_ssize_t)sizeof(int64_t) * n || emitted_b.len < (Py_ssize_t)sizeof(int64_t) * n ||
        cap > page.len || pos < 0 || pos > cap || cursor_off < 0 || cursor_off + 4 > page.len || cursor_off % 4 ||
        gen_off < 0 || (n > 0 && (starts[0] < 0 || starts[n] > data.len))) {
        PyErr_SetString(PyExc_ValueError, "emit: buffers and positions do not match");
        goto fail_all;
    }
    for (Py_ssize_t k = i; k < n; k++) {
        if (starts[k + 1] < starts[k] + gen_off + 8) {
            PyErr_SetString(PyExc_ValueError, "emit: a frame is shorter than its header");
            goto fail_all;
        }
    }

    int status = DONE;
    int64_t began = clock_ns(CLOCK_MONOTONIC), now = began;
    while (i < n) {
        int64_t due = anchor + rel[i];
        if (due > now) {
            if (due - now > spin_ns) { status = WAIT; break; }
            if (now - began > slice_ns) { status = SLICE; break; }
            while ((now = clock_ns(CLOCK_MONOTONIC)) < due) cpu_relax();
        }
        /* every frame due by now goes out in one run, behind one cursor store */
        Py_ssize_t j = i + 1;
        while (j < n && anchor + rel[j] <= now) j++;
        int64_t a = starts[i], room = cap - pos;
        if (starts[j] - a > room) {
            while (j > i && starts[j] - a > room) j--;
            if (j == i) { status = FULL; break; }
        }
        int64_t size = starts[j] - a;
        int64_t wall = clock_ns(CLOCK_REALTIME);
        memcpy(out + pos, src + a, (size_t)size);
        for (Py_ssize_t k = i; k < j; k++) memcpy(out + pos + (starts[k] - a) + gen_off, &wall, 8);
        pos += (Py_ssize_t)size;
        /* commit: readers that see the cursor see the bytes before it */
        __atomic_store_n((uint32_t *)(out + cursor_off), (uint32_t)pos, __ATOMIC_RELEASE);
        now = clock_ns(CLOCK_MONOTONIC);
        for (Py_ssize_t k = i; k < j; k++) emitted[k] = now - anchor;
        i = j;
        if (i < n && now - began > slice_ns) { status = SLICE; break; }
    }
    PyBuffer_Release(&emitted_b);
    PyBuffer_Release(&page);
    PyBuffer_Release(&rel_b);
    PyBuffer_Release(&starts_b);
    PyBuffer_Release(&data);
    return Py_BuildValue("nni", i, pos, status);

fail_all:
    PyBuffer_Release(&emitted_b);
fail_page:
    PyBuffer_Release(&page);
fail_rel:
    PyBuffer_Release(&rel_b);
fail_starts:
    PyBuffer_Release(&starts_b);
fail_data:
    PyBuffer_Release(&data);
    return NULL;
}

static PyMethodDef methods[] = {
    {"emit", emit, METH_VARARGS,
     "emit(data, starts, rel, i, n, anchor, spin_ns, slice_ns, page, pos, cap, cursor_off, gen_off, emitted)"
     " -> (i, pos, status): copy frames into the page as they fall due (see the module source)."},
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
