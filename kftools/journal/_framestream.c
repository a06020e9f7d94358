/* The per-frame hot path of the reader: frame objects and the stream that hands them out.
 *
 * FrameBase holds a frame's header fields as C values (decoded once, when the
 * frame is made) and a reference to its page; payload fields decode on access
 * in Python (kftools.journal.framestream.Frame subclasses FrameBase).
 *
 * FrameStream is an iterator of frames. It yields, in order:
 *   1. frames at offsets queued with feed() (validated already by the scanner), then
 *   2. with a live page attached, frames committed behind the page's write cursor:
 *      it spins on the cursor in C, validates each frame as it decodes it, and
 *      hands a large backlog to Python so the batch scanner applies the full rules.
 * When it has nothing to yield (queue empty and, live, no frame after `spins`
 * cursor loads, or a bad frame or cursor), it calls refill(stream) and sets
 * `status` to say why; refill returns true to go on (having fed, attached or
 * slept), false to end the iteration.
 *
 * framestream.py holds the pure-Python twin (PyFrameStream); the tests run both. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#include "cursor.h"

/* status codes, mirrored in framestream.py */
enum {
    ST_OK = 0,           /* iterating */
    ST_EMPTY = 1,        /* queue drained and no live page */
    ST_IDLE = 2,         /* live: no new frame after `spins` cursor loads */
    ST_BACKLOG = 3,      /* live: the cursor moved more than live_max bytes past offset */
    ST_BAD_CURSOR = 4,   /* live: the cursor is past the page's limit */
    ST_BAD_FRAME = 5,    /* live: the frame at offset is invalid */
};

/* ---------------------------------------------------------------- FrameBase */

typedef struct {
    PyObject_HEAD
    PyObject *page;
    PyObject *fields; /* decoded payload fields, NULL until framestream.py fills it */
    long long offset;
    long long gen_time;
    long long trigger_time;
    unsigned int length;
    unsigned int msg_type;
    unsigned int source;
    unsigned int dest;
} FrameObject;

static PyTypeObject FrameBaseType;

static int frame_init(PyObject *op, PyObject *args, PyObject *kw) {
    /* Frame(page, (offset, length, msg_type, gen_time, trigger_time, source, dest)) */
    FrameObject *self = (FrameObject *)op;
    PyObject *page;
    long long offset, gen_time, trigger_time;
    unsigned int length, msg_type, source, dest;
    static char *names[] = {"page", "header", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O(LIILLII):Frame", names, &page, &offset, &length, &msg_type,
                                     &gen_time, &trigger_time, &source, &dest))
        return -1;
    Py_INCREF(page);
    Py_XSETREF(self->page, page);
    Py_CLEAR(self->fields);
    self->offset = offset;
    self->length = length;
    self->msg_type = msg_type;
    self->gen_time = gen_time;
    self->trigger_time = trigger_time;
    self->source = source;
    self->dest = dest;
    return 0;
}

static void frame_dealloc(PyObject *op) {
    FrameObject *self = (FrameObject *)op;
    Py_XDECREF(self->page);
    Py_XDECREF(self->fields);
    Py_TYPE(op)->tp_free(op); /* subtype_dealloc drops the reference to a heap subclass */
}

static PyObject *frame_getattro(PyObject *self, PyObject *name) {
    /* header fields and methods first; then payload fields by name (framestream.py's _field) */
    PyObject *v = PyObject_GenericGetAttr(self, name);
    if (v != NULL || !PyErr_ExceptionMatches(PyExc_AttributeError)) return v;
    if (!PyUnicode_Check(name) || PyUnicode_READ_CHAR(name, 0) == '_') return NULL;
    PyErr_Clear();
    return PyObject_CallMethod(self, "_field", "O", name);
}

