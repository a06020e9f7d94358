/* The merge of several journals' batches by key, in one pass (merge.py's batch merge).
 *
 * merge(keys, records, width, order, out): `keys` is a list of int64 arrays, each
 * non-decreasing (a journal's merge keys); `records` a list of byte buffers holding
 * each part's fixed-width records (frame headers, `width` bytes each), one per key.
 * Writes into `order` (int64, total length) the index of each merged row in the
 * parts' concatenation, and into `out` (total * width bytes) the records in merged
 * order. Ties go to the part given first, then to position: what a stable sort of
 * the concatenated keys gives (merge.py's Python twin), without sorting. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_PARTS 4096

static PyObject *merge(PyObject *self, PyObject *args) {
    PyObject *keys_list, *recs_list, *order_obj, *out_obj;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "O!O!nOO:merge", &PyList_Type, &keys_list, &PyList_Type, &recs_list, &width,
                          &order_obj, &out_obj))
        return NULL;
    Py_ssize_t k = PyList_GET_SIZE(keys_list);
    if (k != PyList_GET_SIZE(recs_list) || k > MAX_PARTS || width <= 0) {
        PyErr_SetString(PyExc_ValueError, "merge: keys and records differ in length, or too many parts");
        return NULL;
    }
    Py_buffer *kb = PyMem_Calloc((size_t)(2 * k + 2), sizeof(Py_buffer));
    Py_ssize_t *pos = PyMem_Calloc((size_t)k + 1, sizeof(Py_ssize_t));
    Py_ssize_t *base = PyMem_Calloc((size_t)k + 1, sizeof(Py_ssize_t));
    Py_ssize_t *cur = PyMem_Calloc((size_t)k + 1, sizeof(Py_ssize_t));
    if (kb == NULL || pos == NULL || base == NULL || cur == NULL) {
        PyMem_Free(kb);
        PyMem_Free(pos);
        PyMem_Free(base);
        PyMem_Free(cur);
        return PyErr_NoMemory();
    }
    Py_buffer *rb = kb + k, *ob = kb + 2 * k, *outb = kb + 2 * k + 1;
    Py_ssize_t got = 0, total = 0;
    int ok = 1;
    for (; got < k; got++) {
        if (PyObject_GetBuffer(PyList_GET_ITEM(keys_list, got), &kb[got], PyBUF_C_CONTIGUOUS) < 0) {
            ok = 0;
            break;
        }
        if (PyObject_GetBuffer(PyList_GET_ITEM(recs_list, got), &rb[got], PyBUF_C_CONTIGUOUS) < 0) {
            PyBuffer_Release(&kb[got]);
            ok = 0;
            break;
        }
        Py_ssize_t n = kb[got].len / 8;
        if (kb[got].itemsize != 8 || rb[got].len != n * width) {
            PyErr_SetString(PyExc_ValueError, "merge: keys must be int64, one record of `width` bytes per key");
            PyBuffer_Release(&kb[got]);
            PyBuffer_Release(&rb[got]);
            ok = 0;
            break;
        }
        base[got] = total;
        total += n;
    }
    int have_order = 0, have_out = 0;
    if (ok) {
        if (PyObject_GetBuffer(order_obj, ob, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
            ok = 0;
        } else {
            have_order = 1;
            if (ob->len != total * 8) {
                PyErr_SetString(PyExc_ValueError, "merge: order must hold one int64 per key");
                ok = 0;
            }
        }
    }
    if (ok) {
        if (PyObject_GetBuffer(out_obj, outb, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
            ok = 0;
        } else {
            have_out = 1;
            if (outb->len != total * width) {
                PyErr_SetString(PyExc_ValueError, "merge: out must hold `width` bytes per key");
                ok = 0;
            }
        }
    }
    if (ok) {
        int64_t *order = (int64_t *)ob->buf;
        char *out = (char *)outb->buf;
        Py_ssize_t n_out = 0;
        Py_BEGIN_ALLOW_THREADS
        /* parts still holding rows, with their heads; (key, part) orders them, exhausted parts leave the list */
        Py_ssize_t live = 0;
        for (Py_ssize_t i = 0; i < k; i++) {
            if (kb[i].len) pos[live] = i, live++;
        }
        while (live) {
            /* the smallest (head key, part) and the second smallest, in one pass */
            Py_ssize_t b = -1, s2 = -1;
            int64_t bk = 0, sk = 0;
            for (Py_ssize_t j = 0; j < live; j++) {
                Py_ssize_t i = pos[j];
                int64_t key = ((const int64_t *)kb[i].buf)[cur[i]];
                if (b < 0 || key < bk || (key == bk && i < pos[b])) {
                    s2 = b, sk = bk;
                    b = j, bk = key;
                } else if (s2 < 0 || key < sk || (key == sk && i < pos[s2])) {
                    s2 = j, sk = key;
                }
            }
            Py_ssize_t i = pos[b];
            const int64_t *keys = (const int64_t *)kb[i].buf;
            Py_ssize_t n = kb[i].len / 8, start = cur[i], end = start + 1;
            if (s2 < 0) {
                end = n;
            } else {
                /* rows of part i go first while (key, i) < (sk, its part): ties go to the part given first */
                int inclusive = i < pos[s2];
                while (end < n && (keys[end] < sk || (inclusive && keys[end] == sk))) end++;
            }
            memcpy(out + n_out * width, (const char *)rb[i].buf + start * width, (size_t)((end - start) * width));
            for (Py_ssize_t j = start; j < end; j++) order[n_out++] = base[i] + j;
            cur[i] = end;
            if (end == n) pos[b] = pos[--live]; /* order among live parts does not matter: ties compare indices */
        }
        Py_END_ALLOW_THREADS
    }
    for (Py_ssize_t i = 0; i < got; i++) {
        PyBuffer_Release(&kb[i]);
        PyBuffer_Release(&rb[i]);
    }
    if (have_order) PyBuffer_Release(ob);
    if (have_out) PyBuffer_Release(outb);
    PyMem_Free(kb);
    PyMem_Free(pos);
    PyMem_Free(base);
    PyMem_Free(cur);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"merge", merge, METH_VARARGS,
     "merge(keys, records, width, order, out): several sorted parts merged by key into order and out."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_merge", "The batch merge of several journals, in C.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__merge(void) { return PyModule_Create(&module); }
