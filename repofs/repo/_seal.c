/* AES-256-CTR + Poly1305-AES as restic seals objects (FORMAT.md §3), with AES-NI and without
 * the GIL: IV ‖ ciphertext ‖ MAC, the MAC over the ciphertext with the key r ‖ AES-128(k, IV).
 * `open_blobs` also decompresses (zstd) and checks the SHA-256 id of every blob of a pack
 * range in one call, so a range of small blobs costs one release of the GIL, not four per blob.
 *
 * The counter is the whole IV block, incremented as one 128-bit big-endian number (Go's
 * cipher.NewCTR). Poly1305 uses three limbs of 44, 44 and 42 bits and 128-bit products.
 * Only built for x86-64; `available()` says whether this processor has AES-NI, and the
 * Python side falls back to the cryptography package when it does not.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#if defined(__x86_64__)
#define HAVE_AESNI 1
#include <cpuid.h>
#include <emmintrin.h>
#include <wmmintrin.h>
#define AESNI __attribute__((target("aes,sse2")))
#else
#define HAVE_AESNI 0
#endif

/* Objects at least this long are sealed and opened with the GIL released. */
#define NO_GIL_MIN 4096

static inline uint64_t load_le64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v; /* x86-64 only: little-endian */
}

static inline void store_le64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* -- Poly1305 ------------------------------------------------------------------------- */

typedef unsigned __int128 u128;
#define MASK44 0xfffffffffffULL
#define MASK42 0x3ffffffffffULL

typedef struct {
    uint64_t r0, r1, r2, h0, h1, h2;
} poly_state;

static void poly_init(poly_state *st, const uint8_t r[16]) {
    uint64_t t0 = load_le64(r), t1 = load_le64(r + 8);
    /* The clamp again (r is stored clamped; applying it twice changes nothing). */
    st->r0 = t0 & 0xffc0fffffffULL;
    st->r1 = ((t0 >> 44) | (t1 << 20)) & 0xfffffc0ffffULL;
    st->r2 = (t1 >> 24) & 0x00ffffffc0fULL;
    st->h0 = st->h1 = st->h2 = 0;
}

/* Whole 16-byte blocks; `top` is 2^128 for full blocks, 0 for the padded last one. */
static void poly_blocks(poly_state *st, const uint8_t *m, size_t n, uint64_t top) {
    const uint64_t r0 = st->r0, r1 = st->r1, r2 = st->r2;
    const uint64_t s1 = r1 * 20, s2 = r2 * 20; /* 2^130 = 5 (mod p), and 4 for the limb sizes */
    uint64_t h0 = st->h0, h1 = st->h1, h2 = st->h2;
    while (n >= 16) {
        uint64_t t0 = load_le64(m), t1 = load_le64(m + 8);
        h0 += t0 & MASK44;
        h1 += ((t0 >> 44) | (t1 << 20)) & MASK44;
        h2 += ((t1 >> 24) & MASK42) | top;
        u128 d0 = (u128)h0 * r0 + (u128)h1 * s2 + (u128)h2 * s1;
        u128 d1 = (u128)h0 * r1 + (u128)h1 * r0 + (u128)h2 * s2;
        u128 d2 = (u128)h0 * r2 + (u128)h1 * r1 + (u128)h2 * r0;
        uint64_t c = (uint64_t)(d0 >> 44);
        h0 = (uint64_t)d0 & MASK44;
        d1 += c;
        c = (uint64_t)(d1 >> 44);
        h1 = (uint64_t)d1 & MASK44;
        d2 += c;
        c = (uint64_t)(d2 >> 42);
        h2 = (uint64_t)d2 & MASK42;
        h0 += c * 5;
        c = h0 >> 44;
        h0 &= MASK44;
        h1 += c;
        m += 16;
        n -= 16;
    }
    st->h0 = h0;
    st->h1 = h1;
    st->h2 = h2;
}