static PyMemberDef frame_members[] = {
    {"page", T_OBJECT, offsetof(FrameObject, page), 0, "the page the frame is in"},
    {"offset", T_LONGLONG, offsetof(FrameObject, offset), READONLY, "offset of the frame inside its page"},
    {"length", T_UINT, offsetof(FrameObject, length), READONLY, "payload length in bytes"},
    {"msg_type", T_UINT, offsetof(FrameObject, msg_type), READONLY, NULL},
    {"gen_time", T_LONGLONG, offsetof(FrameObject, gen_time), READONLY, NULL},
    {"trigger_time", T_LONGLONG, offsetof(FrameObject, trigger_time), READONLY, NULL},
    {"source", T_UINT, offsetof(FrameObject, source), READONLY, NULL},
    {"dest", T_UINT, offsetof(FrameObject, dest), READONLY, NULL},
    {"_f", T_OBJECT, offsetof(FrameObject, fields), 0, "payload fields once decoded"},
    {NULL},
};

static PyTypeObject FrameBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kftools.journal._framestream.FrameBase",
    .tp_basicsize = sizeof(FrameObject),
    .tp_dealloc = frame_dealloc,
    .tp_getattro = frame_getattro,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Header fields of one frame, as C values.",
    .tp_members = frame_members,
    .tp_init = frame_init,
    .tp_new = PyType_GenericNew,
};

/* -------------------------------------------------------------- FrameStream */

/* where each header field sits (from FRAME_HEADER in format.py, passed in) */
typedef struct {
    Py_ssize_t size, length, msg_type, gen_time, trigger_time, source, dest;
} HeaderSpec;

typedef struct {
    PyObject_HEAD
    PyTypeObject *frame_type;
    PyObject *refill;
    HeaderSpec h;
    /* queued offsets */
    PyObject *q_page;
    Py_buffer q_buf, q_offs;
    Py_ssize_t q_i, q_n;
    /* live page */
    PyObject *page;
    Py_buffer buf;
    Py_buffer mins; /* uint32 minimum payload length by type id */
    PyObject *large; /* dict {type id: minimum length} for ids past mins, or NULL */
    Py_ssize_t cursor_offset, off, cur, seen, limit, live_max;
    long spins;
    /* parking (a follower on a shared host): after `spins` loads find nothing, futex-wait on the cursor up to
     * park_ns (0: never park), counted in the header's waiters field (waiters_offset in `hdr`, a writable
     * mapping of the page's header; without one the wait is timed only) */
    long long park_ns;
    Py_buffer hdr;
    Py_ssize_t waiters_offset, flags_offset; /* flags_offset: never park on a page with a bit of sealed_mask set */
    unsigned int sealed_mask;
    int status, done, in_refill;
    /* a named follower's position cell (8 bytes in <journal>.readers): kf_pack_position of the last frame
     * handed out, stored when the next one is asked for (the caller has consumed it by then) */
    Py_buffer cell;
    int has_cell, has_pending;
    uint64_t pending;
    uint64_t q_index, live_index; /* page indices of the queued and the live page */
} StreamObject;

static inline uint32_t ld_u32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline int64_t ld_i64(const unsigned char *p) { int64_t v; memcpy(&v, p, 8); return v; }

static PyObject *make_frame(StreamObject *s, PyObject *page, const unsigned char *b, Py_ssize_t off) {
    PyTypeObject *tp = s->frame_type;
    FrameObject *f;
    if (!(tp->tp_flags & Py_TPFLAGS_HAVE_GC) && tp->tp_itemsize == 0) {
        /* frames.Frame adds no slots and no GC: skip the generic allocator's zeroing and checks */
        f = (FrameObject *)PyObject_Malloc((size_t)tp->tp_basicsize);
        if (f == NULL) return PyErr_NoMemory();
        PyObject_Init((PyObject *)f, tp);
    } else {
        f = (FrameObject *)tp->tp_alloc(tp, 0);
        if (f == NULL) return NULL;
    }
    const unsigned char *p = b + off;
    Py_INCREF(page);
    f->page = page;
    f->fields = NULL;
    f->offset = off;
    f->length = ld_u32(p + s->h.length);
    f->msg_type = ld_u32(p + s->h.msg_type);
    f->gen_time = ld_i64(p + s->h.gen_time);
    f->trigger_time = ld_i64(p + s->h.trigger_time);
    f->source = ld_u32(p + s->h.source);
    f->dest = ld_u32(p + s->h.dest);
    return (PyObject *)f;
}

