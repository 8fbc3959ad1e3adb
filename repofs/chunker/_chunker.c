/*
 * Boundary scanner for restic's content-defined chunker (FORMAT.md section 9).
 *
 * The Python side (repofs/chunker/__init__.py) computes the two lookup tables of a
 * polynomial and keeps the bytes; this module only finds where chunks end.
 *
 * It does not replay restic's state machine byte for byte but uses an equivalent closed
 * form: once a chunk holds at least min_size (>= 64) bytes, restic's digest is the Rabin
 * fingerprint of exactly the last 64 bytes, whatever came before. So the end of a chunk
 * starting at s is the smallest e in [s + min_size, s + max_size] such that the fingerprint
 * of bytes [e - 64, e) has no bit of the split mask set, or s + max_size, or the end of the
 * file. Bytes before s + min_size - 64 are never looked at, as in restic.
 *
 * Because a window's fingerprint depends on nothing but its 64 bytes, a long stretch can be
 * split into lanes that are hashed independently and interleaved; the lanes' dependency
 * chains then overlap in the CPU, which is where the speed comes from.
 *
 * The scan runs with the GIL released.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define WINDOW 64
#define LANES 4
/* Bytes examined per round of interleaved lanes; a cut wastes at most the rest of a round. */
#define ROUND (64 * 1024)
/* Below this many candidate positions, a single lane is cheaper than warming up four. */
#define MIN_LANE_SPAN 1024
#define NONE ((size_t)-1)

#if defined(__GNUC__)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define UNLIKELY(x) (x)
#endif

typedef struct {
    uint64_t out[256]; /* fingerprint of byte b followed by 63 zero bytes */
    uint64_t mod[256]; /* (b * x^k mod P) | (b * x^k), k = deg(P) */
    unsigned shift;    /* k - 8 */
    uint64_t mask;     /* split mask: a cut where fingerprint & mask == 0 */
} tables_t;

static inline uint64_t
push(const tables_t *t, uint64_t d, uint8_t in)
{
    return ((d << 8) | in) ^ t->mod[d >> t->shift];
}

static inline uint64_t
slide(const tables_t *t, uint64_t d, uint8_t out, uint8_t in)
{
    return push(t, d ^ t->out[out], in);
}

/* Fingerprint of the 64 bytes w[0..63]. */
static inline uint64_t
window_fp(const tables_t *t, const uint8_t *w)
{
    uint64_t d = 0;
    for (int k = 0; k < WINDOW; k++)
        d = push(t, d, w[k]);
    return d;
}

/*
 * First q in [a, b) whose window p[q-63..q] matches, or NONE.
 * p[a-63] must be readable (a >= 63 for a buffer that starts at p).
 */
static size_t
scan_one(const tables_t *t, const uint8_t *p, size_t a, size_t b)
{
    const uint64_t mask = t->mask;
    if (a >= b)
        return NONE;
    uint64_t d = window_fp(t, p + a - (WINDOW - 1));
    if ((d & mask) == 0)
        return a;
    for (size_t q = a + 1; q < b; q++) {
        d = slide(t, d, p[q - WINDOW], p[q]);
        if (UNLIKELY((d & mask) == 0))
            return q;
    }
    return NONE;
}

