/*
 * Compact in-memory blob index: a scanner for restic index JSON and a sorted table.
 *
 * Builder   collects entries. add_json() scans one decoded index file in C (no Python
 *           objects per blob) and appends 48-byte load records
 *               id[32] | pack u32 | offset u32 | length u32 | uncompressed_length u32
 *           to one growable array per blob type. Pack ids are interned into one array of
 *           32-byte ids through an open-addressing hash table that lives only until finish().
 * Index     what finish() makes: per blob type the records sorted by id, exact duplicates
 *           dropped, and the first two id bytes replaced by 65,536 bucket start offsets, so
 *           a record is 46 bytes:
 *               id[2:32] | pack u32 | offset u32 | length u32 | uncompressed_length u32
 *           Lookup is a binary search inside one bucket. uncompressed_length 0 means "not
 *           compressed", exactly as restic's omitempty field does.
 *
 * Big arrays live in their own anonymous mappings (mremap to grow and shrink on Linux), so
 * growing does not copy, shrinking returns memory to the system, and no allocator threshold
 * decides whether freed memory leaves the process.
 *
 * The scanner follows Go's encoding/json as restic 0.14 uses it: keys match ASCII
 * case-insensitively and the last of repeated keys wins; ids must be exactly 64 hex digits
 * between plain quotes and types exactly "data" or "tree" (restic compares the raw bytes);
 * numbers must be plain unsigned integers. Stricter than restic: offsets, lengths and
 * uncompressed lengths must fit in 32 bits, a blob needs id, type, offset and length, a pack
 * needs an id, and null is accepted only for the arrays.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#if defined(__linux__) && defined(MREMAP_MAYMOVE)
#define USE_MMAP 1
#endif

#define ID_LEN 32
#define LOAD_REC 48          /* builder record: full id + four u32 */
#define REC 46               /* index record: id without its first two bytes + four u32 */
#define REC_ID (ID_LEN - 2)  /* id bytes stored in an index record */
#define NBUCKETS 65536
#define NTYPES 2
#define MAX_DEPTH 10000      /* nesting limit when skipping unknown values (Go's limit) */
#define MAX_RECORDS 0xFFFFFFFFu
#define NO_PACK 0xFFFFFFFFu

/* ------------------------------------------------------------------------------------ */
/* Big memory regions                                                                    */

typedef struct {
    unsigned char *p;
    size_t cap; /* usable bytes */
} Region;

#ifdef USE_MMAP
static size_t
page_round(size_t n)
{
    static size_t page;
    if (page == 0) {
        long ps = sysconf(_SC_PAGESIZE);
        page = ps > 0 ? (size_t)ps : 4096;
    }
    return (n + page - 1) & ~(page - 1);
}
#endif

/* Make the region hold exactly `want` bytes (rounded to pages); 0 frees it. */
static int
region_resize(Region *r, size_t want)
{
#ifdef USE_MMAP
    size_t n = page_round(want);
    void *q;
    if (n == r->cap)
        return 0;
    if (n == 0) {
        munmap(r->p, r->cap);
        r->p = NULL;
        r->cap = 0;
        return 0;
    }
    if (r->cap == 0)
        q = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    else
        q = mremap(r->p, r->cap, n, MREMAP_MAYMOVE);
    if (q == MAP_FAILED)
        return -1;
    r->p = q;
    r->cap = n;
    return 0;
#else
    void *q;
    if (want == 0) {
        free(r->p);
        r->p = NULL;
        r->cap = 0;
        return 0;
    }
    q = realloc(r->p, want);
    if (q == NULL)
        return -1;
    r->p = q;
    r->cap = want;
    return 0;
#endif
}

/* Room for at least `need` bytes, growing by half so appends stay amortised O(1). */
static int
region_reserve(Region *r, size_t need)
{
    size_t n;
    if (need <= r->cap)
        return 0;
    n = r->cap + r->cap / 2;
    if (n < need)
        n = need;
    if (n < 65536)
        n = 65536;
    return region_resize(r, n);
}

static void
region_free(Region *r)
{
    region_resize(r, 0);
}

/* ------------------------------------------------------------------------------------ */
/* Small helpers                                                                         */

static inline uint32_t
get_u32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline void
put_u32(unsigned char *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static inline int
hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* A 32-byte id from a bytes-like object; -1 with TypeError/ValueError set otherwise. */
static int
get_id(PyObject *obj, unsigned char out[ID_LEN])
{
    Py_buffer view;
    if (PyBytes_Check(obj)) {
        if (PyBytes_GET_SIZE(obj) != ID_LEN) {
            PyErr_Format(PyExc_ValueError, "id must be %d bytes, not %zd", ID_LEN,
                         PyBytes_GET_SIZE(obj));
            return -1;
        }
        memcpy(out, PyBytes_AS_STRING(obj), ID_LEN);
        return 0;
    }
    if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) < 0)
        return -1;
    if (view.len != ID_LEN) {
        PyErr_Format(PyExc_ValueError, "id must be %d bytes, not %zd", ID_LEN, view.len);
        PyBuffer_Release(&view);
        return -1;
    }
    memcpy(out, view.buf, ID_LEN);
    PyBuffer_Release(&view);
    return 0;
}

/* A Python int in 0..2**32-1. */
static int
get_u32_arg(PyObject *obj, uint32_t *out)
{
    unsigned long long v;
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "expected an int, not %.100s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    v = PyLong_AsUnsignedLongLong(obj);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();
        v = 0x100000000ull;
    }
    if (v > 0xFFFFFFFFull) {
        PyErr_SetString(PyExc_ValueError, "offsets and lengths must be in 0..2**32-1");
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int
get_type(PyObject *obj)
{
    long t = PyLong_AsLong(obj);
    if (t == -1 && PyErr_Occurred())
        return -1;
    if (t < 0 || t >= NTYPES) {
        PyErr_Format(PyExc_ValueError, "unknown blob type %ld", t);
        return -1;
    }
    return (int)t;
}

/* ------------------------------------------------------------------------------------ */
/* Builder                                                                               */

typedef struct {
    PyObject_HEAD
    Region rec[NTYPES];  /* LOAD_REC-byte records */
    uint64_t n[NTYPES];
    Region packs;        /* 32-byte pack ids, numbered by position */
    uint32_t npacks;
    Region slots;        /* hash table: pack number + 1, 0 = free */
    size_t nslots;       /* power of two, or 0 */
    int finished;
    PyThread_type_lock lock;
} Builder;

static inline size_t
pack_slot(const unsigned char *id, size_t mask)
{
    uint64_t h;
    memcpy(&h, id, 8);
    h ^= h >> 31;
    h *= 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 29) & mask;
}