static void release_queue(StreamObject *s) {
    if (s->q_page) {
        PyBuffer_Release(&s->q_buf);
        PyBuffer_Release(&s->q_offs);
        Py_CLEAR(s->q_page);
    }
    s->q_i = s->q_n = 0;
}

static void release_cell(StreamObject *s) {
    if (s->has_cell) {
        PyBuffer_Release(&s->cell);
        s->has_cell = s->has_pending = 0;
    }
}

/* a page's index (its `index` attribute); 0 when it has none */
static uint64_t page_index_of(PyObject *page) {
    PyObject *v = PyObject_GetAttrString(page, "index");
    if (v == NULL) {
        PyErr_Clear();
        return 0;
    }
    unsigned long long i = PyLong_AsUnsignedLongLong(v);
    Py_DECREF(v);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return (uint64_t)i;
}

static void release_live(StreamObject *s) {
    if (s->hdr.obj) PyBuffer_Release(&s->hdr);
    if (s->page) {
        PyBuffer_Release(&s->buf);
        if (s->mins.obj) PyBuffer_Release(&s->mins);
        Py_CLEAR(s->large);
        Py_CLEAR(s->page);
    }
}

static int stream_traverse(PyObject *op, visitproc visit, void *arg) {
    StreamObject *s = (StreamObject *)op;
    Py_VISIT(s->refill);
    Py_VISIT(s->frame_type);
    return 0;
}

static int stream_clear(PyObject *op) {
    StreamObject *s = (StreamObject *)op;
    release_queue(s);
    release_live(s);
    release_cell(s);
    Py_CLEAR(s->refill);
    Py_CLEAR(s->frame_type);
    return 0;
}

static void stream_dealloc(PyObject *op) {
    PyObject_GC_UnTrack(op);
    stream_clear(op);
    Py_TYPE(op)->tp_free(op);
}

static int stream_init(PyObject *op, PyObject *args, PyObject *kw) {
    /* FrameStream(frame_type, refill, header_spec): header_spec is
     * (size, length, msg_type, gen_time, trigger_time, source, dest) offsets */
    StreamObject *s = (StreamObject *)op;
    PyObject *ft, *refill;
    HeaderSpec h;
    static char *names[] = {"frame_type", "refill", "header_spec", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO(nnnnnnn):FrameStream", names, &ft, &refill, &h.size, &h.length,
                                     &h.msg_type, &h.gen_time, &h.trigger_time, &h.source, &h.dest))
        return -1;
    if (!PyType_Check(ft) || !PyType_IsSubtype((PyTypeObject *)ft, &FrameBaseType)) {
        PyErr_SetString(PyExc_TypeError, "frame_type must subclass FrameBase");
        return -1;
    }
    Py_ssize_t widths[6][2] = {{h.length, 4}, {h.msg_type, 4}, {h.gen_time, 8},
                               {h.trigger_time, 8}, {h.source, 4}, {h.dest, 4}};
    for (int i = 0; i < 6; i++) {
        if (widths[i][0] < 0 || widths[i][0] + widths[i][1] > h.size) {
            PyErr_SetString(PyExc_ValueError, "header_spec: a field lies outside the header");
            return -1;
        }
    }
    stream_clear(op);
    Py_INCREF(ft);
    s->frame_type = (PyTypeObject *)ft;
    Py_INCREF(refill);
    s->refill = refill;
    s->h = h;
    s->status = ST_OK;
    s->done = 0;
    return 0;
}

