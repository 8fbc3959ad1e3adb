/*
 * scrypt's ROMix (RFC 7914 section 5) on one lane, with the salsa20/8 BlockMix (sections 3
 * and 4), computed without the GIL.
 *
 * scrypt(P, S, N, r, p) expands the password into p lanes of 128*r bytes with PBKDF2, mixes
 * every lane on its own through ROMix, and compresses the lanes back with PBKDF2. The lanes
 * are independent, so repofs/repo/scrypt.py runs them on several threads; this module only
 * does the expensive middle part, one lane per call:
 *
 *     romix(lane, n, r) -> bytes              the lane after ROMix_n (128*r bytes in and out)
 *     SIMD                                    the code path romix() takes: "avx512", "sse2", "none"
 *     PATHS                                   every path this machine can run
 *     romix_on(path, lane, n, r) -> bytes     romix() through one of them (for tests)
 *
 * ROMix keeps n blocks of 128*r bytes at once (32 MiB for restic's n=2^15, r=8) in one
 * mapping that asks for huge pages: the second loop reads those blocks at random, and with
 * 4 KiB pages nearly every read would also miss the TLB.
 *
 * The words of a block are little-endian 32-bit integers. The plain path converts them to
 * native integers on the way in and back on the way out. The SSE2 path keeps each 64-byte
 * salsa20 block as four vectors holding the state's diagonals,
 *
 *     a = x0 x5 x10 x15    b = x4 x9 x14 x3    c = x8 x13 x2 x7    d = x12 x1 x6 x11
 *
 * so that the column round works lane-wise on (a, b, c, d) and the row round on
 * (a, d, c, b) after rotating d, c and b by one, two and three lanes. Blocks stay in that
 * order through the whole lane (additions and xors do not care about word order); the
 * first word of a block is x0 in both orders, which is all Integerify reads.
 *
 * One lane is a single chain of dependent operations, so its speed is the latency of add,
 * rotate, xor. Where the CPU has AVX-512VL, the same SSE2 code is also compiled for it and
 * chosen at run time: GCC then folds each rotate-and-xor into two shifts and one vpternlogd,
 * a step shorter (about 15% faster on an AMD EPYC).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define HAVE_AVX512_CLONE 1
#endif
#endif

#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

#define BLOCK_WORDS 16 /* one salsa20 block: 64 bytes */

/* ------------------------------------------------------------------------------------ */
/* Scratch memory: n blocks of 128*r bytes, 64-byte aligned                              */

typedef struct {
    void *p;
    size_t size;
    int mapped;
} Scratch;

static int
scratch_alloc(Scratch *s, size_t size)
{
    s->size = size;
    s->mapped = 0;
#if defined(__linux__) && defined(MAP_ANONYMOUS)
    if (size >= (2u << 20)) {
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) {
#ifdef MADV_HUGEPAGE
            (void)madvise(p, size, MADV_HUGEPAGE);
#endif
            s->p = p;
            s->mapped = 1;
            return 0;
        }
    }
#endif
    if (posix_memalign(&s->p, 64, size) != 0) {
        s->p = NULL;
        return -1;
    }
    return 0;
}

static void
scratch_free(Scratch *s)
{
#if defined(__linux__) && defined(MAP_ANONYMOUS)
    if (s->mapped) {
        munmap(s->p, s->size);
        return;
    }
#endif
    free(s->p);
}

/* ------------------------------------------------------------------------------------ */
/* Plain C                                                                               */

static inline uint32_t
load_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void
store_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

#define ROTL32(v, c) (((v) << (c)) | ((v) >> (32 - (c))))

/* One salsa20 quarter round on the words y0..y3 of x. */
#define QUARTER(x, y0, y1, y2, y3)                  \
    do {                                            \
        x[y1] ^= ROTL32(x[y0] + x[y3], 7);          \
        x[y2] ^= ROTL32(x[y1] + x[y0], 9);          \
        x[y3] ^= ROTL32(x[y2] + x[y1], 13);         \
        x[y0] ^= ROTL32(x[y3] + x[y2], 18);         \
    } while (0)

/* b = b + salsa20/8 core rounds of b */
static inline void
salsa20_8(uint32_t b[BLOCK_WORDS])
{
    uint32_t x[BLOCK_WORDS];
    memcpy(x, b, sizeof x);
    for (int i = 0; i < 8; i += 2) {
        QUARTER(x, 0, 4, 8, 12);   /* columns */
        QUARTER(x, 5, 9, 13, 1);
        QUARTER(x, 10, 14, 2, 6);
        QUARTER(x, 15, 3, 7, 11);
        QUARTER(x, 0, 1, 2, 3);    /* rows */
        QUARTER(x, 5, 6, 7, 4);
        QUARTER(x, 10, 11, 8, 9);
        QUARTER(x, 15, 12, 13, 14);
    }
    for (int i = 0; i < BLOCK_WORDS; i++)
        b[i] += x[i];
}