static void
slots_fill(Builder *b)
{
    uint32_t *slots = (uint32_t *)b->slots.p;
    size_t mask = b->nslots - 1;
    uint32_t i;
    memset(slots, 0, b->nslots * sizeof(uint32_t));
    for (i = 0; i < b->npacks; i++) {
        size_t s = pack_slot(b->packs.p + (size_t)i * ID_LEN, mask);
        while (slots[s])
            s = (s + 1) & mask;
        slots[s] = i + 1;
    }
}

/* The number of pack `id`, adding it when new; -1 when out of memory or numbers. */
static int64_t
intern_pack(Builder *b, const unsigned char *id)
{
    uint32_t *slots;
    size_t mask, s;
    if ((size_t)b->npacks + 1 > b->nslots / 2) {
        size_t n = b->nslots ? b->nslots * 2 : 1024;
        if (region_reserve(&b->slots, n * sizeof(uint32_t)) < 0)
            return -1;
        b->nslots = n;
        slots_fill(b);
    }
    slots = (uint32_t *)b->slots.p;
    mask = b->nslots - 1;
    s = pack_slot(id, mask);
    while (slots[s]) {
        uint32_t num = slots[s] - 1;
        if (memcmp(b->packs.p + (size_t)num * ID_LEN, id, ID_LEN) == 0)
            return num;
        s = (s + 1) & mask;
    }
    if (b->npacks >= NO_PACK - 1)
        return -1;
    if (region_reserve(&b->packs, ((size_t)b->npacks + 1) * ID_LEN) < 0)
        return -1;
    memcpy(b->packs.p + (size_t)b->npacks * ID_LEN, id, ID_LEN);
    slots[s] = b->npacks + 1;
    return b->npacks++;
}

/* Forget everything added after the given counts (a failed or replaced part of a file). */
static void
builder_truncate(Builder *b, const uint64_t n[NTYPES], uint32_t npacks)
{
    int t;
    for (t = 0; t < NTYPES; t++)
        b->n[t] = n[t];
    if (npacks < b->npacks) {
        b->npacks = npacks;
        slots_fill(b);
    }
}

static int
add_record(Builder *b, int t, const unsigned char *id, uint32_t pack, uint32_t offset,
           uint32_t length, uint32_t ulen)
{
    unsigned char *r;
    if (b->n[t] >= MAX_RECORDS)
        return -1;
    if (region_reserve(&b->rec[t], (size_t)(b->n[t] + 1) * LOAD_REC) < 0)
        return -1;
    r = b->rec[t].p + (size_t)b->n[t] * LOAD_REC;
    memcpy(r, id, ID_LEN);
    put_u32(r + 32, pack);
    put_u32(r + 36, offset);
    put_u32(r + 40, length);
    put_u32(r + 44, ulen);
    b->n[t]++;
    return 0;
}

/* Take the builder's lock; the GIL is released while waiting. */
static void
builder_lock(Builder *b)
{
    if (!PyThread_acquire_lock(b->lock, NOWAIT_LOCK)) {
        Py_BEGIN_ALLOW_THREADS
        PyThread_acquire_lock(b->lock, WAIT_LOCK);
        Py_END_ALLOW_THREADS
    }
}

/* ------------------------------------------------------------------------------------ */
/* JSON scanner                                                                          */

typedef struct {
    const unsigned char *start, *p, *end;
    const char *err;
    size_t err_pos;
    int nomem;
    Builder *b;
    uint64_t file_n[NTYPES]; /* builder state when the file started */
    uint32_t file_packs;
    unsigned char *sup;      /* supersedes ids, 32 bytes each */
    size_t nsup, sup_cap;
    unsigned char stack[MAX_DEPTH];
} Scanner;

enum { K_OTHER, K_ID, K_TYPE, K_OFFSET, K_LENGTH, K_ULEN, K_BLOBS, K_PACKS, K_SUPERSEDES };

static const struct {
    const char *name;
    size_t len;
    int key;
} KEYS[] = {
    {"id", 2, K_ID},
    {"type", 4, K_TYPE},
    {"offset", 6, K_OFFSET},
    {"length", 6, K_LENGTH},
    {"uncompressed_length", 19, K_ULEN},
    {"blobs", 5, K_BLOBS},
    {"packs", 5, K_PACKS},
    {"supersedes", 10, K_SUPERSEDES},
};
#define KEY_MAX 19

static int
fail(Scanner *s, const char *msg)
{
    if (s->err == NULL) {
        s->err = msg;
        s->err_pos = (size_t)(s->p - s->start);
    }
    return -1;
}

static int
fail_nomem(Scanner *s)
{
    s->nomem = 1;
    return fail(s, "out of memory");
}

