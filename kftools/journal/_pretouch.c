/* A pretoucher: a native thread that faults in a mapping ahead of where its owner works in it.
 *
 * The first touch of a 4 KiB page of a mapping costs a page fault: usually a
 * µs or two, but on a shared or memory-overcommitted host sometimes
 * milliseconds (the host backs the memory first). A paced replay or an engine
 * that must publish each frame on time cannot take that in the middle of a
 * stream. This thread takes it instead: it keeps the mapping populated from a
 * position to between half of `ahead` and `ahead` bytes past it, so the owner
 * finds its pages ready.
 * Chronicle Queue's pretoucher does the same for its appenders.
 *
 * The position is
 *   - for a writer's page (write, with a cursor): the page's write cursor;
 *   - otherwise what advance() last said (a reader's position in a page, bounded
 *     by the page's cursor so that nothing unwritten is faulted in; the fill of a
 *     buffer).
 * Pages are populated with MADV_POPULATE_WRITE / _READ, or, where the kernel
 * lacks them (Linux < 5.14), by a locked add of zero / a load on each page.
 *
 * Nothing a reader can see changes: populating leaves the bytes as they are, and
 * the fallback's atomic add of zero cannot lose a store the writer makes to the
 * same word meanwhile. The thread never takes the GIL, so an owner spinning in
 * C or Python does not hold it up.
 *
 * The object holds a buffer of the mapping while its thread runs: the mapping
 * cannot be closed (mmap.close raises BufferError) until stop(). A child process
 * forked meanwhile has no thread; stop() there only lets go of the buffer.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "cursor.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define SMALL_PAGE 4096
#define CHUNK (64 * 1024)          /* populated per call: stop stays prompt */
#define MIN_WAIT_NS (1000 * 1000)       /* how often the thread looks at the position, at most... */
#define MAX_WAIT_NS (10 * 1000 * 1000)  /* ...and at least: a position that starts moving at 200 MB/s uses
                                         * up no more than half of a 4 MiB stretch meanwhile */

typedef struct {
    PyObject_HEAD
    Py_buffer view;
    int have_view;
    pthread_t thread;
    int running;                   /* a thread was started and not yet joined */
    pid_t owner;                   /* the process that started it */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;                  /* under lock */
    unsigned char *base;
    Py_ssize_t cursor_off, end, ahead;  /* cursor_off < 0: no cursor */
    int write;                     /* populate for writing (else reading) */
    Py_ssize_t position;           /* what advance() last said (atomic) */
    int use_madvise;               /* cleared when the kernel lacks MADV_POPULATE_* */
    Py_ssize_t touched;            /* populated up to here (atomic: read by touched()) */
    int error;                     /* errno that stopped the thread early, 0 if none */
} Pretoucher;

/* Populate [from, to) of the mapping; 0, or an errno. */
static int populate(Pretoucher *p, Py_ssize_t from, Py_ssize_t to) {
    if (p->use_madvise) {
        if (madvise(p->base + from, (size_t)(to - from), p->write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ) == 0)
            return 0;
        if (errno != EINVAL) return errno;
        p->use_madvise = 0;  /* an older kernel: touch each page instead */
    }
    for (Py_ssize_t at = from; at < to; at += SMALL_PAGE) {
        if (p->write)
            __atomic_fetch_add((uint64_t *)(p->base + at), 0, __ATOMIC_RELAXED);
        else
            (void)__atomic_load_n(p->base + at, __ATOMIC_RELAXED);
    }
    return 0;
}

/* Whether stop() was called; waits up to `wait_ns` for it first. */
static int should_stop(Pretoucher *p, int64_t wait_ns) {
    pthread_mutex_lock(&p->lock);
    if (wait_ns > 0 && !p->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        int64_t ns = until.tv_nsec + wait_ns;
        until.tv_sec += ns / 1000000000;
        until.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&p->wake, &p->lock, &until);
    }
    int stop = p->stopping;
    pthread_mutex_unlock(&p->lock);
    return stop;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Tops the populated stretch up to `ahead` past the position whenever less than half of it is left, and in
 * between sleeps until half is expected to be left at the rate the position moved (1-10 ms): a thread
 * that woke every millisecond kept an idle CPU waking, which on a virtual machine costs everyone. */
static void *run(void *arg) {
    Pretoucher *p = (Pretoucher *)arg;
    int64_t wait = 0, seen_t = now_ns();
    Py_ssize_t seen_at = -1;
    while (!should_stop(p, wait)) {
        Py_ssize_t cursor = p->cursor_off < 0 ? p->end
                          : kf_load_cursor(p->base, p->cursor_off);
        Py_ssize_t at = p->write && p->cursor_off >= 0 ? cursor : __atomic_load_n(&p->position, __ATOMIC_RELAXED);
        Py_ssize_t target = (at + p->ahead + SMALL_PAGE - 1) / SMALL_PAGE * SMALL_PAGE;
        if (target > p->end) target = p->end;
        if (!p->write && target > cursor) target = cursor;  /* a reader: nothing past what is written */
        Py_ssize_t touched = __atomic_load_n(&p->touched, __ATOMIC_RELAXED);
        if (touched < at) touched = at / SMALL_PAGE * SMALL_PAGE;  /* the owner got there first */
        if (touched < target && (touched - at < p->ahead / 2 || target == p->end || target == cursor)) {
            Py_ssize_t to = touched + CHUNK < target ? touched + CHUNK : target;
            int err = populate(p, touched, to);
            if (err) {  /* an optimisation only: the owner's own accesses still fault the pages in */
                p->error = err;
                break;
            }
            __atomic_store_n(&p->touched, to, __ATOMIC_RELAXED);
            wait = 0;  /* on until topped up */
            continue;
        }
        int64_t t = now_ns();
        double rate = seen_at >= 0 && at > seen_at && t > seen_t ? (double)(at - seen_at) / (double)(t - seen_t) : 0;
        seen_at = at;
        seen_t = t;
        double until_half = rate > 0 ? (double)(touched - at - p->ahead / 2) / rate : (double)MAX_WAIT_NS;
        wait = until_half < MIN_WAIT_NS ? MIN_WAIT_NS : until_half > MAX_WAIT_NS ? MAX_WAIT_NS : (int64_t)until_half;
    }
    return NULL;
}