static void poly_mac(const uint8_t r[16], const uint8_t s[16], const uint8_t *m, size_t n,
                     uint8_t tag[16]) {
    poly_state st;
    poly_init(&st, r);
    size_t whole = n & ~(size_t)15;
    poly_blocks(&st, m, whole, 1ULL << 40);
    if (n > whole) {
        uint8_t last[16] = {0};
        memcpy(last, m + whole, n - whole);
        last[n - whole] = 1;
        poly_blocks(&st, last, 16, 0);
    }
    uint64_t h0 = st.h0, h1 = st.h1, h2 = st.h2, c;
    /* Carry fully, twice round. */
    for (int i = 0; i < 2; i++) {
        c = h1 >> 44; h1 &= MASK44;
        h2 += c; c = h2 >> 42; h2 &= MASK42;
        h0 += c * 5; c = h0 >> 44; h0 &= MASK44;
        h1 += c;
    }
    c = h1 >> 44; h1 &= MASK44; h2 += c;
    /* h - p, taken when h >= p. */
    uint64_t g0 = h0 + 5;
    c = g0 >> 44; g0 &= MASK44;
    uint64_t g1 = h1 + c;
    c = g1 >> 44; g1 &= MASK44;
    uint64_t g2 = h2 + c - (1ULL << 42);
    uint64_t keep_h = (g2 >> 63) - 1; /* all ones when g2 did not go below zero */
    keep_h = ~keep_h;
    h0 = (h0 & keep_h) | (g0 & ~keep_h);
    h1 = (h1 & keep_h) | (g1 & ~keep_h);
    h2 = (h2 & keep_h) | (g2 & ~keep_h);
    /* + s, mod 2^128. */
    uint64_t t0 = load_le64(s), t1 = load_le64(s + 8);
    h0 += t0 & MASK44; c = h0 >> 44; h0 &= MASK44;
    h1 += (((t0 >> 44) | (t1 << 20)) & MASK44) + c; c = h1 >> 44; h1 &= MASK44;
    h2 += ((t1 >> 24) & MASK42) + c; h2 &= MASK42;
    store_le64(tag, h0 | (h1 << 44));
    store_le64(tag + 8, (h1 >> 20) | (h2 << 24));
}

/* -- AES with AES-NI ---------------------------------------------------------------------- */

#if HAVE_AESNI
AESNI static inline __m128i expand_mix(__m128i key, __m128i assist) {
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    return _mm_xor_si128(key, assist);
}

#define NEXT128(i, rcon) \
    rk[i] = expand_mix(rk[i - 1], _mm_shuffle_epi32(_mm_aeskeygenassist_si128(rk[i - 1], rcon), 0xff))

AESNI static void aes128_expand(uint8_t out[11 * 16], const uint8_t key[16]) {
    __m128i rk[11];
    rk[0] = _mm_loadu_si128((const __m128i *)key);
    NEXT128(1, 0x01); NEXT128(2, 0x02); NEXT128(3, 0x04); NEXT128(4, 0x08); NEXT128(5, 0x10);
    NEXT128(6, 0x20); NEXT128(7, 0x40); NEXT128(8, 0x80); NEXT128(9, 0x1b); NEXT128(10, 0x36);
    for (int i = 0; i < 11; i++) _mm_storeu_si128((__m128i *)(out + 16 * i), rk[i]);
}

#define NEXT256_A(i, rcon) \
    rk[i] = expand_mix(rk[i - 2], _mm_shuffle_epi32(_mm_aeskeygenassist_si128(rk[i - 1], rcon), 0xff))
#define NEXT256_B(i) \
    rk[i] = expand_mix(rk[i - 2], _mm_shuffle_epi32(_mm_aeskeygenassist_si128(rk[i - 1], 0), 0xaa))

AESNI static void aes256_expand(uint8_t out[15 * 16], const uint8_t key[32]) {
    __m128i rk[15];
    rk[0] = _mm_loadu_si128((const __m128i *)key);
    rk[1] = _mm_loadu_si128((const __m128i *)(key + 16));
    NEXT256_A(2, 0x01); NEXT256_B(3); NEXT256_A(4, 0x02); NEXT256_B(5);
    NEXT256_A(6, 0x04); NEXT256_B(7); NEXT256_A(8, 0x08); NEXT256_B(9);
    NEXT256_A(10, 0x10); NEXT256_B(11); NEXT256_A(12, 0x20); NEXT256_B(13);
    NEXT256_A(14, 0x40);
    for (int i = 0; i < 15; i++) _mm_storeu_si128((__m128i *)(out + 16 * i), rk[i]);
}