static inline void
skip_ws(Scanner *s)
{
    while (s->p < s->end &&
           (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

/* After whitespace, consume `c` or fail with `msg`. */
static int
expect(Scanner *s, unsigned char c, const char *msg)
{
    skip_ws(s);
    if (s->p >= s->end || *s->p != c)
        return fail(s, msg);
    s->p++;
    return 0;
}

/* Validate a string starting at the opening quote; leave p after the closing quote. */
static int
scan_string(Scanner *s, const unsigned char **raw, size_t *rawlen, int *escaped)
{
    const unsigned char *q = s->p + 1, *end = s->end;
    int esc = 0, i;
    for (;;) {
        while (q < end && *q != '"' && *q != '\\' && *q >= 0x20)
            q++;
        if (q >= end) {
            s->p = end;
            return fail(s, "unterminated string");
        }
        if (*q == '"')
            break;
        if (*q < 0x20) {
            s->p = q;
            return fail(s, "control character in string");
        }
        esc = 1;
        q++;
        if (q >= end) {
            s->p = end;
            return fail(s, "unterminated string");
        }
        switch (*q) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            q++;
            break;
        case 'u':
            for (i = 1; i <= 4; i++) {
                if (q + i >= end || hexval(q[i]) < 0) {
                    s->p = q - 1;
                    return fail(s, "invalid \\u escape in string");
                }
            }
            q += 5;
            break;
        default:
            s->p = q - 1;
            return fail(s, "invalid escape in string");
        }
    }
    if (raw) {
        *raw = s->p + 1;
        *rawlen = (size_t)(q - (s->p + 1));
        *escaped = esc;
    }
    s->p = q + 1;
    return 0;
}

/* Read an object key and the colon after it; *key says which known field it names. */
static int
scan_key(Scanner *s, int *key)
{
    const unsigned char *raw;
    size_t rawlen, i, n = 0;
    int esc, ascii = 1;
    unsigned char buf[KEY_MAX + 1];

    skip_ws(s);
    if (s->p >= s->end || *s->p != '"')
        return fail(s, "expected a string key");
    if (scan_string(s, &raw, &rawlen, &esc) < 0)
        return -1;
    for (i = 0; i < rawlen && ascii; i++) {
        unsigned char c = raw[i];
        if (c == '\\') {
            c = raw[++i];
            switch (c) {
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'u': {
                int cp = (hexval(raw[i + 1]) << 12) | (hexval(raw[i + 2]) << 8) |
                         (hexval(raw[i + 3]) << 4) | hexval(raw[i + 4]);
                i += 4;
                if (cp >= 0x80)
                    ascii = 0;
                c = (unsigned char)cp;
                break;
            }
            default: break; /* '"', '\\', '/' stand for themselves */
            }
        }
        if (c >= 0x80 || n > KEY_MAX) {
            ascii = 0;
            break;
        }
        buf[n++] = (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
    }
    *key = K_OTHER;
    if (ascii) {
        for (i = 0; i < sizeof(KEYS) / sizeof(KEYS[0]); i++) {
            if (KEYS[i].len == n && memcmp(KEYS[i].name, buf, n) == 0) {
                *key = KEYS[i].key;
                break;
            }
        }
    }
    return expect(s, ':', "expected ':' after key");
}

static int
scan_number(Scanner *s)
{
    const unsigned char *q = s->p, *end = s->end;
    if (q < end && *q == '-')
        q++;
    if (q < end && *q == '0')
        q++;
    else if (q < end && *q >= '1' && *q <= '9')
        while (q < end && *q >= '0' && *q <= '9')
            q++;
    else {
        s->p = q;
        return fail(s, "invalid number");
    }
    if (q < end && *q == '.') {
        q++;
        if (q >= end || *q < '0' || *q > '9') {
            s->p = q;
            return fail(s, "invalid number");
        }
        while (q < end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < end && (*q == '+' || *q == '-'))
            q++;
        if (q >= end || *q < '0' || *q > '9') {
            s->p = q;
            return fail(s, "invalid number");
        }
        while (q < end && *q >= '0' && *q <= '9')
            q++;
    }
    s->p = q;
    return 0;
}

static int
scan_literal(Scanner *s, const char *word, size_t len)
{
    if ((size_t)(s->end - s->p) < len || memcmp(s->p, word, len) != 0)
        return fail(s, "invalid literal");
    s->p += len;
    return 0;
}

static int
is_null(Scanner *s)
{
    skip_ws(s);
    if (s->end - s->p >= 4 && memcmp(s->p, "null", 4) == 0) {
        s->p += 4;
        return 1;
    }
    return 0;
}

/* Validate and skip any JSON value (an unknown field), without recursion. */
static int
skip_value(Scanner *s)
{
    int depth = 0;
    for (;;) {
        /* a value starts here */
        skip_ws(s);
        if (s->p >= s->end)
            return fail(s, "unexpected end of input");
        switch (*s->p) {
        case '{':
        case '[':
            if (depth >= MAX_DEPTH)
                return fail(s, "nesting too deep");
            s->stack[depth++] = *s->p == '{' ? '}' : ']';
            s->p++;
            skip_ws(s);
            if (s->p < s->end && *s->p == s->stack[depth - 1]) {
                s->p++;
                depth--;
                break; /* an empty container is a complete value */
            }
            if (s->stack[depth - 1] == '}') {
                int key;
                if (scan_key(s, &key) < 0)
                    return -1;
            }
            continue; /* its first member value */
        case '"':
            if (scan_string(s, NULL, NULL, NULL) < 0)
                return -1;
            break;
        case 't':
            if (scan_literal(s, "true", 4) < 0)
                return -1;
            break;
        case 'f':
            if (scan_literal(s, "false", 5) < 0)
                return -1;
            break;
        case 'n':
            if (scan_literal(s, "null", 4) < 0)
                return -1;
            break;
        default:
            if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) {
                if (scan_number(s) < 0)
                    return -1;
                break;
            }
            return fail(s, "unexpected character");
        }
        /* a value ended: close containers or move to the next member */
        for (;;) {
            if (depth == 0)
                return 0;
            skip_ws(s);
            if (s->p >= s->end)
                return fail(s, "unexpected end of input");
            if (*s->p == s->stack[depth - 1]) {
                s->p++;
                depth--;
                continue;
            }
            if (*s->p != ',')
                return fail(s, "expected ',' or a closing bracket");
            s->p++;
            if (s->stack[depth - 1] == '}') {
                int key;
                if (scan_key(s, &key) < 0)
                    return -1;
            }
            break;
        }
    }
}

/* A plain unsigned integer that fits in 32 bits. */
static int
scan_u32(Scanner *s, uint32_t *out)
{
    uint64_t v = 0;
    skip_ws(s);
    if (s->p >= s->end || *s->p < '0' || *s->p > '9')
        return fail(s, "expected an unsigned integer");
    if (*s->p == '0') {
        s->p++;
    } else {
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
            v = v * 10 + (uint64_t)(*s->p - '0');
            if (v > 0xFFFFFFFFu)
                return fail(s, "number does not fit in 32 bits");
            s->p++;
        }
    }
    if (s->p < s->end && (*s->p == '.' || *s->p == 'e' || *s->p == 'E'))
        return fail(s, "expected an unsigned integer");
    *out = (uint32_t)v;
    return 0;
}

/* An id: exactly 64 hex digits between plain quotes. */
static int
scan_id(Scanner *s, unsigned char out[ID_LEN])
{
    const unsigned char *q;
    int i;
    skip_ws(s);
    q = s->p;
    if (s->end - q < 2 * ID_LEN + 2 || q[0] != '"' || q[2 * ID_LEN + 1] != '"')
        return fail(s, "invalid id (want 64 hex digits)");
    for (i = 0; i < ID_LEN; i++) {
        int hi = hexval(q[1 + 2 * i]), lo = hexval(q[2 + 2 * i]);
        if (hi < 0 || lo < 0)
            return fail(s, "invalid id (want 64 hex digits)");
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    s->p += 2 * ID_LEN + 2;
    return 0;
}

static int
scan_type(Scanner *s, int *t)
{
    skip_ws(s);
    if (s->end - s->p >= 6 && memcmp(s->p, "\"data\"", 6) == 0)
        *t = 0;
    else if (s->end - s->p >= 6 && memcmp(s->p, "\"tree\"", 6) == 0)
        *t = 1;
    else
        return fail(s, "unknown blob type");
    s->p += 6;
    return 0;
}

/* After a member: 1 if another follows, 0 at the closing bracket. */
static int
next_member(Scanner *s, unsigned char close, const char *msg)
{
    skip_ws(s);
    if (s->p < s->end && *s->p == ',') {
        s->p++;
        return 1;
    }
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return 0;
    }
    return fail(s, msg);
}

/* Open an array; 1 if it has elements, 0 if empty (and consumed). */
static int
open_array(Scanner *s, const char *msg)
{
    if (expect(s, '[', msg) < 0)
        return -1;
    skip_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return 0;
    }
    return 1;
}