static PyObject *stream_feed(PyObject *op, PyObject *args) {
    /* feed(page, buf, offsets): queue frames at these int64 offsets (validated by the caller) */
    StreamObject *s = (StreamObject *)op;
    PyObject *page, *bufobj, *offsobj;
    if (!PyArg_ParseTuple(args, "OOO:feed", &page, &bufobj, &offsobj)) return NULL;
    Py_buffer b, o;
    if (PyObject_GetBuffer(bufobj, &b, PyBUF_SIMPLE) < 0) return NULL;
    if (PyObject_GetBuffer(offsobj, &o, PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&b);
        return NULL;
    }
    if (o.itemsize != 8) {
        PyBuffer_Release(&b);
        PyBuffer_Release(&o);
        PyErr_SetString(PyExc_TypeError, "feed: offsets must be int64");
        return NULL;
    }
    Py_ssize_t n = o.len / 8;
    const int64_t *offs = (const int64_t *)o.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (offs[i] < 0 || offs[i] + s->h.size > b.len) {
            PyBuffer_Release(&b);
            PyBuffer_Release(&o);
            PyErr_Format(PyExc_ValueError, "feed: offset %lld is outside the page", (long long)offs[i]);
            return NULL;
        }
    }
    release_queue(s);
    s->q_index = s->has_cell ? page_index_of(page) : 0;
    Py_INCREF(page);
    s->q_page = page;
    s->q_buf = b;
    s->q_offs = o;
    s->q_i = 0;
    s->q_n = n;
    Py_RETURN_NONE;
}

static PyObject *stream_attach(PyObject *op, PyObject *args, PyObject *kw) {
    /* attach(page, buf, offset, limit, min_lengths, large, spins, live_max, cursor_offset, *, park_ns=0,
     *        header=None, waiters_offset=-1, flags_offset=-1, sealed_mask=0) */
    StreamObject *s = (StreamObject *)op;
    PyObject *page, *bufobj, *minsobj, *large, *hdrobj = Py_None;
    Py_ssize_t off, limit, live_max, cursor_offset, waiters_offset = -1, flags_offset = -1;
    unsigned int sealed_mask = 0;
    long spins;
    long long park_ns = 0;
    static char *names[] = {"page", "buf", "offset", "limit", "min_lengths", "large", "spins", "live_max",
                            "cursor_offset", "park_ns", "header", "waiters_offset", "flags_offset", "sealed_mask",
                            NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOnnOOlnn|$LOnnI:attach", names, &page, &bufobj, &off, &limit,
                                     &minsobj, &large, &spins, &live_max, &cursor_offset, &park_ns, &hdrobj,
                                     &waiters_offset, &flags_offset, &sealed_mask))
        return NULL;
    Py_buffer b, m = {0}, h = {0};
    if (PyObject_GetBuffer(bufobj, &b, PyBUF_SIMPLE) < 0) return NULL;
    if (PyObject_GetBuffer(minsobj, &m, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&b);
        return NULL;
    }
    if (hdrobj != Py_None && PyObject_GetBuffer(hdrobj, &h, PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&b);
        PyBuffer_Release(&m);
        return NULL;
    }
    if (cursor_offset < 0 || cursor_offset + 4 > b.len || cursor_offset % 4 || off < 0 || park_ns < 0 ||
        flags_offset < -1 || (flags_offset >= 0 && (flags_offset % 4 || flags_offset + 4 > b.len ||
                                                     (h.obj && flags_offset + 4 > h.len))) ||
        (h.obj && (cursor_offset + 4 > h.len || waiters_offset < 0 || waiters_offset + 4 > h.len ||
                   waiters_offset % 4 || ((uintptr_t)h.buf & 3)))) {
        PyBuffer_Release(&b);
        PyBuffer_Release(&m);
        if (h.obj) PyBuffer_Release(&h);
        PyErr_SetString(PyExc_ValueError, "attach: bad cursor offset, start offset, park_ns or header");
        return NULL;
    }
    release_live(s);
    s->hdr = h;
    s->waiters_offset = h.obj ? waiters_offset : -1;
    s->flags_offset = flags_offset;
    s->sealed_mask = sealed_mask;
    s->park_ns = park_ns;
    s->live_index = s->has_cell ? page_index_of(page) : 0;
    Py_INCREF(page);
    s->page = page;
    s->buf = b;
    s->mins = m;
    if (large != Py_None && PyDict_Check(large) && PyDict_GET_SIZE(large)) {
        Py_INCREF(large);
        s->large = large;
    }
    s->off = off;
    s->cur = s->seen = off;
    s->limit = limit < b.len ? limit : b.len; /* never read past the mapping, whatever limit says */
    s->spins = spins < 1 ? 1 : spins;
    s->live_max = live_max;
    s->cursor_offset = cursor_offset;
    s->status = ST_OK;
    Py_RETURN_NONE;
}