static void stop_thread(Pretoucher *p) {
    if (p->running && p->owner == getpid()) {
        pthread_mutex_lock(&p->lock);
        p->stopping = 1;
        pthread_cond_signal(&p->wake);
        pthread_mutex_unlock(&p->lock);
        /* with the GIL held: the thread never takes it, and is done within one CHUNK */
        pthread_join(p->thread, NULL);
    }
    /* a forked child has no thread to stop (and its copy of the lock may be held for ever) */
    p->running = 0;
    if (p->have_view) {
        PyBuffer_Release(&p->view);
        p->have_view = 0;
    }
}

static int init(Pretoucher *p, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"mapping", "end", "ahead", "cursor_offset", "write", "madvise", NULL};
    PyObject *mapping;
    Py_ssize_t cursor_off = -1, end, ahead;
    int use_madvise = 1, write = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Onn|$npp", kwlist, &mapping, &end, &ahead, &cursor_off, &write,
                                     &use_madvise))
        return -1;
    if (p->running || p->have_view) {
        PyErr_SetString(PyExc_RuntimeError, "Pretoucher: already started");
        return -1;
    }
    if (PyObject_GetBuffer(mapping, &p->view, (write ? PyBUF_WRITABLE : PyBUF_SIMPLE) | PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    p->have_view = 1;
    if (cursor_off < -1 || (cursor_off >= 0 && (cursor_off % 4 || cursor_off + 4 > p->view.len)) || end < 0 || end > p->view.len ||
        ahead < 0 || (uintptr_t)p->view.buf % SMALL_PAGE) {
        stop_thread(p);
        PyErr_SetString(PyExc_ValueError, "Pretoucher: offsets do not fit the mapping");
        return -1;
    }
    p->base = (unsigned char *)p->view.buf;
    p->cursor_off = cursor_off;
    p->end = end / SMALL_PAGE * SMALL_PAGE;
    p->ahead = ahead;
    p->write = write;
    p->use_madvise = use_madvise;
    p->stopping = 0;
    p->error = 0;
    p->position = 0;
    p->touched = 0;
    p->owner = getpid();
    int err = pthread_create(&p->thread, NULL, run, p);
    if (err) {
        stop_thread(p);
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    p->running = 1;
    return 0;
}

static PyObject *new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    Pretoucher *p = (Pretoucher *)type->tp_alloc(type, 0);
    if (p == NULL) return NULL;
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->wake, &attr);
    pthread_condattr_destroy(&attr);
    return (PyObject *)p;
}

static void dealloc(Pretoucher *p) {
    stop_thread(p);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

static PyObject *stop(Pretoucher *p, PyObject *unused) {
    stop_thread(p);
    Py_RETURN_NONE;
}

static PyObject *advance(Pretoucher *p, PyObject *arg) {
    Py_ssize_t pos = PyLong_AsSsize_t(arg);
    if (pos == -1 && PyErr_Occurred()) return NULL;
    __atomic_store_n(&p->position, pos < 0 ? 0 : pos, __ATOMIC_RELAXED);
    Py_RETURN_NONE;
}

static PyObject *get_touched(Pretoucher *p, void *unused) {
    return PyLong_FromSsize_t(__atomic_load_n(&p->touched, __ATOMIC_RELAXED));
}

static PyObject *get_error(Pretoucher *p, void *unused) {
    return PyLong_FromLong(p->running ? 0 : p->error);
}

static PyObject *get_running(Pretoucher *p, void *unused) {
    return PyBool_FromLong(p->running);
}

static PyMethodDef methods[] = {
    {"stop", (PyCFunction)stop, METH_NOARGS, "Stop the thread and let go of the mapping (idempotent)."},
    {"advance", (PyCFunction)advance, METH_O, "advance(position): the owner is now at `position` (see the module)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef getset[] = {
    {"touched", (getter)get_touched, NULL, "Bytes from the start of the mapping populated so far.", NULL},
    {"error", (getter)get_error, NULL, "After stop(): the errno that ended populating early, or 0.", NULL},
    {"running", (getter)get_running, NULL, "Whether the thread runs (until stop()).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject PretoucherType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "kftools.journal._pretouch.Pretoucher",
    .tp_basicsize = sizeof(Pretoucher),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Pretoucher(mapping, end, ahead, *, cursor_offset=-1, write=True, madvise=True): a thread that keeps"
              " `mapping` populated from a position (the 4-byte cursor at `cursor_offset` when writing, else what"
              " advance() said) to `ahead` bytes past it, never past `end` (nor, when reading, the cursor).",
    .tp_new = new,
    .tp_init = (initproc)init,
    .tp_dealloc = (destructor)dealloc,
    .tp_methods = methods,
    .tp_getset = getset,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_pretouch", "Fault in a page mapping ahead of its cursor.",
                                    -1, NULL};

PyMODINIT_FUNC PyInit__pretouch(void) {
    if (PyType_Ready(&PretoucherType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&PretoucherType);
    if (PyModule_AddObject(m, "Pretoucher", (PyObject *)&PretoucherType) < 0) {
        Py_DECREF(&PretoucherType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