static int
scan_blob(Scanner *s)
{
    unsigned char id[ID_LEN];
    uint32_t offset = 0, length = 0, ulen = 0;
    int t = 0, have = 0, key, more;

    if (expect(s, '{', "expected a blob object") < 0)
        return -1;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
    } else {
        do {
            if (scan_key(s, &key) < 0)
                return -1;
            switch (key) {
            case K_ID:
                if (scan_id(s, id) < 0)
                    return -1;
                have |= 1;
                break;
            case K_TYPE:
                if (scan_type(s, &t) < 0)
                    return -1;
                have |= 2;
                break;
            case K_OFFSET:
                if (scan_u32(s, &offset) < 0)
                    return -1;
                have |= 4;
                break;
            case K_LENGTH:
                if (scan_u32(s, &length) < 0)
                    return -1;
                have |= 8;
                break;
            case K_ULEN:
                if (scan_u32(s, &ulen) < 0)
                    return -1;
                break;
            default:
                if (skip_value(s) < 0)
                    return -1;
            }
            more = next_member(s, '}', "expected ',' or '}' in blob object");
            if (more < 0)
                return -1;
        } while (more);
    }
    if (!(have & 1))
        return fail(s, "blob entry without id");
    if (!(have & 2))
        return fail(s, "blob entry without type");
    if (!(have & 4))
        return fail(s, "blob entry without offset");
    if (!(have & 8))
        return fail(s, "blob entry without length");
    if (s->b->n[t] >= MAX_RECORDS)
        return fail(s, "too many blobs");
    if (add_record(s->b, t, id, NO_PACK, offset, length, ulen) < 0)
        return fail_nomem(s);
    return 0;
}

static int
scan_pack(Scanner *s)
{
    Builder *b = s->b;
    unsigned char id[ID_LEN];
    uint64_t start[NTYPES];
    int have_id = 0, key, more, t;

    for (t = 0; t < NTYPES; t++)
        start[t] = b->n[t];
    if (expect(s, '{', "expected a pack object") < 0)
        return -1;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
    } else {
        do {
            if (scan_key(s, &key) < 0)
                return -1;
            if (key == K_ID) {
                if (scan_id(s, id) < 0)
                    return -1;
                have_id = 1;
            } else if (key == K_BLOBS) {
                for (t = 0; t < NTYPES; t++) /* a repeated "blobs" replaces the earlier one */
                    b->n[t] = start[t];
                if (!is_null(s)) {
                    int any = open_array(s, "expected '[' after \"blobs\"");
                    if (any < 0)
                        return -1;
                    while (any) {
                        if (scan_blob(s) < 0)
                            return -1;
                        any = next_member(s, ']', "expected ',' or ']' in blob list");
                        if (any < 0)
                            return -1;
                    }
                }
            } else if (skip_value(s) < 0) {
                return -1;
            }
            more = next_member(s, '}', "expected ',' or '}' in pack object");
            if (more < 0)
                return -1;
        } while (more);
    }
    if (!have_id)
        return fail(s, "pack entry without id");
    if (b->n[0] != start[0] || b->n[1] != start[1]) {
        int64_t num = intern_pack(b, id);
        uint64_t i;
        if (num < 0)
            return fail_nomem(s);
        for (t = 0; t < NTYPES; t++)
            for (i = start[t]; i < b->n[t]; i++)
                put_u32(b->rec[t].p + (size_t)i * LOAD_REC + 32, (uint32_t)num);
    }
    return 0;
}

static int
scan_pack_list(Scanner *s)
{
    int any = open_array(s, "expected '[' for the pack list");
    if (any < 0)
        return -1;
    while (any) {
        if (scan_pack(s) < 0)
            return -1;
        any = next_member(s, ']', "expected ',' or ']' in pack list");
        if (any < 0)
            return -1;
    }
    return 0;
}

