/* Text, JSON lines and CSV rows of a run of frames, at pipe speed.
 *
 * kftools/linefmt.py compiles each message type into a *line program* (a list of ops: a literal
 * prefix, then one value read from the frame header or the payload, formatted by the output's style)
 * and runs it here, or in its pure-Python twin (linefmt.PyFormatter); the tests run both against the
 * reference rendering of kftools/render.py, byte for byte.
 *
 * Formatter(style, programs, fallback_types) ; run(buf, header_size, offsets, headers, journal, fallback)
 * -> bytes. A frame whose type has no program (or a value the fast paths do not cover, such as a time
 * outside years 1000-9999) is rendered by ``fallback(i)`` (bytes, no newline). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

enum { STYLE_TEXT = 0, STYLE_JSON = 1, STYLE_CSV = 2 };
enum {
    OP_NONE = 0, OP_BOOL, OP_I8, OP_U8, OP_U16, OP_U32, OP_U64, OP_I32, OP_I64, OP_F32, OP_F64,
    OP_TEXT, OP_TIME, OP_OPTTIME, OP_JOURNAL, OP_TYPENAME, OP_HEX,
};
#define HEADER_SIZE 32 /* the kftools frame header, as the headers array holds it (linefmt checks) */
#define DENSE 4096     /* message type ids below this are looked up in a table */

typedef struct {
    char *prefix;
    Py_ssize_t prefix_len;
    int code, src, offset, count, is_array, size;
    PyObject *labels; /* tuple of bytes or None, indexed by value; NULL when not labelled */
} Op;

typedef struct {
    Op *ops;
    int n;
    Py_ssize_t min_payload; /* the payload bytes the ops read */
} Program;

static Program FALLBACK; /* a registered type no program covers: the per-frame rule renders it */

typedef struct {
    PyObject_HEAD
    int style;
    Program *unknown; /* types the registry does not know (payload as hex), or NULL */
    Program *dense[DENSE];
    PyObject *sparse; /* dict id -> capsule index into progs */
    Program *progs;
    int nprogs;
    PyObject *keep; /* the program tuples, which own the prefixes and labels */
} Formatter;

/* ---- a growable output buffer: a bytes object, resized in place, handed out without a copy ---- */
typedef struct {
    PyObject *obj;
    char *p;
    size_t n, cap;
} Buf;

static int buf_grow(Buf *b, size_t more) {
    if (b->n + more <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < b->n + more) cap *= 2;
    if (!b->obj) {
        b->obj = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)cap);
        if (!b->obj) return -1;
    } else if (_PyBytes_Resize(&b->obj, (Py_ssize_t)cap) < 0) {
        return -1;
    }
    b->p = PyBytes_AS_STRING(b->obj);
    b->cap = cap;
    return 0;
}

static inline int put(Buf *b, const char *s, size_t n) {
    if (buf_grow(b, n) < 0) return -1;
    char *o = b->p + b->n;
    if (n <= 16) {
        for (size_t i = 0; i < n; i++) o[i] = s[i];
    } else {
        memcpy(o, s, n);
    }
    b->n += n;
    return 0;
}

/* the bytes written (the buffer is consumed) */
static PyObject *buf_finish(Buf *b) {
    if (!b->obj) return PyBytes_FromStringAndSize("", 0);
    if (_PyBytes_Resize(&b->obj, (Py_ssize_t)b->n) < 0) return NULL;
    PyObject *r = b->obj;
    b->obj = NULL;
    return r;
}

static void buf_free(Buf *b) { Py_CLEAR(b->obj); }

static inline char *room(Buf *b, size_t n) {
    if (buf_grow(b, n) < 0) return NULL;
    return b->p + b->n;
}

static inline size_t fmt_u64(char *out, uint64_t v) {
    char t[24];
    size_t k = 0;
    do {
        t[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < k; i++) out[i] = t[k - 1 - i];
    return k;
}

static inline size_t fmt_i64(char *out, int64_t v) {
    if (v < 0) {
        out[0] = '-';
        return 1 + fmt_u64(out + 1, (uint64_t)0 - (uint64_t)v);
    }
    return fmt_u64(out, (uint64_t)v);
}

static const double POW10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                               1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19};
static const uint64_t UPOW10[] = {1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull,
                                  10000000ull, 100000000ull, 1000000000ull, 10000000000ull,
                                  100000000000ull, 1000000000000ull, 10000000000000ull,
                                  100000000000000ull, 1000000000000000ull, 10000000000000000ull,
                                  100000000000000000ull, 1000000000000000000ull, 10000000000000000000ull};