/* out = BlockMix(in ^ mix), mix may be NULL; in and out are 2r blocks and must not overlap. */
static void
blockmix_plain(const uint32_t *in, const uint32_t *mix, uint32_t *out, size_t r)
{
    uint32_t x[BLOCK_WORDS];
    const size_t last = (2 * r - 1) * BLOCK_WORDS;
    for (int k = 0; k < BLOCK_WORDS; k++)
        x[k] = in[last + k] ^ (mix ? mix[last + k] : 0);
    for (size_t i = 0; i < 2 * r; i++) {
        const uint32_t *src = in + i * BLOCK_WORDS;
        if (mix) {
            const uint32_t *m = mix + i * BLOCK_WORDS;
            for (int k = 0; k < BLOCK_WORDS; k++)
                x[k] ^= src[k] ^ m[k];
        } else {
            for (int k = 0; k < BLOCK_WORDS; k++)
                x[k] ^= src[k];
        }
        salsa20_8(x);
        /* even blocks go to the first half of the output, odd ones to the second */
        memcpy(out + (i / 2 + (i & 1) * r) * BLOCK_WORDS, x, sizeof x);
    }
}

/* ROMix on lane (128*r bytes, little-endian words) in place; v holds n*32*r words, t 64*r. */
static void
romix_plain(unsigned char *lane, size_t n, size_t r, uint32_t *v, uint32_t *t)
{
    const size_t words = 32 * r;
    uint32_t *x = t, *y = t + words;
    for (size_t k = 0; k < words; k++)
        v[k] = load_le32(lane + 4 * k);
    for (size_t i = 0; i + 1 < n; i++)
        blockmix_plain(v + i * words, NULL, v + (i + 1) * words, r);
    blockmix_plain(v + (n - 1) * words, NULL, x, r);
    for (size_t i = 0; i < n; i++) {
        size_t j = x[(2 * r - 1) * BLOCK_WORDS] & (n - 1);
        uint32_t *swap;
        blockmix_plain(x, v + j * words, y, r);
        swap = x;
        x = y;
        y = swap;
    }
    for (size_t k = 0; k < words; k++)
        store_le32(lane + 4 * k, x[k]);
}

/* ------------------------------------------------------------------------------------ */
/* SSE2                                                                                  */

#if defined(__SSE2__)

/* word k of a block in diagonal order is word DIAGONAL[k] of the block in RFC order */
static const int DIAGONAL[BLOCK_WORDS] = {0, 5, 10, 15, 4, 9, 14, 3, 8, 13, 2, 7, 12, 1, 6, 11};

#define VROTL(v, c) _mm_or_si128(_mm_slli_epi32((v), (c)), _mm_srli_epi32((v), 32 - (c)))
#define VQUARTER(y0, y1, y2, y3)                                    \
    do {                                                            \
        y1 = _mm_xor_si128(y1, VROTL(_mm_add_epi32(y0, y3), 7));    \
        y2 = _mm_xor_si128(y2, VROTL(_mm_add_epi32(y1, y0), 9));    \
        y3 = _mm_xor_si128(y3, VROTL(_mm_add_epi32(y2, y1), 13));   \
        y0 = _mm_xor_si128(y0, VROTL(_mm_add_epi32(y3, y2), 18));   \
    } while (0)