static int
scan_supersedes(Scanner *s)
{
    int any;
    s->nsup = 0; /* a repeated key replaces the earlier list */
    if (is_null(s))
        return 0;
    any = open_array(s, "expected '[' after \"supersedes\"");
    if (any < 0)
        return -1;
    while (any) {
        if (s->nsup == s->sup_cap) {
            size_t cap = s->sup_cap ? 2 * s->sup_cap : 8;
            unsigned char *q = realloc(s->sup, cap * ID_LEN);
            if (q == NULL)
                return fail_nomem(s);
            s->sup = q;
            s->sup_cap = cap;
        }
        if (scan_id(s, s->sup + s->nsup * ID_LEN) < 0)
            return -1;
        s->nsup++;
        any = next_member(s, ']', "expected ',' or ']' in supersedes list");
        if (any < 0)
            return -1;
    }
    return 0;
}

static int
scan_document(Scanner *s)
{
    skip_ws(s);
    if (s->p >= s->end)
        return fail(s, "empty document");
    if (*s->p == '[') {
        /* the legacy form: a bare list of packs */
        if (scan_pack_list(s) < 0)
            return -1;
    } else if (*s->p == '{') {
        int key, more;
        s->p++;
        skip_ws(s);
        if (s->p < s->end && *s->p == '}') {
            s->p++;
        } else {
            do {
                if (scan_key(s, &key) < 0)
                    return -1;
                if (key == K_PACKS) {
                    builder_truncate(s->b, s->file_n, s->file_packs);
                    if (!is_null(s) && scan_pack_list(s) < 0)
                        return -1;
                } else if (key == K_SUPERSEDES) {
                    if (scan_supersedes(s) < 0)
                        return -1;
                } else if (skip_value(s) < 0) {
                    return -1;
                }
                more = next_member(s, '}', "expected ',' or '}' in index object");
                if (more < 0)
                    return -1;
            } while (more);
        }
    } else {
        return fail(s, "expected '{' or '[' at the start of the index");
    }
    skip_ws(s);
    if (s->p != s->end)
        return fail(s, "unexpected data after the index");
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Index                                                                                 */

typedef struct {
    PyObject_HEAD
    Region rec[NTYPES];  /* REC-byte records, sorted */
    Region bk[NTYPES];   /* NBUCKETS + 1 uint32 start offsets; empty when no records */
    uint64_t n[NTYPES];
    uint64_t distinct[NTYPES];
    Region packs;
    uint32_t npacks;
    int any_compressed;
} IndexObject;

static PyTypeObject IndexType;

static inline unsigned
bucket_of(const unsigned char *id)
{
    return (unsigned)id[0] << 8 | id[1];
}

static inline void
swap_rec(unsigned char *a, unsigned char *b)
{
    unsigned char tmp[LOAD_REC];
    memcpy(tmp, a, LOAD_REC);
    memcpy(a, b, LOAD_REC);
    memcpy(b, tmp, LOAD_REC);
}

static int
cmp_tail(const void *a, const void *b)
{
    return memcmp((const unsigned char *)a + 2, (const unsigned char *)b + 2, LOAD_REC - 2);
}

/* Sort the records of a bucket by everything after the first two id bytes. */
static void
sort_bucket(unsigned char *r, size_t n)
{
    size_t i, j;
    unsigned char tmp[LOAD_REC];
    if (n > 16) {
        qsort(r, n, LOAD_REC, cmp_tail);
        return;
    }
    for (i = 1; i < n; i++) {
        for (j = i; j > 0 && cmp_tail(r + (j - 1) * LOAD_REC, r + i * LOAD_REC) > 0; j--)
            ;
        if (j == i)
            continue;
        memcpy(tmp, r + i * LOAD_REC, LOAD_REC);
        memmove(r + (j + 1) * LOAD_REC, r + j * LOAD_REC, (i - j) * LOAD_REC);
        memcpy(r + j * LOAD_REC, tmp, LOAD_REC);
    }
}

/*
 * Turn one builder array into an index table, in place: radix-distribute on the first two
 * id bytes, sort each bucket, then drop exact duplicates while packing 48-byte records
 * down to 46 bytes. `work` is NBUCKETS uint32 of scratch; `bk` gets the bucket starts.
 * Returns the number of records kept.
 */
static uint64_t
build_table(unsigned char *r, uint64_t n, uint32_t *bk, uint32_t *work, uint64_t *distinct,
            int *any_compressed)
{
    unsigned char prev[LOAD_REC];
    uint64_t i, out = 0;
    unsigned b;

    memset(work, 0, NBUCKETS * sizeof(uint32_t));
    for (i = 0; i < n; i++)
        work[bucket_of(r + i * LOAD_REC)]++;
    bk[0] = 0;
    for (b = 0; b < NBUCKETS; b++) {
        bk[b + 1] = bk[b] + work[b];
        work[b] = bk[b]; /* next free position of bucket b */
    }
    for (b = 0; b < NBUCKETS; b++) {
        while (work[b] < bk[b + 1]) {
            unsigned char *here = r + (size_t)work[b] * LOAD_REC;
            unsigned k = bucket_of(here);
            if (k == b)
                work[b]++;
            else
                swap_rec(here, r + (size_t)(work[k]++) * LOAD_REC);
        }
    }
    *distinct = 0;
    for (b = 0; b < NBUCKETS; b++) {
        uint64_t lo = bk[b], hi = bk[b + 1];
        int have_prev = 0;
        sort_bucket(r + lo * LOAD_REC, (size_t)(hi - lo));
        bk[b] = (uint32_t)out;
        for (i = lo; i < hi; i++) {
            unsigned char *src = r + i * LOAD_REC;
            if (have_prev && memcmp(prev, src, LOAD_REC) == 0)
                continue; /* exact duplicate */
            if (!have_prev || memcmp(prev, src, ID_LEN) != 0)
                (*distinct)++;
            memcpy(prev, src, LOAD_REC);
            have_prev = 1;
            if (get_u32(src + 44) != 0)
                *any_compressed = 1;
            memmove(r + out * REC, src + 2, REC); /* never overtakes unread records */
            out++;
        }
    }
    bk[NBUCKETS] = (uint32_t)out;
    return out;
}

/* Move the builder's data into `ix`. -1 when out of memory (the builder is untouched). */
static int
builder_finish(Builder *b, IndexObject *ix)
{
    Region work = {NULL, 0};
    int t;
    for (t = 0; t < NTYPES; t++) {
        if (b->n[t] && region_resize(&ix->bk[t], (NBUCKETS + 1) * sizeof(uint32_t)) < 0)
            goto nomem;
    }
    if ((b->n[0] || b->n[1]) && region_resize(&work, NBUCKETS * sizeof(uint32_t)) < 0)
        goto nomem;
    for (t = 0; t < NTYPES; t++) {
        ix->rec[t] = b->rec[t];
        b->rec[t].p = NULL;
        b->rec[t].cap = 0;
        ix->n[t] = 0;
        if (b->n[t]) {
            ix->n[t] = build_table(ix->rec[t].p, b->n[t], (uint32_t *)ix->bk[t].p,
                                   (uint32_t *)work.p, &ix->distinct[t], &ix->any_compressed);
        }
        region_resize(&ix->rec[t], (size_t)ix->n[t] * REC); /* shrinking cannot fail */
        b->n[t] = 0;
    }
    region_free(&work);
    ix->packs = b->packs;
    ix->npacks = b->npacks;
    region_resize(&ix->packs, (size_t)ix->npacks * ID_LEN);
    b->packs.p = NULL;
    b->packs.cap = 0;
    b->npacks = 0;
    region_free(&b->slots);
    b->nslots = 0;
    return 0;
nomem:
    for (t = 0; t < NTYPES; t++)
        region_free(&ix->bk[t]);
    region_free(&work);
    return -1;
}

/* ------------------------------------------------------------------------------------ */
/* Builder methods                                                                       */

static PyObject *
Builder_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Builder *self;
    if (PyTuple_GET_SIZE(args) != 0 || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Builder() takes no arguments");
        return NULL;
    }
    self = (Builder *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->lock = PyThread_allocate_lock();
    if (self->lock == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void
Builder_dealloc(Builder *self)
{
    int t;
    for (t = 0; t < NTYPES; t++)
        region_free(&self->rec[t]);
    region_free(&self->packs);
    region_free(&self->slots);
    if (self->lock)
        PyThread_free_lock(self->lock);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

PyDoc_STRVAR(Builder_add_json_doc,
"add_json(data) -> list[bytes]\n\n"
"Scan one decoded index file (any bytes-like object) and add its entries.\n"
"Returns the ids it supersedes. Raises ValueError naming the byte position when\n"
"the document is malformed; nothing of that file is kept then.");

static PyObject *
Builder_add_json(Builder *self, PyObject *arg)
{
    Py_buffer view;
    Scanner *s;
    PyObject *result = NULL;
    int rc, t, finished = 0;

    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    s = PyMem_RawCalloc(1, sizeof(Scanner));
    if (s == NULL) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    s->start = s->p = view.buf;
    s->end = s->start + view.len;
    s->b = self;

    Py_BEGIN_ALLOW_THREADS
    PyThread_acquire_lock(self->lock, WAIT_LOCK);
    if (self->finished) {
        finished = 1;
        rc = -1;
    } else {
        for (t = 0; t < NTYPES; t++)
            s->file_n[t] = self->n[t];
        s->file_packs = self->npacks;
        rc = scan_document(s);
        if (rc < 0)
            builder_truncate(self, s->file_n, s->file_packs);
    }
    PyThread_release_lock(self->lock);
    Py_END_ALLOW_THREADS

    PyBuffer_Release(&view);
    if (finished) {
        PyErr_SetString(PyExc_RuntimeError, "index builder already finished");
    } else if (rc < 0) {
        if (s->nomem)
            PyErr_NoMemory();
        else
            PyErr_Format(PyExc_ValueError, "%s at byte %zu", s->err, s->err_pos);
    } else {
        size_t i;
        result = PyList_New((Py_ssize_t)s->nsup);
        for (i = 0; result != NULL && i < s->nsup; i++) {
            PyObject *id = PyBytes_FromStringAndSize((char *)s->sup + i * ID_LEN, ID_LEN);
            if (id == NULL)
                Py_CLEAR(result);
            else
                PyList_SET_ITEM(result, (Py_ssize_t)i, id);
        }
    }
    free(s->sup);
    PyMem_RawFree(s);
    return result;
}

PyDoc_STRVAR(Builder_add_pack_doc,
"add_pack(pack_id, entries)\n\n"
"Add the blobs of one pack; entries are (id, type, offset, length,\n"
"uncompressed_length or None) tuples.");

static PyObject *
Builder_add_pack(Builder *self, PyObject *args)
{
    PyObject *pack_obj, *entries, *seq;
    unsigned char pack_id[ID_LEN], *tmp = NULL;
    int *types = NULL;
    Py_ssize_t n, i;
    PyObject *result = NULL;

    if (!PyArg_ParseTuple(args, "OO:add_pack", &pack_obj, &entries))
        return NULL;
    if (get_id(pack_obj, pack_id) < 0)
        return NULL;
    seq = PySequence_Fast(entries, "entries must be iterable");
    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    tmp = PyMem_Malloc((size_t)(n ? n : 1) * LOAD_REC);
    types = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(int));
    if (tmp == NULL || types == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* convert everything first: no Python code may run while the lock is held */
    for (i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i), *id_obj, *type_obj, *off_obj,
                 *len_obj, *ulen_obj;
        uint32_t off, len, ulen = 0;
        unsigned char *r = tmp + (size_t)i * LOAD_REC;
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 5) {
            PyErr_SetString(PyExc_TypeError,
                            "entries must be (id, type, offset, length, uncompressed_length)");
            goto done;
        }
        id_obj = PyTuple_GET_ITEM(item, 0);
        type_obj = PyTuple_GET_ITEM(item, 1);
        off_obj = PyTuple_GET_ITEM(item, 2);
        len_obj = PyTuple_GET_ITEM(item, 3);
        ulen_obj = PyTuple_GET_ITEM(item, 4);
        if (get_id(id_obj, r) < 0 || (types[i] = get_type(type_obj)) < 0)
            goto done;
        if (get_u32_arg(off_obj, &off) < 0 || get_u32_arg(len_obj, &len) < 0)
            goto done;
        if (ulen_obj != Py_None && get_u32_arg(ulen_obj, &ulen) < 0)
            goto done;
        put_u32(r + 36, off);
        put_u32(r + 40, len);
        put_u32(r + 44, ulen);
    }
    builder_lock(self);
    if (self->finished) {
        PyErr_SetString(PyExc_RuntimeError, "index builder already finished");
    } else if (n > 0) {
        uint64_t start[NTYPES] = {self->n[0], self->n[1]};
        uint32_t start_packs = self->npacks;
        int64_t num = intern_pack(self, pack_id);
        for (i = 0; num >= 0 && i < n; i++) {
            unsigned char *r = tmp + (size_t)i * LOAD_REC;
            if (add_record(self, types[i], r, (uint32_t)num, get_u32(r + 36), get_u32(r + 40),
                           get_u32(r + 44)) < 0)
                num = -1;
        }
        if (num < 0) {
            builder_truncate(self, start, start_packs);
            PyErr_NoMemory();
        } else {
            result = Py_None;
        }
    } else {
        result = Py_None;
    }
    PyThread_release_lock(self->lock);
    Py_XINCREF(result);
done:
    PyMem_Free(tmp);
    PyMem_Free(types);
    Py_DECREF(seq);
    return result;
}

PyDoc_STRVAR(Builder_finish_doc,
"finish(cls) -> cls\n\n"
"Sort, deduplicate and compact everything added into a new index of type cls\n"
"(Index or a subclass). The builder is empty and unusable afterwards.");

static PyObject *
Builder_finish(Builder *self, PyObject *cls)
{
    IndexObject *ix;
    int rc = 0, finished = 0;
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &IndexType)) {
        PyErr_SetString(PyExc_TypeError, "finish() needs Index or a subclass");
        return NULL;
    }
    ix = (IndexObject *)((PyTypeObject *)cls)->tp_alloc((PyTypeObject *)cls, 0);
    if (ix == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    PyThread_acquire_lock(self->lock, WAIT_LOCK);
    if (self->finished) {
        finished = 1;
    } else {
        rc = builder_finish(self, ix);
        if (rc == 0)
            self->finished = 1;
    }
    PyThread_release_lock(self->lock);
    Py_END_ALLOW_THREADS
    if (finished || rc < 0) {
        Py_DECREF(ix);
        if (finished)
            PyErr_SetString(PyExc_RuntimeError, "index builder already finished");
        else
            PyErr_NoMemory();
        return NULL;
    }
    return (PyObject *)ix;
}

static PyMethodDef Builder_methods[] = {
    {"add_json", (PyCFunction)Builder_add_json, METH_O, Builder_add_json_doc},
    {"add_pack", (PyCFunction)Builder_add_pack, METH_VARARGS, Builder_add_pack_doc},
    {"finish", (PyCFunction)Builder_finish, METH_O, Builder_finish_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject BuilderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "repofs.repo._index.Builder",
    .tp_basicsize = sizeof(Builder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = PyDoc_STR("Collects index entries from index files and packs."),
    .tp_new = Builder_new,
    .tp_dealloc = (destructor)Builder_dealloc,
    .tp_methods = Builder_methods,
};

/* ------------------------------------------------------------------------------------ */
/* Index methods                                                                         */

static void
Index_dealloc(IndexObject *self)
{
    int t;
    for (t = 0; t < NTYPES; t++) {
        region_free(&self->rec[t]);
        region_free(&self->bk[t]);
    }
    region_free(&self->packs);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* First record of `id` in its bucket, and the end of the run of equal ids. */
static void
find(IndexObject *self, int t, const unsigned char *id, uint64_t *first, uint64_t *last)
{
    const uint32_t *bk = (const uint32_t *)self->bk[t].p;
    const unsigned char *r = self->rec[t].p;
    unsigned b;
    uint64_t lo, hi, end;
    if (self->n[t] == 0) {
        *first = *last = 0;
        return;
    }
    b = bucket_of(id);
    lo = bk[b];
    hi = end = bk[b + 1];
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (memcmp(r + mid * REC, id + 2, REC_ID) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *first = lo;
    while (lo < end && memcmp(r + lo * REC, id + 2, REC_ID) == 0)
        lo++;
    *last = lo;
}

static int
id_type_args(PyObject *const *args, Py_ssize_t nargs, const char *name, unsigned char id[ID_LEN],
             int *t)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "%s() takes 2 arguments (%zd given)", name, nargs);
        return -1;
    }
    if (get_id(args[0], id) < 0)
        return -1;
    *t = get_type(args[1]);
    return *t < 0 ? -1 : 0;
}

static PyObject *
ulen_object(uint32_t ulen)
{
    if (ulen == 0)
        Py_RETURN_NONE;
    return PyLong_FromUnsignedLong(ulen);
}

PyDoc_STRVAR(Index_has_doc, "has(blob_id, type) -> bool\n\nWhether the index knows the blob.");

static PyObject *
Index_has(IndexObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    unsigned char id[ID_LEN];
    uint64_t first, last;
    int t;
    if (id_type_args(args, nargs, "has", id, &t) < 0)
        return NULL;
    find(self, t, id, &first, &last);
    return PyBool_FromLong(last > first);
}

PyDoc_STRVAR(Index_raw_lookup_doc,
"_lookup(blob_id, type) -> list[tuple[bytes, int, int, int | None]]\n\n"
"Every location of the blob as (pack_id, offset, length, uncompressed_length).");

static PyObject *
Index_raw_lookup(IndexObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    unsigned char id[ID_LEN];
    uint64_t first, last, i;
    int t;
    PyObject *list;
    if (id_type_args(args, nargs, "_lookup", id, &t) < 0)
        return NULL;
    find(self, t, id, &first, &last);
    list = PyList_New((Py_ssize_t)(last - first));
    if (list == NULL)
        return NULL;
    for (i = first; i < last; i++) {
        const unsigned char *r = self->rec[t].p + i * REC + REC_ID;
        PyObject *item = Py_BuildValue(
            "(y#kkN)", (const char *)self->packs.p + (size_t)get_u32(r) * ID_LEN,
            (Py_ssize_t)ID_LEN, (unsigned long)get_u32(r + 4), (unsigned long)get_u32(r + 8),
            ulen_object(get_u32(r + 12)));
        if (item == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)(i - first), item);
    }
    return list;
}

PyDoc_STRVAR(Index_entries_doc,
"_entries(type, start, stop) -> list[tuple[bytes, int, int, int, int | None]]\n\n"
"Records start..stop of one type in id order as (blob_id, pack number, offset,\n"
"length, uncompressed_length); pack numbers index pack_ids().");

static PyObject *
Index_entries(IndexObject *self, PyObject *args)
{
    int t;
    unsigned long long start, stop, i;
    const uint32_t *bk;
    unsigned b;
    unsigned char id[ID_LEN];
    PyObject *list;
    if (!PyArg_ParseTuple(args, "iKK:_entries", &t, &start, &stop))
        return NULL;
    if (t < 0 || t >= NTYPES) {
        PyErr_Format(PyExc_ValueError, "unknown blob type %d", t);
        return NULL;
    }
    if (stop > self->n[t])
        stop = self->n[t];
    if (start > stop)
        start = stop;
    list = PyList_New((Py_ssize_t)(stop - start));
    if (list == NULL || start == stop)
        return list;
    bk = (const uint32_t *)self->bk[t].p;
    /* the bucket holding record `start`: the last b with bk[b] <= start */
    {
        unsigned lo = 0, hi = NBUCKETS;
        while (hi - lo > 1) {
            unsigned mid = (lo + hi) / 2;
            if (bk[mid] <= start)
                lo = mid;
            else
                hi = mid;
        }
        b = lo;
    }
    for (i = start; i < stop; i++) {
        const unsigned char *r = self->rec[t].p + i * REC;
        PyObject *item;
        while (bk[b + 1] <= i)
            b++;
        id[0] = (unsigned char)(b >> 8);
        id[1] = (unsigned char)b;
        memcpy(id + 2, r, REC_ID);
        r += REC_ID;
        item = Py_BuildValue("(y#kkkN)", (const char *)id, (Py_ssize_t)ID_LEN,
                             (unsigned long)get_u32(r), (unsigned long)get_u32(r + 4),
                             (unsigned long)get_u32(r + 8), ulen_object(get_u32(r + 12)));
        if (item == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)(i - start), item);
    }
    return list;
}