AESNI static void aes128_block(const uint8_t schedule[11 * 16], const uint8_t in[16], uint8_t out[16]) {
    __m128i x = _mm_xor_si128(_mm_loadu_si128((const __m128i *)in),
                              _mm_loadu_si128((const __m128i *)schedule));
    for (int i = 1; i < 10; i++) x = _mm_aesenc_si128(x, _mm_loadu_si128((const __m128i *)(schedule + 16 * i)));
    x = _mm_aesenclast_si128(x, _mm_loadu_si128((const __m128i *)(schedule + 160)));
    _mm_storeu_si128((__m128i *)out, x);
}

AESNI static inline __m128i counter_block(uint64_t hi, uint64_t lo) {
    return _mm_set_epi64x((long long)__builtin_bswap64(lo), (long long)__builtin_bswap64(hi));
}

#define LANES 8

/* out = in XOR the AES-256 key stream from the counter block `iv`; in and out may be equal. */
AESNI static void aes256_ctr(const uint8_t schedule[15 * 16], const uint8_t iv[16], const uint8_t *in,
                             uint8_t *out, size_t n) {
    __m128i rk[15];
    for (int i = 0; i < 15; i++) rk[i] = _mm_loadu_si128((const __m128i *)(schedule + 16 * i));
    uint64_t hi = __builtin_bswap64(load_le64(iv)), lo = __builtin_bswap64(load_le64(iv + 8));
    while (n >= 16 * LANES) {
        __m128i b[LANES];
        for (int j = 0; j < LANES; j++) {
            b[j] = _mm_xor_si128(counter_block(hi, lo), rk[0]);
            if (++lo == 0) hi++;
        }
        for (int r = 1; r < 14; r++)
            for (int j = 0; j < LANES; j++) b[j] = _mm_aesenc_si128(b[j], rk[r]);
        for (int j = 0; j < LANES; j++) {
            b[j] = _mm_aesenclast_si128(b[j], rk[14]);
            __m128i x = _mm_loadu_si128((const __m128i *)(in + 16 * j));
            _mm_storeu_si128((__m128i *)(out + 16 * j), _mm_xor_si128(x, b[j]));
        }
        in += 16 * LANES;
        out += 16 * LANES;
        n -= 16 * LANES;
    }
    while (n > 0) {
        __m128i b = _mm_xor_si128(counter_block(hi, lo), rk[0]);
        if (++lo == 0) hi++;
        for (int r = 1; r < 14; r++) b = _mm_aesenc_si128(b, rk[r]);
        b = _mm_aesenclast_si128(b, rk[14]);
        if (n >= 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)in);
            _mm_storeu_si128((__m128i *)out, _mm_xor_si128(x, b));
            in += 16;
            out += 16;
            n -= 16;
        } else {
            uint8_t stream[16];
            _mm_storeu_si128((__m128i *)stream, b);
            for (size_t i = 0; i < n; i++) out[i] = in[i] ^ stream[i];
            n = 0;
        }
    }
}
#endif

/* -- the Python type -------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    uint8_t enc[15 * 16]; /* AES-256 round keys */
    uint8_t mac[11 * 16]; /* AES-128 round keys of the MAC's k */
    uint8_t r[16];
} SealKey;

static int cpu_has_aesni(void) {
#if HAVE_AESNI
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c & bit_AES) != 0 && (d & bit_SSE2) != 0;
#else
    return 0;
#endif
}

static int SealKey_init(SealKey *self, PyObject *args, PyObject *kwds) {
    static char *names[] = {"encrypt", "mac_k", "mac_r", NULL};
    Py_buffer enc, k, r;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*y*y*", names, &enc, &k, &r)) return -1;
    int rc = -1;
    if (enc.len != 32 || k.len != 16 || r.len != 16) {
        PyErr_SetString(PyExc_ValueError, "invalid key sizes");
    } else if (!cpu_has_aesni()) {
        PyErr_SetString(PyExc_RuntimeError, "this processor has no AES-NI");
    } else {
#if HAVE_AESNI
        aes256_expand(self->enc, enc.buf);
        aes128_expand(self->mac, k.buf);
        memcpy(self->r, r.buf, 16);
        rc = 0;
#endif
    }
    PyBuffer_Release(&enc);
    PyBuffer_Release(&k);
    PyBuffer_Release(&r);
    return rc;
}

/* Large objects are worked on without the GIL; for small ones handing it over costs more. */
static inline PyThreadState *release_gil(size_t n) { return n >= NO_GIL_MIN ? PyEval_SaveThread() : NULL; }

static inline void take_gil(PyThreadState *ts) {
    if (ts != NULL) PyEval_RestoreThread(ts);
}