/* out = BlockMix(in ^ mix), mix may be NULL; blocks in diagonal order, 4 vectors each. */
static ALWAYS_INLINE void
blockmix_sse2(const __m128i *in, const __m128i *mix, __m128i *out, size_t r)
{
    const size_t last = (2 * r - 1) * 4;
    __m128i a = in[last], b = in[last + 1], c = in[last + 2], d = in[last + 3];
    if (mix) {
        a = _mm_xor_si128(a, mix[last]);
        b = _mm_xor_si128(b, mix[last + 1]);
        c = _mm_xor_si128(c, mix[last + 2]);
        d = _mm_xor_si128(d, mix[last + 3]);
    }
    for (size_t i = 0; i < 2 * r; i++) {
        const __m128i *src = in + 4 * i;
        __m128i *dst = out + 4 * (i / 2 + (i & 1) * r);
        __m128i a0, b0, c0, d0;
        a = _mm_xor_si128(a, src[0]);
        b = _mm_xor_si128(b, src[1]);
        c = _mm_xor_si128(c, src[2]);
        d = _mm_xor_si128(d, src[3]);
        if (mix) {
            const __m128i *m = mix + 4 * i;
            a = _mm_xor_si128(a, m[0]);
            b = _mm_xor_si128(b, m[1]);
            c = _mm_xor_si128(c, m[2]);
            d = _mm_xor_si128(d, m[3]);
        }
        a0 = a;
        b0 = b;
        c0 = c;
        d0 = d;
        for (int round = 0; round < 8; round += 2) {
            VQUARTER(a, b, c, d);                       /* columns */
            d = _mm_shuffle_epi32(d, _MM_SHUFFLE(0, 3, 2, 1));
            c = _mm_shuffle_epi32(c, _MM_SHUFFLE(1, 0, 3, 2));
            b = _mm_shuffle_epi32(b, _MM_SHUFFLE(2, 1, 0, 3));
            VQUARTER(a, d, c, b);                       /* rows */
            d = _mm_shuffle_epi32(d, _MM_SHUFFLE(2, 1, 0, 3));
            c = _mm_shuffle_epi32(c, _MM_SHUFFLE(1, 0, 3, 2));
            b = _mm_shuffle_epi32(b, _MM_SHUFFLE(0, 3, 2, 1));
        }
        a = _mm_add_epi32(a, a0);
        b = _mm_add_epi32(b, b0);
        c = _mm_add_epi32(c, c0);
        d = _mm_add_epi32(d, d0);
        dst[0] = a;
        dst[1] = b;
        dst[2] = c;
        dst[3] = d;
    }
}

/* ROMix on lane in place; v holds n*8*r vectors, t 16*r. */
static ALWAYS_INLINE void
romix_vec(unsigned char *lane, size_t n, size_t r, __m128i *v, __m128i *t)
{
    const size_t vecs = 8 * r; /* vectors in 128*r bytes */
    __m128i *x = t, *y = t + vecs;
    uint32_t *w = (uint32_t *)v;
    for (size_t blk = 0; blk < 2 * r; blk++)
        for (int k = 0; k < BLOCK_WORDS; k++)
            w[blk * BLOCK_WORDS + k] = load_le32(lane + 64 * blk + 4 * DIAGONAL[k]);
    for (size_t i = 0; i + 1 < n; i++)
        blockmix_sse2(v + i * vecs, NULL, v + (i + 1) * vecs, r);
    blockmix_sse2(v + (n - 1) * vecs, NULL, x, r);
    for (size_t i = 0; i < n; i++) {
        size_t j = (uint32_t)_mm_cvtsi128_si32(x[(2 * r - 1) * 4]) & (n - 1);
        __m128i *swap;
        blockmix_sse2(x, v + j * vecs, y, r);
        swap = x;
        x = y;
        y = swap;
    }
    w = (uint32_t *)x;
    for (size_t blk = 0; blk < 2 * r; blk++)
        for (int k = 0; k < BLOCK_WORDS; k++)
            store_le32(lane + 64 * blk + 4 * DIAGONAL[k], w[blk * BLOCK_WORDS + k]);
}

static void
romix_sse2(unsigned char *lane, size_t n, size_t r, __m128i *v, __m128i *t)
{
    romix_vec(lane, n, r, v, t);
}

#ifdef HAVE_AVX512_CLONE
__attribute__((target("avx512f,avx512vl"))) static void
romix_avx512(unsigned char *lane, size_t n, size_t r, __m128i *v, __m128i *t)
{
    romix_vec(lane, n, r, v, t);
}
#endif
#endif /* __SSE2__ */

enum path { PLAIN, SSE2, AVX512, NPATHS };
static const char *const path_names[NPATHS] = {"none", "sse2", "avx512"};
static enum path best_path = PLAIN; /* set once at import */

/* ------------------------------------------------------------------------------------ */
/* Python face                                                                           */

