/* Hot loops of the reader: walk the frame chain and gather fixed-width slices.
 *
 * Walking the chain is inherently sequential (each frame's length gives the
 * next offset), so numpy cannot vectorize it; this stays tiny and has a
 * pure-Python twin in scan.py that the tests run against the same inputs. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

/* exit_on_sigbus(message, code): on SIGBUS (a mapped page file truncated under a reader: every later
 * load from it faults), write `message` to stderr and _exit(code) instead of dying of the signal.
 * Only async-signal-safe calls in the handler. */
static char sigbus_message[1024];
static size_t sigbus_length;
static int sigbus_code = 1;

static void on_sigbus(int sig) {
    (void)sig;
    ssize_t w = write(2, sigbus_message, sigbus_length);
    (void)w;
    _exit(sigbus_code);
}

static PyObject *exit_on_sigbus(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer msg;
    int code;
    if (!PyArg_ParseTuple(args, "y*i", &msg, &code)) return NULL;
    size_t n = (size_t)msg.len < sizeof sigbus_message ? (size_t)msg.len : sizeof sigbus_message;
    memcpy(sigbus_message, msg.buf, n);
    sigbus_length = n;
    sigbus_code = code;
    PyBuffer_Release(&msg);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigbus;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, NULL) != 0) return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

/* A long walk populates the mapping a chunk ahead of itself: one madvise maps a chunk's pages in a single
 * call (2.4 ms for 30 MB of a page in the page cache), where touching them one by one costs a fault each
 * (15-30 ms). The caller says from where the mapping may still be unpopulated (populate_from; -1: never ask):
 * a page walked again is not asked for again (an madvise over mapped pages still walks the page tables).
 * Only a walk with more than two chunks left asks: a follower polling a few new frames makes no system call.
 * Pages are populated only within [from, to): a page holding one byte of the buffer is mapped. */
#define POPULATE_CHUNK ((Py_ssize_t)1 << 22)

static int populate(const unsigned char *b, Py_ssize_t from, Py_ssize_t to) {
    uintptr_t lo = (uintptr_t)(b + from) & ~(uintptr_t)4095, hi = ((uintptr_t)(b + to) + 4095) & ~(uintptr_t)4095;
    return madvise((void *)lo, hi - lo, MADV_POPULATE_READ) == 0;
}

static inline uint32_t ld_u32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }

/* scan(buf, start, end, out_offsets, min_lengths, header_size=32, type_at=4, counts_header=0, stop_type=0,
 *      populate_from=-1) -> (count, next_offset, error)
 * error: 0 reached end or filled out, 1 header runs past end, 2 payload runs past end, 3 msg_type 0,
 * 4 payload shorter than min_lengths[msg_type] (a uint32 table indexed by type id; ids past it unchecked),
 * 5 a header with length 0: the end of what is written (journals whose length counts the header),
 * 6 length shorter than the header.
 * A frame header has a u32 length at offset 0 and a msg_type at type_at. counts_header: length includes
 * the header and msg_type is signed (<= 0 is not a frame), as in Kungfu's journals. A frame of stop_type
 * (Kungfu's PageEnd) ends the walk just after it. populate_from: see populate() above. */