#if HAVE_AESNI
static void tag_of(const SealKey *self, const uint8_t iv[16], const uint8_t *ct, size_t n, uint8_t tag[16]) {
    uint8_t s[16];
    aes128_block(self->mac, iv, s);
    poly_mac(self->r, s, ct, n, tag);
}
#endif

PyDoc_STRVAR(seal_doc, "seal(iv, plaintext) -> IV + ciphertext + MAC");

static PyObject *SealKey_seal(SealKey *self, PyObject *args) {
    Py_buffer iv, plain;
    if (!PyArg_ParseTuple(args, "y*y*", &iv, &plain)) return NULL;
    PyObject *out = NULL;
    if (iv.len != 16) {
        PyErr_SetString(PyExc_ValueError, "the IV must be 16 bytes");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, plain.len + 32);
    if (out == NULL) goto done;
#if HAVE_AESNI
    {
        uint8_t *p = (uint8_t *)PyBytes_AS_STRING(out);
        size_t n = (size_t)plain.len;
        memcpy(p, iv.buf, 16);
        PyThreadState *ts = release_gil(n);
        aes256_ctr(self->enc, p, plain.buf, p + 16, n);
        tag_of(self, p, p + 16, n, p + 16 + n);
        take_gil(ts);
    }
#endif
done:
    PyBuffer_Release(&iv);
    PyBuffer_Release(&plain);
    return out;
}

PyDoc_STRVAR(open_doc, "open(sealed) -> plaintext, or None when the MAC does not match");

static PyObject *SealKey_open(SealKey *self, PyObject *arg) {
    Py_buffer sealed;
    if (PyObject_GetBuffer(arg, &sealed, PyBUF_SIMPLE) < 0) return NULL;
    PyObject *out = NULL;
    if (sealed.len < 32) {
        PyErr_SetString(PyExc_ValueError, "ciphertext too short");
        goto done;
    }
#if HAVE_AESNI
    {
        const uint8_t *p = sealed.buf;
        size_t n = (size_t)sealed.len - 32;
        uint8_t tag[16];
        unsigned diff = 0;
        PyThreadState *ts = release_gil(n);
        tag_of(self, p, p + 16, n, tag);
        take_gil(ts);
        for (int i = 0; i < 16; i++) diff |= tag[i] ^ p[16 + n + i];
        if (diff) {
            out = Py_NewRef(Py_None);
            goto done;
        }
        out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
        if (out == NULL) goto done;
        uint8_t *q = (uint8_t *)PyBytes_AS_STRING(out);
        ts = release_gil(n);
        aes256_ctr(self->enc, p, p + 16, q, n);
        take_gil(ts);
    }
#endif
done:
    PyBuffer_Release(&sealed);
    return out;
}

/* -- whole ranges of blobs ------------------------------------------------------------ */

enum { BLOB_OK = 0, BLOB_MAC = 1, BLOB_ZSTD = 2, BLOB_ID = 3, BLOB_RANGE = 4 };

typedef struct {
    Py_ssize_t offset, length, plain; /* in the range; sealed length; plaintext length */
    int compressed, status;
    uint8_t id[32];
    PyObject *out;
} blob_t;

#if HAVE_AESNI
static int open_blob(const SealKey *self, const uint8_t *sealed, blob_t *b, uint8_t *scratch,
                     ZSTD_DCtx *dctx) {
    size_t n = (size_t)b->length - 32;
    uint8_t tag[16], digest[32];
    unsigned diff = 0, nonzero = 0;
    for (int i = 0; i < 16; i++) nonzero |= sealed[i];
    if (!nonzero) return BLOB_MAC;
    tag_of(self, sealed, sealed + 16, n, tag);
    for (int i = 0; i < 16; i++) diff |= tag[i] ^ sealed[16 + n + i];
    if (diff) return BLOB_MAC;
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(b->out);
    if (b->compressed) {
        aes256_ctr(self->enc, sealed, sealed + 16, scratch, n);
        size_t got = ZSTD_decompressDCtx(dctx, out, (size_t)b->plain, scratch, n);
        if (ZSTD_isError(got) || got != (size_t)b->plain) return BLOB_ZSTD;
    } else {
        aes256_ctr(self->enc, sealed, sealed + 16, out, n);
    }
    if (!EVP_Digest(out, (size_t)b->plain, digest, NULL, EVP_sha256(), NULL)) return BLOB_ID;
    return memcmp(digest, b->id, 32) == 0 ? BLOB_OK : BLOB_ID;
}
#endif