/* Same contract as scan_one, for long ranges: rounds of LANES interleaved lanes. */
static size_t
scan_lanes(const tables_t *t, const uint8_t *p, size_t a, size_t b)
{
    const uint64_t mask = t->mask;

    while (b - a >= LANES * MIN_LANE_SPAN) {
        size_t len = b - a < ROUND ? b - a : ROUND;
        ptrdiff_t span = (ptrdiff_t)(len / LANES);
        const uint8_t *l0 = p + a, *l1 = l0 + span, *l2 = l1 + span, *l3 = l2 + span;
        uint64_t d0 = window_fp(t, l0 - (WINDOW - 1));
        uint64_t d1 = window_fp(t, l1 - (WINDOW - 1));
        uint64_t d2 = window_fp(t, l2 - (WINDOW - 1));
        uint64_t d3 = window_fp(t, l3 - (WINDOW - 1));
        size_t first[LANES] = {NONE, NONE, NONE, NONE};

        for (ptrdiff_t k = 0;;) {
            if (UNLIKELY(((d0 & mask) == 0) | ((d1 & mask) == 0) | ((d2 & mask) == 0) |
                         ((d3 & mask) == 0))) {
                if ((d0 & mask) == 0)
                    return a + (size_t)k; /* nothing earlier is left unexamined */
                if ((d1 & mask) == 0 && first[1] == NONE)
                    first[1] = (size_t)k;
                if ((d2 & mask) == 0 && first[2] == NONE)
                    first[2] = (size_t)k;
                if ((d3 & mask) == 0 && first[3] == NONE)
                    first[3] = (size_t)k;
            }
            if (++k == span)
                break;
            d0 = slide(t, d0, l0[k - WINDOW], l0[k]);
            d1 = slide(t, d1, l1[k - WINDOW], l1[k]);
            d2 = slide(t, d2, l2[k - WINDOW], l2[k]);
            d3 = slide(t, d3, l3[k - WINDOW], l3[k]);
        }
        for (size_t j = 1; j < LANES; j++)
            if (first[j] != NONE)
                return a + j * (size_t)span + first[j];
        size_t rest = scan_one(t, p, a + LANES * (size_t)span, a + len);
        if (rest != NONE)
            return rest;
        a += len;
    }
    return scan_one(t, p, a, b);
}

typedef struct {
    PyObject_HEAD
    tables_t t;
    size_t min_size, max_size;
    size_t count;          /* bytes of the unfinished chunk seen so far */
    uint8_t tail[WINDOW];  /* its last min(count, 64) bytes, right-aligned */
    int busy;              /* a scan runs without the GIL */
} Scanner;

/*
 * Advance over p[0..n), writing the end offset (in p) of each chunk completed here to cuts.
 * Runs without the GIL: touches only the scanner's plain fields and the given memory.
 */
static size_t
scan(Scanner *s, const uint8_t *p, size_t n, size_t *cuts)
{
    const tables_t *t = &s->t;
    const size_t last_unchecked = s->min_size - 1;
    size_t ncuts = 0, pos = 0, count = s->count;

    while (pos < n) {
        /* count = bytes of the current chunk before p[pos] */
        if (count < last_unchecked) {
            size_t skip = last_unchecked - count;
            if (skip > n - pos)
                skip = n - pos;
            pos += skip;
            count += skip;
            continue;
        }
        /* Ending the chunk after p[pos] gives count + 1 >= min_size bytes: check from here. */
        size_t forced = pos + (s->max_size - 1 - count); /* ends a max_size chunk */
        size_t hi = forced < n ? forced + 1 : n;
        size_t from = pos, q = NONE;
        if (pos < WINDOW - 1) {
            /* The window reaches back into earlier buffers; since every window lies inside
             * its chunk, this chunk began there and its last bytes are in tail. */
            uint8_t joined[2 * WINDOW];
            size_t head = n < WINDOW ? n : WINDOW;
            size_t e = hi < WINDOW - 1 ? hi : WINDOW - 1;
            memcpy(joined, s->tail, WINDOW);
            memcpy(joined + WINDOW, p, head);
            q = scan_one(t, joined, WINDOW + pos, WINDOW + e);
            if (q != NONE)
                q -= WINDOW;
            from = e;
        }
        if (q == NONE)
            q = scan_lanes(t, p, from, hi);
        if (q == NONE && hi == forced + 1)
            q = forced;
        if (q != NONE) {
            cuts[ncuts++] = q + 1;
            pos = q + 1;
            count = 0;
        } else {
            count += hi - pos;
            pos = hi;
        }
    }

    size_t start = ncuts ? cuts[ncuts - 1] : 0;
    size_t keep = n - start;
    if (keep >= WINDOW) {
        memcpy(s->tail, p + n - WINDOW, WINDOW);
    } else if (ncuts == 0) {
        memmove(s->tail, s->tail + keep, WINDOW - keep);
        memcpy(s->tail + WINDOW - keep, p, keep);
    } else {
        memset(s->tail, 0, WINDOW - keep);
        memcpy(s->tail + WINDOW - keep, p + start, keep);
    }
    s->count = count;
    return ncuts;
}