static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer buf, out, mins = {0};
    Py_ssize_t start, end, hdr = 32, type_at = 4;
    int counts_header = 0;
    unsigned int stop_type = 0;
    Py_ssize_t populate_from = -1;
    if (!PyArg_ParseTuple(args, "y*nnw*|y*nniIn", &buf, &start, &end, &out, &mins, &hdr, &type_at, &counts_header,
                          &stop_type, &populate_from))
        return NULL;
    const uint32_t *minlen = (const uint32_t *)mins.buf;
    Py_ssize_t nmin = mins.len / 4;
    int64_t *offs = (int64_t *)out.buf;
    Py_ssize_t cap = out.len / 8, n = 0, off = start;
    int err = 0;
    if (end > buf.len) end = buf.len;
    if (hdr < type_at + 4) hdr = type_at + 4;
    const unsigned char *b = (const unsigned char *)buf.buf;
    Py_ssize_t ready = end;  /* populated up to here (end: never ask) */
    if (populate_from >= 0) {
        ready = populate_from > off ? populate_from : off;
        if (end - ready <= 2 * POPULATE_CHUNK) ready = end;
    }
    Py_BEGIN_ALLOW_THREADS
    while (off < end && n < cap) {
        if (off >= ready) {
            ready = end - off > 2 * POPULATE_CHUNK ? off + POPULATE_CHUNK : end;
            if (ready < end && !populate(b, off, ready)) ready = end;  /* no MADV_POPULATE_READ: fault as before */
        }
        if (end - off < hdr) { err = 1; break; }
        uint32_t len = ld_u32(b + off), type = ld_u32(b + off + type_at);
        if (counts_header) {
            if (len == 0) { err = 5; break; }
            if ((Py_ssize_t)len < hdr) { err = 6; break; }
            len -= (uint32_t)hdr;
            if ((int32_t)type < 0) type = 0;
        }
        if ((Py_ssize_t)len > end - off - hdr) { err = 2; break; }
        if (type == 0) { err = 3; break; }
        if ((Py_ssize_t)type < nmin && len < minlen[type]) { err = 4; break; }
        offs[n++] = off;
        off += hdr + (Py_ssize_t)len;
        if (stop_type && type == stop_type) break;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    PyBuffer_Release(&out);
    if (mins.obj) PyBuffer_Release(&mins);
    return Py_BuildValue("nni", n, off, err);
}

/* gather(buf, offsets, add, width, out): out[i*width : (i+1)*width] = buf[offsets[i]+add : +width] */
static PyObject *gather(PyObject *self, PyObject *args) {
    Py_buffer buf, offsets, out;
    Py_ssize_t add, width;
    if (!PyArg_ParseTuple(args, "y*y*nnw*", &buf, &offsets, &add, &width, &out)) return NULL;
    Py_ssize_t n = offsets.len / 8;
    const int64_t *offs = (const int64_t *)offsets.buf;
    int bad = 0;
    if (out.len < n * width) bad = 1;
    const unsigned char *b = (const unsigned char *)buf.buf;
    unsigned char *o = (unsigned char *)out.buf;
    if (!bad) {
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_ssize_t at = (Py_ssize_t)offs[i] + add;
            if (at < 0 || at + width > buf.len) { bad = 2; break; }
            memcpy(o + i * width, b + at, (size_t)width);
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&buf);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&out);
    if (bad) { PyErr_SetString(PyExc_ValueError, "gather out of bounds"); return NULL; }
    Py_RETURN_NONE;
}

/* gather_var(buf, offsets, lengths, add, out): concatenate buf[offsets[i]+add : +lengths[i]] */
static PyObject *gather_var(PyObject *self, PyObject *args) {
    Py_buffer buf, offsets, lengths, out;
    Py_ssize_t add;
    if (!PyArg_ParseTuple(args, "y*y*y*nw*", &buf, &offsets, &lengths, &add, &out)) return NULL;
    Py_ssize_t n = offsets.len / 8, pos = 0;
    const int64_t *offs = (const int64_t *)offsets.buf;
    const int64_t *lens = (const int64_t *)lengths.buf;
    const unsigned char *b = (const unsigned char *)buf.buf;
    unsigned char *o = (unsigned char *)out.buf;
    int bad = lengths.len / 8 != n;
    if (!bad) {
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_ssize_t at = (Py_ssize_t)offs[i] + add, len = (Py_ssize_t)lens[i];
            if (at < 0 || len < 0 || at + len > buf.len || pos + len > out.len) { bad = 1; break; }
            memcpy(o + pos, b + at, (size_t)len);
            pos += len;
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&buf);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&lengths);
    PyBuffer_Release(&out);
    if (bad) { PyErr_SetString(PyExc_ValueError, "gather_var out of bounds"); return NULL; }
    return PyLong_FromSsize_t(pos);
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, "Walk the frame chain from start to end, filling int64 offsets."},
    {"gather", gather, METH_VARARGS, "Copy a fixed-width slice at each offset into out."},
    {"gather_var", gather_var, METH_VARARGS, "Concatenate variable-length slices into out."},
    {"exit_on_sigbus", exit_on_sigbus, METH_VARARGS, "On SIGBUS, print a message and exit with a code."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_scan", NULL, -1, methods};

PyMODINIT_FUNC PyInit__scan(void) { return PyModule_Create(&module); }
