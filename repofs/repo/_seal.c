/* AES-256-CTR + Poly1305-AES as restic seals objects (FORMAT.md §3), without the GIL:
 * IV ‖ ciphertext ‖ MAC, the MAC over the ciphertext with the key r ‖ AES-128(k, IV).
 * `open_blobs` also decompresses (zstd) and checks the SHA-256 id of every blob of a pack
 * range in one call, so a range of small blobs costs one release of the GIL, not four per blob.
 *
 * The ciphers, the MAC and the hash are OpenSSL's (EVP), which picks the widest code the
 * processor runs (AES-NI, VAES, AVX-512 Poly1305); the counter is the whole IV block,
 * incremented as one 128-bit big-endian number, as Go's cipher.NewCTR does. The contexts of
 * one call are made for that call: SealKey objects are shared between threads.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

/* Objects at least this long are sealed and opened with the GIL released. */
#define NO_GIL_MIN 4096

/* Fetched once when the module loads; NULL when this OpenSSL lacks one of them. */
static EVP_CIPHER *ctr_cipher, *ecb_cipher;
static EVP_MAC *poly1305;
static EVP_MD *sha256;

static int openssl_ready(void) { return ctr_cipher && ecb_cipher && poly1305 && sha256; }

/* -- one call's OpenSSL contexts ------------------------------------------------------- */

typedef struct {
    EVP_CIPHER_CTX *ctr; /* AES-256-CTR with the encryption key; the IV is set per object */
    EVP_CIPHER_CTX *ecb; /* AES-128 with the MAC's k: the Poly1305 nonce s = AES(k, IV) */
    EVP_MAC_CTX *mac;
} sealer;

static void sealer_free(sealer *c) {
    EVP_CIPHER_CTX_free(c->ctr);
    EVP_CIPHER_CTX_free(c->ecb);
    EVP_MAC_CTX_free(c->mac);
}

static int sealer_new(sealer *c, const uint8_t enc[32], const uint8_t k[16]) {
    c->ctr = EVP_CIPHER_CTX_new();
    c->ecb = EVP_CIPHER_CTX_new();
    c->mac = EVP_MAC_CTX_new(poly1305);
    if (c->ctr && c->ecb && c->mac && EVP_EncryptInit_ex2(c->ctr, ctr_cipher, enc, NULL, NULL)
        && EVP_EncryptInit_ex2(c->ecb, ecb_cipher, k, NULL, NULL) && EVP_CIPHER_CTX_set_padding(c->ecb, 0))
        return 1;
    sealer_free(c);
    return 0;
}

/* out = in XOR the key stream from the counter block `iv`; in and out may be equal. */
static int sealer_crypt(sealer *c, const uint8_t iv[16], const uint8_t *in, uint8_t *out, size_t n) {
    if (!EVP_EncryptInit_ex2(c->ctr, NULL, NULL, iv, NULL)) return 0;
    while (n > 0) {
        int step = n > (size_t)(INT_MAX & ~15) ? (INT_MAX & ~15) : (int)n, done;
        if (!EVP_EncryptUpdate(c->ctr, out, &done, in, step) || done != step) return 0;
        in += step;
        out += step;
        n -= (size_t)step;
    }
    return 1;
}

static int sealer_tag(sealer *c, const uint8_t r[16], const uint8_t iv[16], const uint8_t *ct, size_t n,
                      uint8_t tag[16]) {
    uint8_t key[32];
    int got;
    size_t len;
    memcpy(key, r, 16);
    if (!EVP_EncryptUpdate(c->ecb, key + 16, &got, iv, 16) || got != 16) return 0;
    return EVP_MAC_init(c->mac, key, sizeof key, NULL) && EVP_MAC_update(c->mac, ct, n)
           && EVP_MAC_final(c->mac, tag, &len, 16) && len == 16;
}

static int tags_differ(const uint8_t *a, const uint8_t *b) {
    unsigned diff = 0;
    for (int i = 0; i < 16; i++) diff |= a[i] ^ b[i];
    return diff != 0;
}