static PyObject *
romix_call(PyObject *args, enum path path)
{
    Py_buffer in;
    Py_ssize_t n_arg, r_arg;
    PyObject *out;
    Scratch v, t;
    size_t n, r, lane_size;
    int failed;

    if (!PyArg_ParseTuple(args, "y*nn", &in, &n_arg, &r_arg))
        return NULL;
    if (r_arg < 1 || r_arg > (1 << 24)) {
        PyErr_SetString(PyExc_ValueError, "r must be between 1 and 2**24");
        goto fail;
    }
    r = (size_t)r_arg;
    /* RFC 7914: n > 1, a power of two, below 2**(16*r); and Integerify reads 32 bits here */
    if (n_arg < 2 || (n_arg & (n_arg - 1)) != 0 || (uint64_t)n_arg >= ((uint64_t)1 << 32)
        || (r < 2 && (uint64_t)n_arg >= ((uint64_t)1 << (16 * r)))) {
        PyErr_SetString(PyExc_ValueError, "n must be a power of two above 1 and below 2**(16*r), 2**32");
        goto fail;
    }
    n = (size_t)n_arg;
    lane_size = 128 * r;
    if ((size_t)in.len != lane_size) {
        PyErr_Format(PyExc_ValueError, "a lane of r=%zu is %zu bytes, got %zd", r, lane_size, in.len);
        goto fail;
    }
    if (n > SIZE_MAX / lane_size) {
        PyErr_NoMemory();
        goto fail;
    }
    out = PyBytes_FromStringAndSize(in.buf, in.len);
    if (out == NULL)
        goto fail;
    PyBuffer_Release(&in);

    failed = 0;
    Py_BEGIN_ALLOW_THREADS
    if (scratch_alloc(&v, n * lane_size) != 0)
        failed = 1;
    else if (scratch_alloc(&t, 2 * lane_size) != 0) {
        scratch_free(&v);
        failed = 1;
    } else {
        unsigned char *lane = (unsigned char *)PyBytes_AS_STRING(out);
        switch (path) {
#ifdef HAVE_AVX512_CLONE
        case AVX512:
            romix_avx512(lane, n, r, (__m128i *)v.p, (__m128i *)t.p);
            break;
#endif
#if defined(__SSE2__)
        case SSE2:
            romix_sse2(lane, n, r, (__m128i *)v.p, (__m128i *)t.p);
            break;
#endif
        default:
            romix_plain(lane, n, r, (uint32_t *)v.p, (uint32_t *)t.p);
        }
        scratch_free(&t);
        scratch_free(&v);
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        Py_DECREF(out);
        return PyErr_NoMemory();
    }
    return out;

fail:
    PyBuffer_Release(&in);
    return NULL;
}

static PyObject *
romix(PyObject *self, PyObject *args)
{
    return romix_call(args, best_path);
}

static PyObject *
romix_on(PyObject *self, PyObject *args)
{
    const char *name;
    PyObject *rest, *out;
    int path;

    if (PyTuple_GET_SIZE(args) < 1 || !PyUnicode_Check(PyTuple_GET_ITEM(args, 0))) {
        PyErr_SetString(PyExc_TypeError, "romix_on(path, lane, n, r): path must be a str");
        return NULL;
    }
    name = PyUnicode_AsUTF8(PyTuple_GET_ITEM(args, 0));
    if (name == NULL)
        return NULL;
    for (path = 0; path <= (int)best_path; path++)
        if (strcmp(name, path_names[path]) == 0)
            break;
    if (path > (int)best_path) {
        PyErr_Format(PyExc_ValueError, "no path %R on this machine", PyTuple_GET_ITEM(args, 0));
        return NULL;
    }
    rest = PyTuple_GetSlice(args, 1, PyTuple_GET_SIZE(args));
    if (rest == NULL)
        return NULL;
    out = romix_call(rest, (enum path)path);
    Py_DECREF(rest);
    return out;
}

static PyMethodDef methods[] = {
    {"romix", romix, METH_VARARGS,
     "romix($module, lane, n, r, /)\n--\n\n"
     "scrypt's ROMix with cost n and block size r on one lane of 128*r bytes, without the GIL."},
    {"romix_on", romix_on, METH_VARARGS,
     "romix_on($module, path, lane, n, r, /)\n--\n\n"
     "romix() through one of the code paths in PATHS."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_scrypt", "scrypt's ROMix on one lane (see _scrypt.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__scrypt(void)
{
    PyObject *m, *paths;
#if defined(__SSE2__)
    best_path = SSE2;
#endif
#ifdef HAVE_AVX512_CLONE
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
        best_path = AVX512;
#endif
    m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddStringConstant(m, "SIMD", path_names[best_path]) < 0)
        goto fail;
    paths = PyTuple_New((Py_ssize_t)best_path + 1);
    if (paths == NULL)
        goto fail;
    for (int i = 0; i <= (int)best_path; i++) {
        PyObject *name = PyUnicode_FromString(path_names[i]);
        if (name == NULL) {
            Py_DECREF(paths);
            goto fail;
        }
        PyTuple_SET_ITEM(paths, i, name);
    }
    if (PyModule_AddObject(m, "PATHS", paths) < 0) {
        Py_DECREF(paths);
        goto fail;
    }
    return m;

fail:
    Py_DECREF(m);
    return NULL;
}