static PyObject *stream_detach(PyObject *op, PyObject *unused) {
    release_live((StreamObject *)op);
    Py_RETURN_NONE;
}

static PyObject *stream_close(PyObject *op, PyObject *unused) {
    StreamObject *s = (StreamObject *)op;
    s->done = 1;
    release_queue(s);
    release_live(s);
    release_cell(s);
    /* tell the refill (a named follower's lets go of its name), once */
    if (s->refill && !s->in_refill && PyObject_HasAttrString(s->refill, "on_close")) {
        PyObject *r = PyObject_CallMethod(s->refill, "on_close", NULL);
        if (r == NULL) return NULL;
        Py_DECREF(r);
    }
    Py_RETURN_NONE;
}

static PyObject *stream_publish(PyObject *op, PyObject *cellobj) {
    /* publish(cell): store each consumed frame's position into this writable, aligned 8-byte buffer */
    StreamObject *s = (StreamObject *)op;
    Py_buffer c;
    if (PyObject_GetBuffer(cellobj, &c, PyBUF_WRITABLE) < 0) return NULL;
    if (c.len != 8 || ((uintptr_t)c.buf & 7)) {
        PyBuffer_Release(&c);
        PyErr_SetString(PyExc_ValueError, "publish: the cell must be 8 aligned bytes");
        return NULL;
    }
    release_cell(s);
    s->cell = c;
    s->has_cell = 1;
    /* pages fed or attached before this have no index yet */
    if (s->q_page) s->q_index = page_index_of(s->q_page);
    if (s->page) s->live_index = page_index_of(s->page);
    Py_RETURN_NONE;
}

static inline uint32_t load_cursor(const StreamObject *s) {
    return kf_load_cursor((const unsigned char *)s->buf.buf, s->cursor_offset);
}

/* nothing after `spins` loads: park on the cursor (the GIL released) up to park_ns; the cursor then */
static Py_ssize_t park(StreamObject *s, Py_ssize_t seen) {
    unsigned char *hdr = s->hdr.obj ? (unsigned char *)s->hdr.buf : (unsigned char *)s->buf.buf;
    Py_ssize_t waiters = s->hdr.obj ? s->waiters_offset : -1;
    long long ns = s->park_ns;
    uint32_t c;
    s->in_refill = 1; /* the state is this wait's until it returns */
    Py_BEGIN_ALLOW_THREADS
    c = kf_park(hdr, s->cursor_offset, waiters, s->flags_offset, s->sealed_mask, (uint32_t)seen, ns);
    Py_END_ALLOW_THREADS
    s->in_refill = 0;
    return (Py_ssize_t)c;
}

/* 0: a valid frame at off; else a status */
static int check_frame(StreamObject *s, const unsigned char *b) {
    Py_ssize_t room = s->cur - s->off;
    if (room < s->h.size) return ST_BAD_FRAME;
    const unsigned char *p = b + s->off;
    uint32_t len = ld_u32(p + s->h.length), type = ld_u32(p + s->h.msg_type);
    if ((Py_ssize_t)len > room - s->h.size || type == 0) return ST_BAD_FRAME;
    Py_ssize_t nmin = s->mins.len / 4;
    if ((Py_ssize_t)type < nmin) {
        if (len < ((const uint32_t *)s->mins.buf)[type]) return ST_BAD_FRAME;
    } else if (s->large) {
        PyObject *key = PyLong_FromUnsignedLong(type);
        if (key == NULL) return -1;
        PyObject *v = PyDict_GetItemWithError(s->large, key);
        Py_DECREF(key);
        if (v == NULL && PyErr_Occurred()) return -1;
        if (v != NULL) {
            unsigned long need = PyLong_AsUnsignedLong(v);
            if (need == (unsigned long)-1 && PyErr_Occurred()) return -1;
            if (len < need) return ST_BAD_FRAME;
        }
    }
    return 0;
}