PyDoc_STRVAR(open_blobs_doc,
"open_blobs(raw, blobs) -> list\n\n"
"Decode blobs of one read pack range. `blobs` holds (offset in raw, sealed length,\n"
"uncompressed length or -1 when not compressed, id). One item per blob: its plaintext,\n"
"checked against its id, or an error code: 1 MAC mismatch, 2 zstd, 3 id mismatch,\n"
"4 outside the range.");

static PyObject *SealKey_open_blobs(SealKey *self, PyObject *args) {
    Py_buffer raw;
    PyObject *items;
    if (!PyArg_ParseTuple(args, "y*O!", &raw, &PyList_Type, &items)) return NULL;
    Py_ssize_t count = PyList_GET_SIZE(items);
    blob_t *blobs = PyMem_Calloc((size_t)count + 1, sizeof(blob_t));
    PyObject *result = NULL;
    size_t scratch_size = 0;
    if (blobs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        blob_t *b = &blobs[i];
        long long ulen;
        const char *id;
        Py_ssize_t id_len;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(items, i), "nnLy#", &b->offset, &b->length, &ulen, &id, &id_len))
            goto done;
        if (id_len != 32) {
            PyErr_SetString(PyExc_ValueError, "blob ids are 32 bytes");
            goto done;
        }
        memcpy(b->id, id, 32);
        b->compressed = ulen >= 0;
        if (b->offset < 0 || b->length < 32 || b->offset > raw.len || b->length > raw.len - b->offset) {
            b->status = BLOB_RANGE;
            continue;
        }
        b->plain = b->compressed ? (Py_ssize_t)ulen : b->length - 32;
        if (b->compressed && (size_t)b->length > scratch_size) scratch_size = (size_t)b->length;
        b->out = PyBytes_FromStringAndSize(NULL, b->plain);
        if (b->out == NULL) goto done;
    }
#if HAVE_AESNI
    {
        uint8_t *scratch = scratch_size ? malloc(scratch_size) : NULL;
        ZSTD_DCtx *dctx = scratch_size ? ZSTD_createDCtx() : NULL;
        if (scratch_size && (scratch == NULL || dctx == NULL)) {
            free(scratch);
            ZSTD_freeDCtx(dctx);
            PyErr_NoMemory();
            goto done;
        }
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < count; i++) {
            blob_t *b = &blobs[i];
            if (b->status == BLOB_OK) b->status = open_blob(self, (const uint8_t *)raw.buf + b->offset, b, scratch, dctx);
        }
        Py_END_ALLOW_THREADS
        free(scratch);
        ZSTD_freeDCtx(dctx);
    }
#endif
    result = PyList_New(count);
    if (result == NULL) goto done;
    for (Py_ssize_t i = 0; i < count; i++) {
        blob_t *b = &blobs[i];
        PyObject *item = b->status == BLOB_OK ? Py_NewRef(b->out) : PyLong_FromLong(b->status);
        if (item == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, item);
    }
done:
    if (blobs != NULL) {
        for (Py_ssize_t i = 0; i < count; i++) Py_XDECREF(blobs[i].out);
    }
    PyMem_Free(blobs);
    PyBuffer_Release(&raw);
    return result;
}

static PyMethodDef SealKey_methods[] = {
    {"seal", (PyCFunction)SealKey_seal, METH_VARARGS, seal_doc},
    {"open", (PyCFunction)SealKey_open, METH_O, open_doc},
    {"open_blobs", (PyCFunction)SealKey_open_blobs, METH_VARARGS, open_blobs_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject SealKeyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "repofs.repo._seal.SealKey",
    .tp_doc = PyDoc_STR("SealKey(encrypt, mac_k, mac_r): restic's sealing with one master key"),
    .tp_basicsize = sizeof(SealKey),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)SealKey_init,
    .tp_methods = SealKey_methods,
};

static PyObject *available(PyObject *module, PyObject *unused) {
    return PyBool_FromLong(cpu_has_aesni());
}

static PyMethodDef module_methods[] = {
    {"available", available, METH_NOARGS, "Whether SealKey works on this processor (AES-NI)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_seal", "restic's AES-256-CTR + Poly1305-AES without the GIL.", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__seal(void) {
    if (PyType_Ready(&SealKeyType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "SealKey", (PyObject *)&SealKeyType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