/* -- the Python type -------------------------------------------------------------------------- */

/* Contexts kept for the next call: making them costs ~1 us, more than sealing 1 KiB. */
#define SPARES 4

typedef struct {
    PyObject_HEAD
    uint8_t enc[32];
    uint8_t mac_k[16];
    uint8_t r[16];
    sealer *spare[SPARES]; /* taken and given back atomically: calls run in many threads */
} SealKey;

static void sealer_discard(sealer *c) {
    sealer_free(c);
    free(c);
}

/* A spare sealer for this key, or a new one; NULL when OpenSSL or memory fails. */
static sealer *sealer_take(SealKey *self) {
    for (int i = 0; i < SPARES; i++) {
        sealer *c = __atomic_exchange_n(&self->spare[i], NULL, __ATOMIC_ACQ_REL);
        if (c != NULL) return c;
    }
    sealer *c = malloc(sizeof *c);
    if (c != NULL && !sealer_new(c, self->enc, self->mac_k)) {
        free(c);
        c = NULL;
    }
    return c;
}

/* Keep `c` for a later call when a slot is free. Only sealers that did not fail come back. */
static void sealer_give(SealKey *self, sealer *c) {
    for (int i = 0; i < SPARES; i++) {
        sealer *empty = NULL;
        if (__atomic_compare_exchange_n(&self->spare[i], &empty, c, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return;
    }
    sealer_discard(c);
}

static void drop_spares(SealKey *self) {
    for (int i = 0; i < SPARES; i++) {
        sealer *c = __atomic_exchange_n(&self->spare[i], NULL, __ATOMIC_ACQ_REL);
        if (c != NULL) sealer_discard(c);
    }
}

static void SealKey_dealloc(SealKey *self) {
    drop_spares(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int SealKey_init(SealKey *self, PyObject *args, PyObject *kwds) {
    static char *names[] = {"encrypt", "mac_k", "mac_r", NULL};
    Py_buffer enc, k, r;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*y*y*", names, &enc, &k, &r)) return -1;
    int rc = -1;
    if (enc.len != 32 || k.len != 16 || r.len != 16) {
        PyErr_SetString(PyExc_ValueError, "invalid key sizes");
    } else if (!openssl_ready()) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL lacks AES-256-CTR, AES-128-ECB, Poly1305 or SHA-256");
    } else {
        drop_spares(self); /* made with the keys of an earlier __init__ */
        memcpy(self->enc, enc.buf, 32);
        memcpy(self->mac_k, k.buf, 16);
        memcpy(self->r, r.buf, 16);
        rc = 0;
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

static PyObject *openssl_failed(void) {
    PyErr_SetString(PyExc_RuntimeError, "OpenSSL failed to seal or open an object");
    return NULL;
}

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
    uint8_t *p = (uint8_t *)PyBytes_AS_STRING(out);
    size_t n = (size_t)plain.len;
    memcpy(p, iv.buf, 16);
    PyThreadState *ts = release_gil(n);
    sealer *c = sealer_take(self);
    int ok = c != NULL && sealer_crypt(c, p, plain.buf, p + 16, n) && sealer_tag(c, self->r, p, p + 16, n, p + 16 + n);
    if (c != NULL) ok ? sealer_give(self, c) : sealer_discard(c);
    take_gil(ts);
    if (!ok) {
        Py_CLEAR(out);
        openssl_failed();
    }
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
    const uint8_t *p = sealed.buf;
    size_t n = (size_t)sealed.len - 32;
    uint8_t tag[16];
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (out == NULL) goto done;
    PyThreadState *ts = release_gil(n);
    sealer *c = sealer_take(self);
    int ok = c != NULL && sealer_tag(c, self->r, p, p + 16, n, tag);
    int match = ok && !tags_differ(tag, p + 16 + n);
    if (match) ok = sealer_crypt(c, p, p + 16, (uint8_t *)PyBytes_AS_STRING(out), n);
    if (c != NULL) ok ? sealer_give(self, c) : sealer_discard(c);
    take_gil(ts);
    if (!ok) {
        Py_CLEAR(out);
        openssl_failed();
    } else if (!match) {
        Py_SETREF(out, Py_NewRef(Py_None));
    }
done:
    PyBuffer_Release(&sealed);
    return out;
}

/* -- whole ranges of blobs ------------------------------------------------------------ */

enum { BLOB_OK = 0, BLOB_MAC = 1, BLOB_ZSTD = 2, BLOB_ID = 3, BLOB_RANGE = 4, BLOB_OPENSSL = 5 };

typedef struct {
    Py_ssize_t offset, length, plain; /* in the range; sealed length; plaintext length */
    int compressed, status;
    uint8_t id[32];
    PyObject *out;
} blob_t;

static int open_blob(const SealKey *self, sealer *c, const uint8_t *sealed, blob_t *b, uint8_t *scratch,
                     ZSTD_DCtx *dctx) {
    size_t n = (size_t)b->length - 32;
    uint8_t tag[16], digest[32];
    unsigned nonzero = 0;
    for (int i = 0; i < 16; i++) nonzero |= sealed[i];
    if (!nonzero) return BLOB_MAC;
    if (!sealer_tag(c, self->r, sealed, sealed + 16, n, tag)) return BLOB_OPENSSL;
    if (tags_differ(tag, sealed + 16 + n)) return BLOB_MAC;
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(b->out);
    if (b->compressed) {
        if (!sealer_crypt(c, sealed, sealed + 16, scratch, n)) return BLOB_OPENSSL;
        size_t got = ZSTD_decompressDCtx(dctx, out, (size_t)b->plain, scratch, n);
        if (ZSTD_isError(got) || got != (size_t)b->plain) return BLOB_ZSTD;
    } else if (!sealer_crypt(c, sealed, sealed + 16, out, n)) {
        return BLOB_OPENSSL;
    }
    if (!EVP_Digest(out, (size_t)b->plain, digest, NULL, sha256, NULL)) return BLOB_OPENSSL;
    return memcmp(digest, b->id, 32) == 0 ? BLOB_OK : BLOB_ID;
}

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
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    sealer *c = sealer_take(self);
    uint8_t *scratch = scratch_size ? malloc(scratch_size) : NULL;
    ZSTD_DCtx *dctx = scratch_size ? ZSTD_createDCtx() : NULL;
    if (c == NULL || (scratch_size && (scratch == NULL || dctx == NULL))) {
        failed = 1;
    } else {
        for (Py_ssize_t i = 0; i < count && !failed; i++) {
            blob_t *b = &blobs[i];
            if (b->status == BLOB_OK) b->status = open_blob(self, c, (const uint8_t *)raw.buf + b->offset, b, scratch, dctx);
            if (b->status == BLOB_OPENSSL) failed = 1;
        }
    }
    if (c != NULL) failed ? sealer_discard(c) : sealer_give(self, c);
    free(scratch);
    ZSTD_freeDCtx(dctx);
    Py_END_ALLOW_THREADS
    if (failed) {
        openssl_failed();
        goto done;
    }
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
    .tp_dealloc = (destructor)SealKey_dealloc,
    .tp_methods = SealKey_methods,
};

static PyObject *available(PyObject *module, PyObject *unused) {
    return PyBool_FromLong(openssl_ready());
}

static PyMethodDef module_methods[] = {
    {"available", available, METH_NOARGS, "Whether SealKey works: OpenSSL has every algorithm it needs."},
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
    if (!openssl_ready()) {
        ctr_cipher = EVP_CIPHER_fetch(NULL, "AES-256-CTR", NULL);
        ecb_cipher = EVP_CIPHER_fetch(NULL, "AES-128-ECB", NULL);
        poly1305 = EVP_MAC_fetch(NULL, "POLY1305", NULL);
        sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    }
    return m;
}