/* A double as Python's repr writes it (JSON: NaN, Infinity, -Infinity as json.dumps does).
 * Fast path: 1e-4 <= |x| < 1e15 and the shortest decimal has at most 15 significant digits. The first k
 * for which m = round(|x| * 10^k) gives m / 10^k == |x| (both exact, the division correctly rounded) is
 * a decimal that reads back to x; no shorter one does (it would have been found at a smaller k: with
 * |m| < 1e15 the rounding errors stay far below 0.5) and no other of its length does (decimals of 15
 * digits are further apart than a double's ulp): it is repr's. Everything else: PyOS_double_to_string,
 * which is repr. */
static int put_double(Buf *b, double x, int style) {
    if (isnan(x)) return style == STYLE_JSON ? put(b, "NaN", 3) : put(b, "nan", 3);
    if (isinf(x)) {
        if (style == STYLE_JSON) return x < 0 ? put(b, "-Infinity", 9) : put(b, "Infinity", 8);
        return x < 0 ? put(b, "-inf", 4) : put(b, "inf", 3);
    }
    if (x == 0) return signbit(x) ? put(b, "-0.0", 4) : put(b, "0.0", 3);
    double ax = fabs(x);
    if (ax >= 1e-4 && ax < 1e15) {
        for (int k = 0; k < 20; k++) {
            double p = ax * POW10[k];
            if (p >= 1e15) break;
            double m = nearbyint(p);
            if (m / POW10[k] == ax) {
                uint64_t mi = (uint64_t)m;
                char *o = room(b, 48);
                if (!o) return -1;
                size_t n = 0;
                if (x < 0) o[n++] = '-';
                n += fmt_u64(o + n, mi / UPOW10[k]);
                o[n++] = '.';
                if (k == 0) {
                    o[n++] = '0';
                } else {
                    uint64_t frac = mi % UPOW10[k];
                    for (int d = k - 1; d >= 0; d--) {
                        o[n + d] = (char)('0' + frac % 10);
                        frac /= 10;
                    }
                    n += k;
                }
                b->n += n;
                return 0;
            }
        }
    }
    char *s = PyOS_double_to_string(x, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (!s) return -1;
    int r = put(b, s, strlen(s));
    PyMem_Free(s);
    return r;
}

/* days since 1970-01-01 -> civil date (H. Hinnant's algorithm) */
static void civil(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

static inline void two(char *o, unsigned v) {
    o[0] = (char)('0' + v / 10);
    o[1] = (char)('0' + v % 10);
}

/* ns since the epoch -> 2026-11-28T09:30:00.123456789Z; returns 1 when outside years 1000-9999 */
static int put_time(Buf *b, int64_t ns) {
    int64_t sec = ns / 1000000000, frac = ns % 1000000000;
    if (frac < 0) frac += 1000000000, sec -= 1;
    int64_t days = sec / 86400, rem = sec % 86400;
    if (rem < 0) rem += 86400, days -= 1;
    int64_t y;
    unsigned mo, d;
    civil(days, &y, &mo, &d);
    if (y < 1000 || y > 9999) return 1;
    char *o = room(b, 32);
    if (!o) return -1;
    unsigned yy = (unsigned)y;
    two(o, yy / 100), two(o + 2, yy % 100);
    o[4] = '-', two(o + 5, mo), o[7] = '-', two(o + 8, d), o[10] = 'T';
    two(o + 11, (unsigned)(rem / 3600)), o[13] = ':', two(o + 14, (unsigned)(rem / 60 % 60)), o[16] = ':';
    two(o + 17, (unsigned)(rem % 60)), o[19] = '.';
    uint32_t f = (uint32_t)frac;
    for (int i = 28; i >= 20; i--) o[i] = (char)('0' + f % 10), f /= 10;
    o[29] = 'Z';
    b->n += 30;
    return 0;
}

static int put_hex4(Buf *b, unsigned c) {
    static const char hex[] = "0123456789abcdef";
    char u[6] = {'\\', 'u', hex[(c >> 12) & 15], hex[(c >> 8) & 15], hex[(c >> 4) & 15], hex[c & 15]};
    return put(b, u, 6);
}

/* text field bytes (up to the first NUL) as the style shows a str decoded with errors="replace" */
static int put_text(Buf *b, const unsigned char *s, Py_ssize_t width, int style) {
    Py_ssize_t n = 0;
    while (n < width && s[n]) n++;
    int ascii = 1;
    for (Py_ssize_t i = 0; i < n; i++)
        if (s[i] >= 0x80) {
            ascii = 0;
            break;
        }
    PyObject *u = NULL;
    const char *utf8 = (const char *)s;
    Py_ssize_t ulen = n;
    if (!ascii) { /* Python's own decoder: the same U+FFFD for the same bad bytes */
        u = PyUnicode_DecodeUTF8((const char *)s, n, "replace");
        if (!u) return -1;
    }
    int r = 0;
    if (style == STYLE_TEXT) {
        if (u) utf8 = PyUnicode_AsUTF8AndSize(u, &ulen);
        r = utf8 ? put(b, utf8, (size_t)ulen) : -1;
    } else if (style == STYLE_JSON) {
        if (put(b, "\"", 1) < 0) goto fail;
        if (!u) {
            for (Py_ssize_t i = 0; i < n && r == 0; i++) {
                unsigned char c = s[i];
                if (c == '"' || c == '\\') {
                    char e[2] = {'\\', (char)c};
                    r = put(b, e, 2);
                } else if (c == '\n') r = put(b, "\\n", 2);
                else if (c == '\r') r = put(b, "\\r", 2);
                else if (c == '\t') r = put(b, "\\t", 2);
                else if (c == '\b') r = put(b, "\\b", 2);
                else if (c == '\f') r = put(b, "\\f", 2);
                else if (c < 0x20 || c == 0x7f) r = put_hex4(b, c);
                else r = put(b, (const char *)&c, 1);
            }
        } else {
            Py_ssize_t len = PyUnicode_GET_LENGTH(u);
            for (Py_ssize_t i = 0; i < len && r == 0; i++) {
                Py_UCS4 c = PyUnicode_READ_CHAR(u, i);
                if (c == '"' || c == '\\') {
                    char e[2] = {'\\', (char)c};
                    r = put(b, e, 2);
                } else if (c == '\n') r = put(b, "\\n", 2);
                else if (c == '\r') r = put(b, "\\r", 2);
                else if (c == '\t') r = put(b, "\\t", 2);
                else if (c == '\b') r = put(b, "\\b", 2);
                else if (c == '\f') r = put(b, "\\f", 2);
                else if (c < 0x20 || c >= 0x7f) {
                    if (c >= 0x10000) {
                        c -= 0x10000;
                        r = put_hex4(b, 0xD800 | (c >> 10));
                        if (r == 0) r = put_hex4(b, 0xDC00 | (c & 0x3FF));
                    } else {
                        r = put_hex4(b, c);
                    }
                } else {
                    char ch = (char)c;
                    r = put(b, &ch, 1);
                }
            }
        }
        if (r == 0) r = put(b, "\"", 1);
    } else { /* CSV, QUOTE_MINIMAL */
        if (u) utf8 = PyUnicode_AsUTF8AndSize(u, &ulen);
        if (!utf8) goto fail;
        int quote = 0;
        for (Py_ssize_t i = 0; i < ulen; i++) {
            char c = utf8[i];
            if (c == ',' || c == '"' || c == '\r' || c == '\n') {
                quote = 1;
                break;
            }
        }
        if (!quote) {
            r = put(b, utf8, (size_t)ulen);
        } else {
            r = put(b, "\"", 1);
            for (Py_ssize_t i = 0; i < ulen && r == 0; i++) {
                r = utf8[i] == '"' ? put(b, "\"\"", 2) : put(b, utf8 + i, 1);
            }
            if (r == 0) r = put(b, "\"", 1);
        }
    }
    Py_XDECREF(u);
    return r;
fail:
    Py_XDECREF(u);
    return -1;
}

/* one scalar at p of kind code */
static int put_scalar(Buf *b, const unsigned char *p, int code, int style, PyObject *labels) {
    char *o;
    int64_t iv = 0;
    uint64_t uv = 0;
    int is_signed = 0;
    switch (code) {
        case OP_BOOL:
            if (style == STYLE_JSON) return p[0] ? put(b, "true", 4) : put(b, "false", 5);
            return p[0] ? put(b, "True", 4) : put(b, "False", 5);
        case OP_I8: iv = (int8_t)p[0], is_signed = 1; break;
        case OP_U8: uv = p[0]; break;
        case OP_U16: { uint16_t v; memcpy(&v, p, 2); uv = v; break; }
        case OP_U32: { uint32_t v; memcpy(&v, p, 4); uv = v; break; }
        case OP_U64: memcpy(&uv, p, 8); break;
        case OP_I32: { int32_t v; memcpy(&v, p, 4); iv = v; is_signed = 1; break; }
        case OP_I64: memcpy(&iv, p, 8), is_signed = 1; break;
        case OP_F32: { float v; memcpy(&v, p, 4); return put_double(b, (double)v, style); }
        case OP_F64: { double v; memcpy(&v, p, 8); return put_double(b, v, style); }
        default:
            PyErr_SetString(PyExc_ValueError, "bad op");
            return -1;
    }
    if (labels && labels != Py_None) {
        int64_t v = is_signed ? iv : (int64_t)(uv > INT64_MAX ? -1 : (int64_t)uv);
        if (v >= 0 && v < PyTuple_GET_SIZE(labels)) {
            PyObject *name = PyTuple_GET_ITEM(labels, v);
            if (name != Py_None) return put(b, PyBytes_AS_STRING(name), (size_t)PyBytes_GET_SIZE(name));
        }
    }
    o = room(b, 24);
    if (!o) return -1;
    b->n += is_signed ? fmt_i64(o, iv) : fmt_u64(o, uv);
    return 0;
}

static int elem_size(int code) {
    switch (code) {
        case OP_BOOL: case OP_I8: case OP_U8: return 1;
        case OP_U16: return 2;
        case OP_U32: case OP_I32: case OP_F32: return 4;
        default: return 8;
    }
}

/* 0 done, 1 fall back for this frame, -1 error */
static int put_hex(Buf *b, const unsigned char *p, size_t n) {
    static const char hex[] = "0123456789abcdef";
    char *o = room(b, 2 * n);
    if (!o) return -1;
    for (size_t i = 0; i < n; i++) o[2 * i] = hex[p[i] >> 4], o[2 * i + 1] = hex[p[i] & 15];
    b->n += 2 * n;
    return 0;
}

static int run_op(Buf *b, const Op *op, const unsigned char *hdr, const unsigned char *pay, int style,
                  const char *journal, Py_ssize_t journal_len) {
    if (op->prefix_len && put(b, op->prefix, (size_t)op->prefix_len) < 0) return -1;
    const unsigned char *p = (op->src ? pay : hdr) + op->offset;
    switch (op->code) {
        case OP_NONE: return 0;
        case OP_JOURNAL: return put(b, journal, (size_t)journal_len);
        case OP_TYPENAME: { /* an unregistered type's name, type<N> (a text line pads it to 7) */
            uint32_t t;
            memcpy(&t, hdr + 4, 4);
            char *o = room(b, 24);
            if (!o) return -1;
            size_t n = 0;
            if (style == STYLE_JSON) o[n++] = '"';
            memcpy(o + n, "type", 4), n += 4;
            n += fmt_u64(o + n, t);
            if (style == STYLE_JSON) o[n++] = '"';
            while (style == STYLE_TEXT && n < 7) o[n++] = ' ';
            b->n += n;
            return 0;
        }
        case OP_HEX: { /* the payload as hex; a text line shows 32 bytes, then how many there are */
            uint32_t len;
            memcpy(&len, hdr, 4);
            if (style == STYLE_TEXT) {
                if (put_hex(b, pay, len < 32 ? len : 32) < 0) return -1;
                if (len > 32 && put(b, "\xe2\x80\xa6", 3) < 0) return -1; /* U+2026 */
                char t[40];
                int k = snprintf(t, sizeof t, " (%u bytes)", len);
                return put(b, t, (size_t)k);
            }
            if (style == STYLE_JSON && put(b, "\"", 1) < 0) return -1;
            if (put_hex(b, pay, len) < 0) return -1;
            return style == STYLE_JSON ? put(b, "\"", 1) : 0;
        }
        case OP_TEXT: return put_text(b, p, op->size, style);
        case OP_TIME: {
            int64_t v;
            memcpy(&v, p, 8);
            return put_time(b, v);
        }
        case OP_OPTTIME: {
            int64_t v;
            memcpy(&v, p, 8);
            if (v == 0) {
                if (style == STYLE_JSON) return put(b, "null", 4);
                if (style == STYLE_TEXT) return put(b, "unset", 5);
                return 0;
            }
            char *o = room(b, 24);
            if (!o) return -1;
            b->n += fmt_i64(o, v);
            return 0;
        }
        default: break;
    }
    if (!op->is_array) return put_scalar(b, p, op->code, style, op->labels);
    int es = elem_size(op->code);
    if (style == STYLE_CSV && op->count > 1 && put(b, "\"", 1) < 0) return -1;
    if (put(b, "[", 1) < 0) return -1;
    for (int i = 0; i < op->count; i++) {
        if (i && (style == STYLE_JSON ? put(b, ",", 1) : put(b, ", ", 2)) < 0) return -1;
        /* inside a list, a float is its repr even in a text line; JSON keeps its own spelling */
        if (put_scalar(b, p + (size_t)i * es, op->code, style == STYLE_JSON ? STYLE_JSON : STYLE_TEXT, NULL) < 0)
            return -1;
    }
    if (put(b, "]", 1) < 0) return -1;
    if (style == STYLE_CSV && op->count > 1 && put(b, "\"", 1) < 0) return -1;
    return 0;
}

static void free_programs(Formatter *self) {
    if (self->progs) {
        for (int i = 0; i < self->nprogs; i++) PyMem_Free(self->progs[i].ops);
        PyMem_Free(self->progs);
        self->progs = NULL;
    }
    memset(self->dense, 0, sizeof self->dense);
    self->unknown = NULL;
}

static void Formatter_dealloc(Formatter *self) {
    free_programs(self);
    Py_XDECREF(self->sparse);
    Py_XDECREF(self->keep);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* programs: dict {msg_type: tuple of ops}, an op (prefix bytes, code, src, offset, count, is_array, size, labels) */
static int Formatter_init(Formatter *self, PyObject *args, PyObject *kw) {
    int style;
    PyObject *programs;
    static char *kwlist[] = {"style", "programs", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iO!", kwlist, &style, &PyDict_Type, &programs)) return -1;
    if (style < 0 || style > 2) {
        PyErr_SetString(PyExc_ValueError, "style is 0 (text), 1 (JSON) or 2 (CSV)");
        return -1;
    }
    free_programs(self);
    Py_CLEAR(self->sparse);
    Py_CLEAR(self->keep);
    self->style = style;
    self->sparse = PyDict_New();
    self->keep = PyList_New(0);
    if (!self->sparse || !self->keep) return -1;
    Py_ssize_t n = PyDict_Size(programs), pos = 0, k = 0;
    self->progs = PyMem_Calloc((size_t)(n ? n : 1), sizeof(Program));
    if (!self->progs) {
        PyErr_NoMemory();
        return -1;
    }
    self->nprogs = (int)n;
    PyObject *key, *val;
    while (PyDict_Next(programs, &pos, &key, &val)) {
        long id = PyLong_AsLong(key);
        if (id == -1 && PyErr_Occurred()) return -1;
        if (val == Py_None) { /* registered, rendered by the per-frame rule */
            if (id >= 0 && id < DENSE) {
                self->dense[id] = &FALLBACK;
            } else {
                PyObject *idx = PyLong_FromLong(-1);
                if (!idx || PyDict_SetItem(self->sparse, key, idx) < 0) {
                    Py_XDECREF(idx);
                    return -1;
                }
                Py_DECREF(idx);
            }
            continue;
        }
        if (!PyTuple_Check(val)) {
            PyErr_SetString(PyExc_TypeError, "a program is a tuple of ops or None");
            return -1;
        }
        if (PyList_Append(self->keep, val) < 0) return -1;
        Program *pr = &self->progs[k];
        Py_ssize_t nops = PyTuple_GET_SIZE(val);
        pr->ops = PyMem_Calloc((size_t)(nops ? nops : 1), sizeof(Op));
        if (!pr->ops) {
            PyErr_NoMemory();
            return -1;
        }
        pr->n = (int)nops;
        for (Py_ssize_t i = 0; i < nops; i++) {
            Op *op = &pr->ops[i];
            PyObject *t = PyTuple_GET_ITEM(val, i), *prefix, *labels;
            if (!PyArg_ParseTuple(t, "SiiiiiiO", &prefix, &op->code, &op->src, &op->offset, &op->count,
                                  &op->is_array, &op->size, &labels))
                return -1;
            int hend = op->offset + (op->code == OP_TIME || op->code == OP_OPTTIME ? 8 : elem_size(op->code));
            if (op->code < OP_NONE || op->code > OP_HEX || op->offset < 0 || op->count < 1 || op->size < 0 ||
                (op->src == 0 && (op->code == OP_TEXT || op->is_array || hend > HEADER_SIZE) && op->code < OP_JOURNAL)) {
                PyErr_SetString(PyExc_ValueError, "bad op");
                return -1;
            }
            if (labels != Py_None) {
                if (!PyTuple_Check(labels)) {
                    PyErr_SetString(PyExc_TypeError, "labels are a tuple of bytes or None");
                    return -1;
                }
                for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(labels); j++) {
                    PyObject *l = PyTuple_GET_ITEM(labels, j);
                    if (l != Py_None && !PyBytes_Check(l)) {
                        PyErr_SetString(PyExc_TypeError, "labels are a tuple of bytes or None");
                        return -1;
                    }
                }
                op->labels = labels;
            }
            op->prefix = PyBytes_AS_STRING(prefix);
            op->prefix_len = PyBytes_GET_SIZE(prefix);
            if (op->src == 1 && op->code != OP_NONE && op->code < OP_JOURNAL) {
                Py_ssize_t end = op->offset + (Py_ssize_t)(op->code == OP_TEXT ? op->size : elem_size(op->code) * op->count);
                if (end > pr->min_payload) pr->min_payload = end;
            }
        }
        if (id == -1) {
            self->unknown = pr;
        } else if (id >= 0 && id < DENSE) {
            self->dense[id] = pr;
        } else {
            PyObject *idx = PyLong_FromSsize_t(k);
            if (!idx || PyDict_SetItem(self->sparse, key, idx) < 0) {
                Py_XDECREF(idx);
                return -1;
            }
            Py_DECREF(idx);
        }
        k++;
    }
    return 0;
}

static int fallback_line(Buf *b, PyObject *fallback, Py_ssize_t i) {
    PyObject *r = PyObject_CallFunction(fallback, "n", i);
    if (!r) return -1;
    if (!PyBytes_Check(r)) {
        Py_DECREF(r);
        PyErr_SetString(PyExc_TypeError, "fallback must return bytes");
        return -1;
    }
    int rc = put(b, PyBytes_AS_STRING(r), (size_t)PyBytes_GET_SIZE(r));
    Py_DECREF(r);
    return rc;
}

/* run(buf, header_size, offsets int64[n], headers bytes-like of n 32-byte kftools headers, journal, fallback) */
static PyObject *Formatter_run(Formatter *self, PyObject *args) {
    Py_buffer mm, offs, hdrs, jb;
    Py_ssize_t hsize;
    PyObject *fallback;
    if (!PyArg_ParseTuple(args, "y*ny*y*y*O", &mm, &hsize, &offs, &hdrs, &jb, &fallback)) return NULL;
    PyObject *result = NULL;
    Buf b = {0};
    Py_ssize_t n = offs.len / 8;
    if (offs.len % 8 || hdrs.len != n * HEADER_SIZE || hsize < 0) {
        PyErr_SetString(PyExc_ValueError, "run: offsets and headers disagree");
        goto done;
    }
    if (n && buf_grow(&b, (size_t)n * 160) < 0) goto done; /* a typical line; grown when longer */
    const int64_t *off = offs.buf;
    const unsigned char *hd = hdrs.buf, *base = mm.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        const unsigned char *h = hd + i * HEADER_SIZE;
        uint32_t length, type;
        memcpy(&length, h, 4);
        memcpy(&type, h + 4, 4);
        Program *pr = NULL;
        if (type < DENSE) {
            pr = self->dense[type];
        } else if (PyDict_Size(self->sparse)) {
            PyObject *key = PyLong_FromUnsignedLong(type);
            if (!key) goto done;
            PyObject *idx = PyDict_GetItemWithError(self->sparse, key);
            Py_DECREF(key);
            if (idx) {
                Py_ssize_t k = PyLong_AsSsize_t(idx);
                pr = k < 0 ? &FALLBACK : &self->progs[k];
            } else if (PyErr_Occurred()) {
                goto done;
            }
        }
        if (!pr) pr = self->unknown;
        if (pr == &FALLBACK) pr = NULL;
        int64_t at = off[i];
        Py_ssize_t need = pr == self->unknown && pr ? (Py_ssize_t)length : pr ? pr->min_payload : 0;
        if (pr && (at < 0 || at + hsize + need > mm.len || (Py_ssize_t)length < need)) pr = NULL;
        if (pr) {
            size_t mark = b.n;
            const unsigned char *pay = base + at + hsize;
            int rc = 0;
            for (int k = 0; k < pr->n && rc == 0; k++)
                rc = run_op(&b, &pr->ops[k], h, pay, self->style, jb.buf, jb.len);
            if (rc < 0) goto done;
            if (rc == 0) {
                if (put(&b, "\n", 1) < 0) goto done;
                continue;
            }
            b.n = mark; /* a value outside the fast paths: the whole line from Python */
        }
        if (fallback_line(&b, fallback, i) < 0 || put(&b, "\n", 1) < 0) goto done;
    }
    result = buf_finish(&b);
done:
    buf_free(&b);
    PyBuffer_Release(&mm);
    PyBuffer_Release(&offs);
    PyBuffer_Release(&hdrs);
    PyBuffer_Release(&jb);
    return result;
}

/* repr(x) (or its JSON spelling) through the fast path, for the tests */
static PyObject *format_double(PyObject *mod, PyObject *args) {
    (void)mod;
    double x;
    int style = STYLE_TEXT;
    if (!PyArg_ParseTuple(args, "d|i", &x, &style)) return NULL;
    Buf b = {0};
    if (put_double(&b, x, style) < 0) {
        buf_free(&b);
        return NULL;
    }
    PyObject *r = PyUnicode_DecodeASCII(b.p, (Py_ssize_t)b.n, "strict");
    buf_free(&b);
    return r;
}

static PyMethodDef Formatter_methods[] = {
    {"run", (PyCFunction)Formatter_run, METH_VARARGS, "Render a run of frames: bytes, one line per frame."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FormatterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kftools._format.Formatter",
    .tp_basicsize = sizeof(Formatter),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Formatter_init,
    .tp_dealloc = (destructor)Formatter_dealloc,
    .tp_methods = Formatter_methods,
    .tp_doc = "Line programs of one output style, run over frames.",
};

static PyMethodDef module_methods[] = {
    {"format_double", format_double, METH_VARARGS, "A double as repr (style 1: as json.dumps) writes it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "_format", NULL, -1, module_methods};

PyMODINIT_FUNC PyInit__format(void) {
    if (PyType_Ready(&FormatterType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    Py_INCREF(&FormatterType);
    if (PyModule_AddObject(m, "Formatter", (PyObject *)&FormatterType) < 0) {
        Py_DECREF(&FormatterType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