static int
Scanner_init(Scanner *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"tables", "shift", "mask", "min_size", "max_size", NULL};
    Py_buffer tab;
    unsigned int shift;
    unsigned long long mask;
    Py_ssize_t min_size, max_size;

    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Scanner re-initialised while a scan runs");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*IKnn:Scanner", kwlist, &tab, &shift, &mask,
                                     &min_size, &max_size))
        return -1;
    if (tab.len != (Py_ssize_t)(sizeof self->t.out + sizeof self->t.mod)) {
        PyErr_Format(PyExc_ValueError, "tables must be %zu bytes, got %zd",
                     sizeof self->t.out + sizeof self->t.mod, tab.len);
        PyBuffer_Release(&tab);
        return -1;
    }
    memcpy(self->t.out, tab.buf, sizeof self->t.out);
    memcpy(self->t.mod, (const char *)tab.buf + sizeof self->t.out, sizeof self->t.mod);
    PyBuffer_Release(&tab);
    if (shift > 45) {
        PyErr_Format(PyExc_ValueError, "shift must be at most 45, got %u", shift);
        return -1;
    }
    if (min_size < WINDOW || max_size < min_size) {
        PyErr_Format(PyExc_ValueError, "want %d <= min_size <= max_size, got %zd, %zd", WINDOW,
                     min_size, max_size);
        return -1;
    }
    /* Every index into mod must stay below 256: fingerprints keep below 2^(shift+8). */
    for (unsigned b = 0; b < 256; b++) {
        if ((self->t.out[b] >> (shift + 8)) != 0 || (self->t.mod[b] >> (shift + 8)) != b) {
            PyErr_SetString(PyExc_ValueError, "tables do not fit the shift");
            return -1;
        }
    }
    self->t.shift = shift;
    self->t.mask = mask;
    self->min_size = (size_t)min_size;
    self->max_size = (size_t)max_size;
    self->count = 0;
    memset(self->tail, 0, WINDOW);
    self->busy = 0;
    return 0;
}

static PyObject *
Scanner_scan(Scanner *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (self->busy) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_RuntimeError, "Scanner.scan called while another scan runs");
        return NULL;
    }
    size_t n = (size_t)view.len;
    size_t *cuts = PyMem_Malloc((n / self->min_size + 1) * sizeof *cuts);
    if (cuts == NULL) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    size_t ncuts;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    ncuts = scan(self, view.buf, n, cuts);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    PyBuffer_Release(&view);

    PyObject *result = PyList_New((Py_ssize_t)ncuts);
    for (size_t i = 0; result != NULL && i < ncuts; i++) {
        PyObject *v = PyLong_FromSize_t(cuts[i]);
        if (v == NULL)
            Py_CLEAR(result);
        else
            PyList_SET_ITEM(result, (Py_ssize_t)i, v);
    }
    PyMem_Free(cuts);
    return result;
}

static PyObject *
Scanner_reset(Scanner *self, PyObject *Py_UNUSED(ignored))
{
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Scanner.reset called while a scan runs");
        return NULL;
    }
    self->count = 0;
    memset(self->tail, 0, WINDOW);
    Py_RETURN_NONE;
}

static PyObject *
Scanner_get_count(Scanner *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSize_t(self->count);
}

static PyMethodDef Scanner_methods[] = {
    {"scan", (PyCFunction)Scanner_scan, METH_O,
     "scan(data) -> list[int]\n\nAdvance over data (a contiguous buffer); return the end offset, "
     "within data,\nof every chunk completed inside it."},
    {"reset", (PyCFunction)Scanner_reset, METH_NOARGS,
     "reset()\n\nForget the unfinished chunk: the next scan starts a new file."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Scanner_getset[] = {
    {"count", (getter)Scanner_get_count, NULL, "bytes of the unfinished chunk scanned so far",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "repofs.chunker._chunker.Scanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Scanner(tables, shift, mask, min_size, max_size)\n\n"
              "Chunk boundary finder for one stream. tables: 256 'out' then 256 'mod'\n"
              "entries as native uint64; shift = degree - 8; mask = 2**average_bits - 1.\n"
              "Not for concurrent use by several threads.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scanner_init,
    .tp_methods = Scanner_methods,
    .tp_getset = Scanner_getset,
};

static struct PyModuleDef chunker_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "repofs.chunker._chunker",
    .m_doc = "Chunk boundary scanner for restic's content-defined chunker.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__chunker(void)
{
    if (PyType_Ready(&ScannerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&chunker_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&ScannerType);
    if (PyModule_AddObject(m, "Scanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(&ScannerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