static PyObject *
Index_count(IndexObject *self, PyObject *arg)
{
    int t = get_type(arg);
    if (t < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(self->distinct[t]);
}

static PyObject *
Index_location_count(IndexObject *self, PyObject *arg)
{
    int t = get_type(arg);
    if (t < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(self->n[t]);
}

static PyObject *
Index_pack_ids(IndexObject *self, PyObject *unused)
{
    uint32_t i;
    PyObject *list = PyList_New(self->npacks);
    for (i = 0; list != NULL && i < self->npacks; i++) {
        PyObject *id = PyBytes_FromStringAndSize((char *)self->packs.p + (size_t)i * ID_LEN,
                                                 ID_LEN);
        if (id == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, i, id);
    }
    return list;
}

static PyObject *
Index_any_compressed(IndexObject *self, PyObject *unused)
{
    return PyBool_FromLong(self->any_compressed);
}

static PyObject *
Index_nbytes(IndexObject *self, PyObject *unused)
{
    size_t total = self->packs.cap;
    int t;
    for (t = 0; t < NTYPES; t++)
        total += self->rec[t].cap + self->bk[t].cap;
    return PyLong_FromSize_t(total);
}

static Py_ssize_t
Index_len(IndexObject *self)
{
    return (Py_ssize_t)(self->distinct[0] + self->distinct[1]);
}

static PyMethodDef Index_methods[] = {
    {"has", (PyCFunction)(void (*)(void))Index_has, METH_FASTCALL, Index_has_doc},
    {"_lookup", (PyCFunction)(void (*)(void))Index_raw_lookup, METH_FASTCALL,
     Index_raw_lookup_doc},
    {"_entries", (PyCFunction)Index_entries, METH_VARARGS, Index_entries_doc},
    {"count", (PyCFunction)Index_count, METH_O,
     PyDoc_STR("count(type) -> int\n\nDistinct blob ids of one type.")},
    {"location_count", (PyCFunction)Index_location_count, METH_O,
     PyDoc_STR("location_count(type) -> int\n\nStored locations of one type (a blob in "
               "several packs counts once per pack).")},
    {"pack_ids", (PyCFunction)Index_pack_ids, METH_NOARGS,
     PyDoc_STR("pack_ids() -> list[bytes]\n\nEvery pack holding at least one blob.")},
    {"any_compressed", (PyCFunction)Index_any_compressed, METH_NOARGS,
     PyDoc_STR("any_compressed() -> bool\n\nWhether any entry has an uncompressed length.")},
    {"nbytes", (PyCFunction)Index_nbytes, METH_NOARGS,
     PyDoc_STR("nbytes() -> int\n\nBytes held by the tables.")},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Index_as_sequence = {
    .sq_length = (lenfunc)Index_len,
};

static PyTypeObject IndexType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "repofs.repo._index.Index",
    .tp_basicsize = sizeof(IndexObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = PyDoc_STR("Immutable sorted blob index; made by Builder.finish()."),
    .tp_dealloc = (destructor)Index_dealloc,
    .tp_methods = Index_methods,
    .tp_as_sequence = &Index_as_sequence,
};

/* ------------------------------------------------------------------------------------ */

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "repofs.repo._index",
    .m_doc = "Compact blob index: restic index JSON scanner and sorted lookup table.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__index(void)
{
    PyObject *m;
    if (PyType_Ready(&BuilderType) < 0 || PyType_Ready(&IndexType) < 0)
        return NULL;
    m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&BuilderType);
    if (PyModule_AddObject(m, "Builder", (PyObject *)&BuilderType) < 0) {
        Py_DECREF(&BuilderType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&IndexType);
    if (PyModule_AddObject(m, "Index", (PyObject *)&IndexType) < 0) {
        Py_DECREF(&IndexType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "RECORD_SIZE", REC) < 0 ||
        PyModule_AddIntConstant(m, "BUCKETS", NBUCKETS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