static PyObject *stream_next(PyObject *op) {
    StreamObject *s = (StreamObject *)op;
    if (s->in_refill) {
        /* refill (or another thread while it runs) asked for a frame: the state is refill's now */
        PyErr_SetString(PyExc_ValueError, "frame stream already executing");
        return NULL;
    }
    if (s->has_pending) {
        /* the frame handed out last is consumed: one release store, as the writer publishes its cursor */
        __atomic_store_n((uint64_t *)s->cell.buf, s->pending, __ATOMIC_RELEASE);
        s->has_pending = 0;
    }
    for (;;) {
        if (s->done) return NULL;
        if (s->q_i < s->q_n) {
            const int64_t *offs = (const int64_t *)s->q_offs.buf;
            Py_ssize_t off = (Py_ssize_t)offs[s->q_i++];
            if (s->has_cell) {
                s->pending = kf_pack_position(s->q_index, (uint64_t)off);
                s->has_pending = 1;
            }
            return make_frame(s, s->q_page, (const unsigned char *)s->q_buf.buf, off);
        }
        if (s->q_page) release_queue(s);
        if (s->page) {
            const unsigned char *b = (const unsigned char *)s->buf.buf;
            if (s->off < s->cur) {
                int bad = check_frame(s, b);
                if (bad < 0) return NULL;
                if (bad == 0) {
                    PyObject *f = make_frame(s, s->page, b, s->off);
                    if (f != NULL) {
                        if (s->has_cell) {
                            s->pending = kf_pack_position(s->live_index, (uint64_t)s->off);
                            s->has_pending = 1;
                        }
                        s->off += s->h.size + (Py_ssize_t)((FrameObject *)f)->length;
                    }
                    return f;
                }
                s->status = bad;
            } else {
                Py_ssize_t c = load_cursor(s);
                for (long n = s->spins; c <= s->off && --n > 0;) c = load_cursor(s);
                if (c <= s->off && s->park_ns) c = park(s, c);
                s->seen = c;
                if (c <= s->off) {
                    s->status = ST_IDLE;
                } else if (c > s->limit) {
                    s->status = ST_BAD_CURSOR;
                } else if (c - s->off > s->live_max) {
                    s->status = ST_BACKLOG;
                } else {
                    s->cur = c;
                    continue;
                }
            }
        } else {
            s->status = ST_EMPTY;
        }
        s->in_refill = 1;
        PyObject *r = PyObject_CallOneArg(s->refill, op);
        s->in_refill = 0;
        if (r == NULL) return NULL;
        int go = PyObject_IsTrue(r);
        Py_DECREF(r);
        if (go < 0) return NULL;
        s->status = ST_OK;
        if (!go) {
            s->done = 1;
            release_queue(s);
            release_live(s);
            return NULL;
        }
    }
}

static PyObject *stream_get_offset(PyObject *op, void *c) { return PyLong_FromSsize_t(((StreamObject *)op)->off); }

static int stream_set_offset(PyObject *op, PyObject *v, void *c) {
    StreamObject *s = (StreamObject *)op;
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete offset");
        return -1;
    }
    Py_ssize_t off = PyLong_AsSsize_t(v);
    if (off == -1 && PyErr_Occurred()) return -1;
    if (off < 0) {
        PyErr_SetString(PyExc_ValueError, "offset must be >= 0");
        return -1;
    }
    s->off = off;
    s->cur = off; /* what was validated up to the old offset says nothing about the new one */
    return 0;
}

static PyObject *stream_get_page(PyObject *op, void *c) {
    StreamObject *s = (StreamObject *)op;
    PyObject *p = s->page ? s->page : Py_None;
    Py_INCREF(p);
    return p;
}

static PyGetSetDef stream_getset[] = {
    {"offset", stream_get_offset, stream_set_offset, "live: offset of the next frame in the attached page", NULL},
    {"page", stream_get_page, NULL, "the attached live page, or None", NULL},
    {NULL},
};

static PyMemberDef stream_members[] = {
    {"status", T_INT, offsetof(StreamObject, status), READONLY, "why refill was called (STATUS_* in framestream.py)"},
    {"cursor", T_PYSSIZET, offsetof(StreamObject, seen), READONLY, "the write cursor last loaded"},
    {NULL},
};

static PyObject *stream_iter(PyObject *op) {
    Py_INCREF(op);
    return op;
}

static PyMethodDef stream_methods[] = {
    {"feed", stream_feed, METH_VARARGS, "feed(page, buf, offsets): queue frames at these offsets."},
    {"attach", (PyCFunction)(void (*)(void))stream_attach, METH_VARARGS | METH_KEYWORDS,
     "attach(page, buf, offset, limit, min_lengths, large, spins, live_max, cursor_offset): follow a live page."},
    {"detach", stream_detach, METH_NOARGS, "Stop following the live page."},
    {"close", stream_close, METH_NOARGS, "End the iteration, release every buffer and call refill.on_close()."},
    {"publish", stream_publish, METH_O,
     "publish(cell): store kf_pack_position(page, offset) of each consumed frame into this 8-byte buffer."},
    {NULL},
};

static PyTypeObject StreamType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kftools.journal._framestream.FrameStream",
    .tp_basicsize = sizeof(StreamObject),
    .tp_dealloc = stream_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Iterator of frames: queued offsets, then a live page (see the module comment).",
    .tp_traverse = stream_traverse,
    .tp_clear = stream_clear,
    .tp_iter = stream_iter,
    .tp_iternext = stream_next,
    .tp_methods = stream_methods,
    .tp_members = stream_members,
    .tp_getset = stream_getset,
    .tp_init = stream_init,
    .tp_new = PyType_GenericNew,
};

/* ------------------------------------------------------------------- Cursor */

/* Cursor(mapping, cursor_offset, waiters_offset): a writer's handle on its page's write cursor, publishing
 * through kf_publish_cursor (the same store and wake as the replay pacer and the C++ writer) */
typedef struct {
    PyObject_HEAD
    Py_buffer buf;
    Py_ssize_t cursor_off, waiters_off;
} CursorObject;

static int cursor_init(PyObject *op, PyObject *args, PyObject *kw) {
    CursorObject *c = (CursorObject *)op;
    PyObject *mapping;
    Py_ssize_t coff, woff;
    static char *names[] = {"mapping", "cursor_offset", "waiters_offset", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Onn:Cursor", names, &mapping, &coff, &woff)) return -1;
    Py_buffer b;
    if (PyObject_GetBuffer(mapping, &b, PyBUF_WRITABLE) < 0) return -1;
    if (coff < 0 || coff % 4 || coff + 4 > b.len || woff < -1 || (woff >= 0 && (woff % 4 || woff + 4 > b.len)) ||
        ((uintptr_t)b.buf & 3)) {
        PyBuffer_Release(&b);
        PyErr_SetString(PyExc_ValueError, "Cursor: offsets outside the mapping or unaligned");
        return -1;
    }
    if (c->buf.obj) PyBuffer_Release(&c->buf);
    c->buf = b;
    c->cursor_off = coff;
    c->waiters_off = woff;
    return 0;
}

static void cursor_dealloc(PyObject *op) {
    CursorObject *c = (CursorObject *)op;
    if (c->buf.obj) PyBuffer_Release(&c->buf);
    Py_TYPE(op)->tp_free(op);
}

static PyObject *cursor_publish(PyObject *op, PyObject *v) {
    CursorObject *c = (CursorObject *)op;
    unsigned long pos = PyLong_AsUnsignedLong(v);
    if (pos == (unsigned long)-1 && PyErr_Occurred()) return NULL;
    if (!c->buf.obj || pos > 0xFFFFFFFFul) {
        PyErr_SetString(PyExc_ValueError, c->buf.obj ? "publish: cursor past 2**32" : "publish: released");
        return NULL;
    }
    kf_publish_cursor((unsigned char *)c->buf.buf, c->cursor_off, c->waiters_off, (uint32_t)pos);
    Py_RETURN_NONE;
}

static PyObject *cursor_load(PyObject *op, PyObject *unused) {
    CursorObject *c = (CursorObject *)op;
    if (!c->buf.obj) {
        PyErr_SetString(PyExc_ValueError, "load: released");
        return NULL;
    }
    return PyLong_FromUnsignedLong(kf_load_cursor((const unsigned char *)c->buf.buf, c->cursor_off));
}

static PyObject *cursor_release(PyObject *op, PyObject *unused) {
    CursorObject *c = (CursorObject *)op;
    if (c->buf.obj) PyBuffer_Release(&c->buf);
    Py_RETURN_NONE;
}

static PyMethodDef cursor_methods[] = {
    {"publish", cursor_publish, METH_O, "publish(pos): store the cursor (after the frame's bytes); wake parked followers."},
    {"load", cursor_load, METH_NOARGS, "The cursor (an acquire load)."},
    {"release", cursor_release, METH_NOARGS, "Let go of the mapping."},
    {NULL},
};

static PyTypeObject CursorType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kftools.journal._framestream.Cursor",
    .tp_basicsize = sizeof(CursorObject),
    .tp_dealloc = cursor_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Cursor(mapping, cursor_offset, waiters_offset): publish_cursor / load_cursor on a page's header.",
    .tp_methods = cursor_methods,
    .tp_init = cursor_init,
    .tp_new = PyType_GenericNew,
};

static PyObject *module_park(PyObject *self, PyObject *args) {
    /* park(header, cursor_offset, waiters_offset, flags_offset, sealed_mask, seen, timeout_ns) -> cursor:
     * kf_park, the GIL released */
    PyObject *hdrobj;
    Py_ssize_t coff, woff, foff;
    unsigned int mask;
    unsigned long seen;
    long long ns;
    if (!PyArg_ParseTuple(args, "OnnnIkL:park", &hdrobj, &coff, &woff, &foff, &mask, &seen, &ns)) return NULL;
    Py_buffer h;
    if (PyObject_GetBuffer(hdrobj, &h, woff >= 0 ? PyBUF_WRITABLE : PyBUF_SIMPLE) < 0) return NULL;
    if (coff < 0 || coff % 4 || coff + 4 > h.len || woff < -1 || (woff >= 0 && (woff % 4 || woff + 4 > h.len)) ||
        foff < -1 || (foff >= 0 && (foff % 4 || foff + 4 > h.len)) || ns < 0 || ((uintptr_t)h.buf & 3)) {
        PyBuffer_Release(&h);
        PyErr_SetString(PyExc_ValueError, "park: offsets outside the header or unaligned");
        return NULL;
    }
    uint32_t c;
    Py_BEGIN_ALLOW_THREADS
    c = kf_park((unsigned char *)h.buf, coff, woff, foff, mask, (uint32_t)seen, ns);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&h);
    return PyLong_FromUnsignedLong(c);
}

static PyMethodDef module_methods[] = {
    {"park", module_park, METH_VARARGS,
     "park(header, cursor_offset, waiters_offset, flags_offset, sealed_mask, seen, timeout_ns) -> cursor: wait "
     "while the cursor is `seen` and the page is not sealed."},
    {NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_framestream", "Frames and the per-frame reading loop in C.",
                                    -1, module_methods};

PyMODINIT_FUNC PyInit__framestream(void) {
    if (PyType_Ready(&FrameBaseType) < 0 || PyType_Ready(&StreamType) < 0 || PyType_Ready(&CursorType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "FrameBase", (PyObject *)&FrameBaseType) < 0 ||
        PyModule_AddObjectRef(m, "FrameStream", (PyObject *)&StreamType) < 0 ||
        PyModule_AddObjectRef(m, "Cursor", (PyObject *)&CursorType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
