/*
 * Tree blob JSON <-> Node objects in C: the fast path of repofs.model.tree.
 *
 * tree.py keeps the reference codec in Python; this module does the same work for the
 * shapes restic writes and hands everything else back to it:
 *
 *   decode(data)   the list of Nodes of a tree blob, or None when the document is not
 *                  plainly valid JSON of the expected shape (numbers other than integers,
 *                  NaN, control characters, invalid UTF-8, "nodes" not a list, ...): the
 *                  caller then runs the Python decoder, which either decodes it the same
 *                  way or raises the right error. A node that is valid but unusual (an
 *                  escaped key, a lone surrogate, a non-hex id, extended attributes,
 *                  linktarget_raw, a field of an unexpected JSON type) is decoded by the
 *                  Python callback on the bytes of that node's object alone.
 *   replace(node, **changes)   dataclasses.replace without its ~9 us of __init__.
 *   encode(nodes)  the tree blob bytes for nodes already sorted by name. A node with
 *                  fields the fast path does not write (extended attributes,
 *                  linktarget_raw, names that need Go quoting, times outside the int64
 *                  nanosecond range, values of unexpected Python types) is written by the
 *                  Python callback.
 *
 * Nodes and Timestamps are frozen slotted dataclasses; their slots are filled and read
 * through the offsets of the classes' member descriptors, found once by configure(),
 * which checks that every dataclass field has one.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

/* Node fields in dataclass (and Go struct) order. */
enum {
    F_NAME, F_TYPE, F_MODE, F_MTIME, F_ATIME, F_CTIME, F_UID, F_GID, F_USER, F_GROUP,
    F_INODE, F_DEVICE_ID, F_SIZE, F_LINKS, F_LINKTARGET, F_LINKTARGET_RAW, F_XATTRS,
    F_DEVICE, F_CONTENT, F_SUBTREE, F_ERROR, NFIELDS
};
static const char *const FIELD_NAMES[NFIELDS] = {
    "name", "type", "mode", "mtime", "atime", "ctime", "uid", "gid", "user", "group",
    "inode", "device_id", "size", "links", "linktarget", "linktarget_raw",
    "extended_attributes", "device", "content", "subtree", "error",
};

#define ID_SIZE 32
#define NS_PER_SEC 1000000000LL
#define MAX_DEPTH 512

/* What configure() hands over; set once at import of tree.py. */
static PyTypeObject *node_type;
static PyTypeObject *ts_type;
static Py_ssize_t node_off[NFIELDS];
static Py_ssize_t ts_off_ns, ts_off_offset;
static PyObject *go_zero;        /* Timestamp of Go's zero time */
static PyObject *node_fallback;  /* bytes of one node object -> Node */
static PyObject *json_fallback;  /* Node -> bytes of its JSON object */
static PyObject *unquote_name;   /* Go-quoted str -> raw bytes */
static PyObject *quote_name;     /* raw bytes -> Go-quoted str */
static PyObject *empty_bytes, *empty_str, *empty_tuple, *zero;
static PyObject *type_file, *type_dir, *type_symlink;

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

/* ------------------------------------------------------------------ buffers */

typedef struct {
    char *data;
    Py_ssize_t len, cap;
} Buf;

static int buf_reserve(Buf *b, Py_ssize_t extra) {
    if (b->len + extra <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    char *data = PyMem_Realloc(b->data, (size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static int buf_put(Buf *b, const char *s, Py_ssize_t n) {
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

#define buf_lit(b, s) buf_put((b), (s), (Py_ssize_t)(sizeof(s) - 1))

static const char HEX[] = "0123456789abcdef";

/* Hex digit values, -1 for other bytes; filled at module init. */
static signed char hex_table[256];

static void init_hex_table(void) {
    memset(hex_table, -1, sizeof(hex_table));
    for (int i = 0; i < 10; i++)
        hex_table['0' + i] = (signed char)i;
    for (int i = 0; i < 6; i++)
        hex_table['a' + i] = hex_table['A' + i] = (signed char)(10 + i);
}

static inline int hex_value(unsigned char c) { return hex_table[c]; }

/* Writes the decimal digits of v, zero-padded to at least `width`, at out; returns the
 * count. */
static int put_uint(char *out, unsigned long long v, int width) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n < width)
        tmp[n++] = '0';
    for (int i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* ------------------------------------------------------------ time helpers */

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int month_days(int64_t y, int m) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
        return 29;
    return days[m - 1];
}

static PyObject *new_timestamp(PyObject *ns, long offset) {
    PyObject *off = PyLong_FromLong(offset);
    if (off == NULL)
        return NULL;
    PyObject *ts = ts_type->tp_alloc(ts_type, 0);
    if (ts == NULL) {
        Py_DECREF(off);
        return NULL;
    }
    Py_INCREF(ns);
    SLOT(ts, ts_off_ns) = ns;
    SLOT(ts, ts_off_offset) = off;
    return ts;
}

static int digits(const char *s, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* RFC 3339 as Go writes it; 1 = not of that form (the caller falls back). */
static int parse_time(const char *s, Py_ssize_t n, PyObject **out) {
    if (n < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':')
        return 1;
    int year = digits(s, 4), month = digits(s + 5, 2), day = digits(s + 8, 2);
    int hour = digits(s + 11, 2), minute = digits(s + 14, 2), sec = digits(s + 17, 2);
    if (year < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 ||
        minute < 0 || minute > 59 || sec < 0 || sec > 59 || day > month_days(year, month))
        return 1;
    Py_ssize_t i = 19;
    int64_t frac = 0;
    if (s[i] == '.') {
        int nd = 0;
        for (i++; i < n && s[i] >= '0' && s[i] <= '9' && nd < 9; i++, nd++)
            frac = frac * 10 + (s[i] - '0');
        if (nd == 0 || (i < n && s[i] >= '0' && s[i] <= '9'))
            return 1;
        for (; nd < 9; nd++)
            frac *= 10;
    }
    long offset = 0;
    if (i == n - 1 && s[i] == 'Z') {
        offset = 0;
    } else if (i == n - 6 && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
        if (oh < 0 || om < 0 || oh > 23 || om > 59)
            return 1;
        offset = oh * 3600L + om * 60L;
        if (s[i] == '-')
            offset = -offset;
    } else {
        return 1;
    }
    int64_t secs = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + sec -
                   offset;
    __int128 ns = (__int128)secs * NS_PER_SEC + frac;
    PyObject *nsobj;
    if (ns >= INT64_MIN && ns <= INT64_MAX) {
        nsobj = PyLong_FromLongLong((long long)ns);
    } else {
        if (go_zero != NULL && offset == 0 && frac == 0 && year == 1 && month == 1 && day == 1 &&
            hour == 0 && minute == 0 && sec == 0) {
            Py_INCREF(go_zero);
            *out = go_zero;
            return 0;
        }
        PyObject *s_obj = PyLong_FromLongLong(secs), *scale = PyLong_FromLongLong(NS_PER_SEC);
        PyObject *f_obj = PyLong_FromLongLong(frac), *prod = NULL;
        nsobj = NULL;
        if (s_obj && scale && f_obj && (prod = PyNumber_Multiply(s_obj, scale)) != NULL)
            nsobj = PyNumber_Add(prod, f_obj);
        Py_XDECREF(s_obj);
        Py_XDECREF(scale);
        Py_XDECREF(f_obj);
        Py_XDECREF(prod);
    }
    if (nsobj == NULL)
        return -1;
    *out = new_timestamp(nsobj, offset);
    Py_DECREF(nsobj);
    return *out == NULL ? -1 : 0;
}

/* ------------------------------------------------------------------ decoder */

/* Results of the parse steps. */
#define OK 0
#define UNUSUAL 1 /* valid, but for the Python decoder: this node goes to node_fallback */
#define INVALID 2 /* not plainly valid: the whole tree goes to the Python decoder */
#define ERROR (-1) /* a Python exception is set */

typedef struct {
    const unsigned char *p, *end;
    Buf str;  /* the last string read, unescaped, as UTF-8 */
    int str_escaped;
    /* Small caches: trees repeat times, types, users and groups. */
    struct {
        char text[40];
        Py_ssize_t len;
        PyObject *obj;
    } times[4];
    int next_time;
    PyObject *user, *group;
} Dec;

static void skip_ws(Dec *d) {
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
        d->p++;
}

static int hex4(const unsigned char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(p[i]);
        if (h < 0)
            return -1;
        v = v << 4 | (unsigned)h;
    }
    *out = v;
    return 0;
}

static int put_utf8(Buf *b, unsigned cp) {
    char tmp[4];
    Py_ssize_t n;
    if (cp < 0x80) {
        tmp[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        tmp[0] = (char)(0xC0 | cp >> 6);
        tmp[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        tmp[0] = (char)(0xE0 | cp >> 12);
        tmp[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        tmp[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        tmp[0] = (char)(0xF0 | cp >> 18);
        tmp[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        tmp[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        tmp[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return buf_put(b, tmp, n);
}

/* A string at d->p (on its opening quote) into d->str. Escapes that make a lone
 * surrogate are UNUSUAL (Python keeps them, Go replaces them). */
static int read_string(Dec *d) {
    d->str.len = 0;
    d->str_escaped = 0;
    int result = OK;
    const unsigned char *p = d->p + 1;
    for (;;) {
        const unsigned char *run = p;
        while (p < d->end && *p != '"' && *p != '\\' && *p >= 0x20)
            p++;
        if (p > run && buf_put(&d->str, (const char *)run, p - run) < 0)
            return ERROR;
        if (p >= d->end || *p < 0x20)
            return INVALID;
        if (*p == '"')
            break;
        /* a backslash */
        d->str_escaped = 1;
        if (p + 1 >= d->end)
            return INVALID;
        char c = 0;
        switch (p[1]) {
        case '"': c = '"'; break;
        case '\\': c = '\\'; break;
        case '/': c = '/'; break;
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'n': c = '\n'; break;
        case 'r': c = '\r'; break;
        case 't': c = '\t'; break;
        case 'u': break;
        default: return INVALID;
        }
        if (c) {
            if (buf_put(&d->str, &c, 1) < 0)
                return ERROR;
            p += 2;
            continue;
        }
        unsigned cp;
        if (p + 6 > d->end || hex4(p + 2, &cp) < 0)
            return INVALID;
        p += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF && p + 6 <= d->end && p[0] == '\\' && p[1] == 'u') {
            unsigned lo;
            if (hex4(p + 2, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) {
            result = UNUSUAL; /* keep scanning: the string must still be valid */
            continue;
        }
        if (put_utf8(&d->str, cp) < 0)
            return ERROR;
    }
    d->p = p + 1;
    return result;
}

/* Skips any JSON value, checking its syntax as Python's json does (minus NaN and
 * Infinity, which are INVALID here). */
static int skip_value(Dec *d, int depth);

static int skip_number(Dec *d, int *integer) {
    const unsigned char *p = d->p;
    *integer = 1;
    if (p < d->end && *p == '-')
        p++;
    if (p >= d->end || *p < '0' || *p > '9')
        return INVALID;
    if (*p == '0') {
        p++;
    } else {
        while (p < d->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < d->end && *p == '.') {
        *integer = 0;
        p++;
        if (p >= d->end || *p < '0' || *p > '9')
            return INVALID;
        while (p < d->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < d->end && (*p == 'e' || *p == 'E')) {
        *integer = 0;
        p++;
        if (p < d->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= d->end || *p < '0' || *p > '9')
            return INVALID;
        while (p < d->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < d->end && *p >= '0' && *p <= '9')
        return INVALID; /* a leading zero followed by digits */
    d->p = p;
    return OK;
}

static int literal(Dec *d, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0)
        return INVALID;
    d->p += n;
    return OK;
}

static int skip_container(Dec *d, int depth, unsigned char close) {
    d->p++;
    skip_ws(d);
    if (d->p < d->end && *d->p == close) {
        d->p++;
        return OK;
    }
    for (;;) {
        int r;
        if (close == '}') {
            if (d->p >= d->end || *d->p != '"')
                return INVALID;
            if ((r = read_string(d)) == ERROR || r == INVALID)
                return r;
            skip_ws(d);
            if (d->p >= d->end || *d->p != ':')
                return INVALID;
            d->p++;
            skip_ws(d);
        }
        if ((r = skip_value(d, depth + 1)) != OK)
            return r;
        skip_ws(d);
        if (d->p >= d->end)
            return INVALID;
        if (*d->p == close) {
            d->p++;
            return OK;
        }
        if (*d->p != ',')
            return INVALID;
        d->p++;
        skip_ws(d);
    }
}

static int skip_value(Dec *d, int depth) {
    if (depth > MAX_DEPTH || d->p >= d->end)
        return INVALID;
    int integer, r;
    switch (*d->p) {
    case '"':
        r = read_string(d);
        return r == UNUSUAL ? OK : r;
    case '{':
        return skip_container(d, depth, '}');
    case '[':
        return skip_container(d, depth, ']');
    case 't':
        return literal(d, "true");
    case 'f':
        return literal(d, "false");
    case 'n':
        return literal(d, "null");
    default:
        return skip_number(d, &integer);
    }
}

/* An integer field: JSON integer -> int, null -> 0, anything else UNUSUAL. */
static int read_int(Dec *d, PyObject **out) {
    if (d->p < d->end && *d->p == 'n') {
        int r = literal(d, "null");
        if (r == OK) {
            Py_INCREF(zero);
            Py_XSETREF(*out, zero);
        }
        return r;
    }
    const unsigned char *start = d->p;
    int integer;
    int r = skip_number(d, &integer);
    if (r != OK)
        return skip_value(d, 0) == OK ? UNUSUAL : INVALID;
    if (!integer)
        return UNUSUAL;
    Py_ssize_t n = d->p - start;
    PyObject *v;
    if (n <= 18) {
        long long x = 0;
        const unsigned char *q = start + (*start == '-');
        for (; q < d->p; q++)
            x = x * 10 + (*q - '0');
        v = PyLong_FromLongLong(*start == '-' ? -x : x);
    } else {
        char tmp[64];
        if (n >= (Py_ssize_t)sizeof(tmp))
            return UNUSUAL;
        memcpy(tmp, start, (size_t)n);
        tmp[n] = 0;
        v = PyLong_FromString(tmp, NULL, 10);
    }
    if (v == NULL)
        return ERROR;
    Py_XSETREF(*out, v);
    return OK;
}

/* A string field. null gives `null_value` (NULL: Python None). */
static int read_str_field(Dec *d, PyObject **out, PyObject *null_value, PyObject **cache) {
    if (d->p < d->end && *d->p == 'n') {
        int r = literal(d, "null");
        if (r == OK) {
            PyObject *v = null_value ? null_value : Py_None;
            Py_INCREF(v);
            Py_XSETREF(*out, v);
        }
        return r;
    }
    if (d->p >= d->end || *d->p != '"')
        return skip_value(d, 0) == OK ? UNUSUAL : INVALID;
    int r = read_string(d);
    if (r != OK)
        return r;
    PyObject *v;
    if (cache && *cache && PyUnicode_GET_LENGTH(*cache) == d->str.len &&
        PyUnicode_IS_ASCII(*cache) &&
        memcmp(PyUnicode_DATA(*cache), d->str.data, (size_t)d->str.len) == 0) {
        v = *cache;
        Py_INCREF(v);
    } else {
        v = PyUnicode_DecodeUTF8(d->str.data, d->str.len, NULL);
        if (v == NULL)
            return ERROR;
        if (cache) {
            Py_INCREF(v);
            Py_XSETREF(*cache, v);
        }
    }
    Py_XSETREF(*out, v);
    return OK;
}

static int read_type(Dec *d, PyObject **out) {
    if (d->p + 2 < d->end && *d->p == '"') {
        static const struct {
            const char *text;
            size_t len;
            PyObject **obj;
        } known[] = {{"\"file\"", 6, &type_file}, {"\"dir\"", 5, &type_dir},
                     {"\"symlink\"", 9, &type_symlink}};
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
            if ((size_t)(d->end - d->p) >= known[i].len &&
                memcmp(d->p, known[i].text, known[i].len) == 0) {
                d->p += known[i].len;
                Py_INCREF(*known[i].obj);
                Py_XSETREF(*out, *known[i].obj);
                return OK;
            }
        }
    }
    return read_str_field(d, out, empty_str, NULL);
}

static int read_name(Dec *d, PyObject **out) {
    if (d->p < d->end && *d->p == 'n') {
        int r = literal(d, "null");
        if (r == OK) {
            Py_INCREF(empty_bytes);
            Py_XSETREF(*out, empty_bytes);
        }
        return r;
    }
    if (d->p >= d->end || *d->p != '"')
        return skip_value(d, 0) == OK ? UNUSUAL : INVALID;
    int r = read_string(d);
    if (r != OK)
        return r;
    PyObject *v;
    if (memchr(d->str.data, '\\', (size_t)d->str.len) == NULL) {
        v = PyBytes_FromStringAndSize(d->str.data, d->str.len);
    } else {
        PyObject *s = PyUnicode_DecodeUTF8(d->str.data, d->str.len, NULL);
        if (s == NULL)
            return ERROR;
        v = PyObject_CallOneArg(unquote_name, s);
        Py_DECREF(s);
    }
    if (v == NULL)
        return ERROR;
    Py_XSETREF(*out, v);
    return OK;
}

static int read_time(Dec *d, PyObject **out) {
    if (d->p < d->end && *d->p == 'n') {
        int r = literal(d, "null");
        if (r == OK) {
            Py_INCREF(go_zero);
            Py_XSETREF(*out, go_zero);
        }
        return r;
    }
    if (d->p >= d->end || *d->p != '"')
        return skip_value(d, 0) == OK ? UNUSUAL : INVALID;
    int r = read_string(d);
    if (r != OK)
        return r;
    const char *s = d->str.data;
    Py_ssize_t n = d->str.len;
    for (int i = 0; i < 4; i++) {
        if (d->times[i].obj && d->times[i].len == n && memcmp(d->times[i].text, s, (size_t)n) == 0) {
            Py_INCREF(d->times[i].obj);
            Py_XSETREF(*out, d->times[i].obj);
            return OK;
        }
    }
    PyObject *ts = NULL;
    r = parse_time(s, n, &ts);
    if (r != OK)
        return r;
    if (n <= (Py_ssize_t)sizeof(d->times[0].text)) {
        int slot = d->next_time;
        d->next_time = (slot + 1) % 4;
        memcpy(d->times[slot].text, s, (size_t)n);
        d->times[slot].len = n;
        Py_INCREF(ts);
        Py_XSETREF(d->times[slot].obj, ts);
    }
    Py_XSETREF(*out, ts);
    return OK;
}

/* 64 hex digits at the start of d->str -> 32 bytes, or NULL (no exception) when not. */
static PyObject *id_from_str(Dec *d, int *error) {
    *error = 0;
    if (d->str.len != 2 * ID_SIZE)
        return NULL;
    unsigned char raw[ID_SIZE];
    for (int i = 0; i < ID_SIZE; i++) {
        int hi = hex_value((unsigned char)d->str.data[2 * i]);
        int lo = hex_value((unsigned char)d->str.data[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return NULL;
        raw[i] = (unsigned char)(hi << 4 | lo);
    }
    PyObject *v = PyBytes_FromStringAndSize((const char *)raw, ID_SIZE);
    if (v == NULL)
        *error = 1;
    return v;
}

static int read_id(Dec *d, PyObject **out) {
    if (d->p < d->end && *d->p == 'n') {
        int r = literal(d, "null");
        if (r == OK) {
            Py_INCREF(Py_None);
            Py_XSETREF(*out, Py_None);
        }
        return r;
    }
    if (d->p >= d->end || *d->p != '"')
        return skip_value(d, 0) == OK ? UNUSUAL : INVALID;
    int r = read_string(d);
    if (r != OK)
        return r;
    int error;
    PyObject *v = id_from_str(d, &error);
    if (v == NULL)
        return error ? ERROR : UNUSUAL;
    Py_XSETREF(*out, v);
    return OK;
}

static int read_content(Dec *d, PyObject **out) {
    if (d->p < d->end && *d->p == 'n') {
        int r = literal(d, "null");
        if (r == OK) {
            Py_INCREF(Py_None);
            Py_XSETREF(*out, Py_None);
        }
        return r;
    }
    if (d->p >= d->end || *d->p != '[')
        return skip_value(d, 0) == OK ? UNUSUAL : INVALID;
    PyObject *items = PyList_New(0);
    if (items == NULL)
        return ERROR;
    int r = OK;
    d->p++;
    skip_ws(d);
    if (d->p < d->end && *d->p == ']') {
        d->p++;
    } else {
        for (;;) {
            if (d->p >= d->end || *d->p != '"') {
                r = UNUSUAL;
                break;
            }
            if ((r = read_string(d)) != OK)
                break;
            int error;
            PyObject *v = id_from_str(d, &error);
            if (v == NULL) {
                r = error ? ERROR : UNUSUAL;
                break;
            }
            int failed = PyList_Append(items, v);
            Py_DECREF(v);
            if (failed) {
                r = ERROR;
                break;
            }
            skip_ws(d);
            if (d->p < d->end && *d->p == ']') {
                d->p++;
                break;
            }
            if (d->p >= d->end || *d->p != ',') {
                r = INVALID;
                break;
            }
            d->p++;
            skip_ws(d);
        }
    }
    if (r != OK) {
        Py_DECREF(items);
        return r;
    }
    PyObject *t = PyList_AsTuple(items);
    Py_DECREF(items);
    if (t == NULL)
        return ERROR;
    Py_XSETREF(*out, t);
    return OK;
}

/* A field that the fast path keeps only when null (or empty, for lists). */
static int read_rare(Dec *d, PyObject **out, PyObject *null_value, int empty_list_ok) {
    if (d->p < d->end && *d->p == 'n') {
        int r = literal(d, "null");
        if (r == OK) {
            Py_INCREF(null_value);
            Py_XSETREF(*out, null_value);
        }
        return r;
    }
    if (empty_list_ok && d->p < d->end && *d->p == '[') {
        const unsigned char *save = d->p;
        d->p++;
        skip_ws(d);
        if (d->p < d->end && *d->p == ']') {
            d->p++;
            Py_INCREF(null_value);
            Py_XSETREF(*out, null_value);
            return OK;
        }
        d->p = save;
    }
    return skip_value(d, 0) == OK ? UNUSUAL : INVALID;
}

static Py_ssize_t field_len[NFIELDS];

static int field_index(const char *key, Py_ssize_t n) {
    for (int i = 0; i < NFIELDS; i++)
        if (field_len[i] == n && key[0] == FIELD_NAMES[i][0] && memcmp(FIELD_NAMES[i], key, (size_t)n) == 0)
            return i;
    return -1;
}

static int read_field(Dec *d, int field, PyObject **vals) {
    PyObject **out = &vals[field];
    switch (field) {
    case F_NAME:
        return read_name(d, out);
    case F_TYPE:
        return read_type(d, out);
    case F_MTIME:
    case F_ATIME:
    case F_CTIME:
        return read_time(d, out);
    case F_USER:
        return read_str_field(d, out, empty_str, &d->user);
    case F_GROUP:
        return read_str_field(d, out, empty_str, &d->group);
    case F_ERROR:
        return read_str_field(d, out, empty_str, NULL);
    case F_LINKTARGET:
        return read_str_field(d, out, NULL, NULL);
    case F_LINKTARGET_RAW:
        return read_rare(d, out, Py_None, 0);
    case F_XATTRS:
        return read_rare(d, out, empty_tuple, 1);
    case F_CONTENT:
        return read_content(d, out);
    case F_SUBTREE:
        return read_id(d, out);
    default:
        return read_int(d, out);
    }
}

static PyObject *make_node(PyObject **vals) {
    PyObject *node = node_type->tp_alloc(node_type, 0);
    if (node == NULL)
        return NULL;
    for (int i = 0; i < NFIELDS; i++) {
        PyObject *v = vals[i];
        if (v == NULL) {
            switch (i) {
            case F_NAME: v = empty_bytes; break;
            case F_TYPE: case F_USER: case F_GROUP: case F_ERROR: v = empty_str; break;
            case F_MTIME: case F_ATIME: case F_CTIME: v = go_zero; break;
            case F_LINKTARGET: case F_LINKTARGET_RAW: case F_CONTENT: case F_SUBTREE:
                v = Py_None; break;
            case F_XATTRS: v = empty_tuple; break;
            default: v = zero;
            }
            Py_INCREF(v);
        }
        vals[i] = NULL;
        SLOT(node, node_off[i]) = v;
    }
    return node;
}

/* One node object at d->p. OK with *out set, UNUSUAL (d->p after the object), INVALID,
 * or ERROR. */
static int read_node(Dec *d, PyObject **out) {
    PyObject *vals[NFIELDS] = {0};
    int r = OK;
    d->p++;
    skip_ws(d);
    if (d->p < d->end && *d->p == '}') {
        d->p++;
    } else {
        for (;;) {
            if (d->p >= d->end || *d->p != '"') {
                r = INVALID;
                break;
            }
            const unsigned char *key = d->p + 1;
            r = read_string(d);
            if (r != OK)
                break;
            int field = d->str_escaped ? -2 : field_index((const char *)key, d->p - key - 1);
            skip_ws(d);
            if (d->p >= d->end || *d->p != ':') {
                r = INVALID;
                break;
            }
            d->p++;
            skip_ws(d);
            if (field == -2)
                r = UNUSUAL;
            else if (field < 0)
                r = skip_value(d, 1);
            else
                r = read_field(d, field, vals);
            if (r != OK)
                break;
            skip_ws(d);
            if (d->p < d->end && *d->p == '}') {
                d->p++;
                break;
            }
            if (d->p >= d->end || *d->p != ',') {
                r = INVALID;
                break;
            }
            d->p++;
            skip_ws(d);
        }
    }
    if (r == OK) {
        *out = make_node(vals);
        if (*out == NULL)
            r = ERROR;
    }
    for (int i = 0; i < NFIELDS; i++)
        Py_XDECREF(vals[i]);
    return r;
}

static void dec_clear(Dec *d) {
    PyMem_Free(d->str.data);
    for (int i = 0; i < 4; i++)
        Py_XDECREF(d->times[i].obj);
    Py_XDECREF(d->user);
    Py_XDECREF(d->group);
}

/* Python's json.loads(bytes) decodes UTF-8 strictly before parsing. */
static int valid_utf8(const unsigned char *p, const unsigned char *end) {
    while (p < end) {
        unsigned char c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        int n;
        unsigned cp, min;
        if ((c & 0xE0) == 0xC0) {
            n = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (end - p <= n)
            return 0;
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        p += n + 1;
    }
    return 1;
}

static int decode_nodes(Dec *d, PyObject *list) {
    d->p++;
    skip_ws(d);
    if (d->p < d->end && *d->p == ']') {
        d->p++;
        return OK;
    }
    for (;;) {
        if (d->p >= d->end || *d->p != '{')
            return INVALID;
        const unsigned char *start = d->p;
        PyObject *node = NULL;
        int r = read_node(d, &node);
        if (r == UNUSUAL) {
            d->p = start;
            if (skip_value(d, 1) != OK)
                return INVALID;
            PyObject *span = PyBytes_FromStringAndSize((const char *)start, d->p - start);
            if (span == NULL)
                return ERROR;
            node = PyObject_CallOneArg(node_fallback, span);
            Py_DECREF(span);
            r = node == NULL ? ERROR : OK;
        }
        if (r != OK)
            return r;
        int failed = PyList_Append(list, node);
        Py_DECREF(node);
        if (failed)
            return ERROR;
        skip_ws(d);
        if (d->p < d->end && *d->p == ']') {
            d->p++;
            return OK;
        }
        if (d->p >= d->end || *d->p != ',')
            return INVALID;
        d->p++;
        skip_ws(d);
    }
}

static PyObject *decode(PyObject *self, PyObject *arg) {
    if (node_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_treecodec is not configured");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Dec d;
    memset(&d, 0, sizeof(d));
    d.p = view.buf;
    d.end = d.p + view.len;
    PyObject *list = PyList_New(0);
    int r = list == NULL ? ERROR : OK;
    int seen_nodes = 0;
    if (r == OK && !valid_utf8(d.p, d.end))
        r = INVALID;
    if (r == OK) {
        skip_ws(&d);
        if (d.p >= d.end || *d.p != '{')
            r = INVALID;
    }
    if (r == OK) {
        d.p++;
        skip_ws(&d);
        if (d.p < d.end && *d.p == '}') {
            d.p++;
        } else {
            for (;;) {
                if (d.p >= d.end || *d.p != '"') {
                    r = INVALID;
                    break;
                }
                const unsigned char *key = d.p + 1;
                if ((r = read_string(&d)) != OK)
                    break;
                int is_nodes = !d.str_escaped && d.p - key - 1 == 5 && memcmp(key, "nodes", 5) == 0;
                skip_ws(&d);
                if (d.p >= d.end || *d.p != ':') {
                    r = INVALID;
                    break;
                }
                d.p++;
                skip_ws(&d);
                if (is_nodes || d.str_escaped) {
                    if (seen_nodes || d.str_escaped) {
                        r = INVALID; /* repeated or escaped key: let Python decide */
                        break;
                    }
                    seen_nodes = 1;
                    if (d.p < d.end && *d.p == '[')
                        r = decode_nodes(&d, list);
                    else if (d.p < d.end && *d.p == 'n')
                        r = literal(&d, "null");
                    else
                        r = INVALID;
                } else {
                    r = skip_value(&d, 1);
                }
                if (r != OK)
                    break;
                skip_ws(&d);
                if (d.p < d.end && *d.p == '}') {
                    d.p++;
                    break;
                }
                if (d.p >= d.end || *d.p != ',') {
                    r = INVALID;
                    break;
                }
                d.p++;
                skip_ws(&d);
            }
        }
    }
    if (r == OK) {
        skip_ws(&d);
        if (d.p != d.end || !seen_nodes)
            r = INVALID;
    }
    dec_clear(&d);
    PyBuffer_Release(&view);
    if (r == OK)
        return list;
    Py_XDECREF(list);
    if (r == ERROR)
        return NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ encoder */

/* A str as Go's encoding/json writes it (HTML-safe, U+2028/9 escaped, surrogates as
 * U+FFFD), with its quotes. */
static int put_json_str(Buf *b, PyObject *s) {
    if (buf_lit(b, "\"") < 0)
        return -1;
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    if (buf_reserve(b, n + 1) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        const char *esc = NULL;
        char tmp[7];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '<': case '>': case '&': case 0x2028: case 0x2029: break;
        default:
            if (c >= 0x20 && (c < 0xD800 || c > 0xDFFF)) {
                if (c < 0x80) {
                    char ch = (char)c;
                    if (buf_put(b, &ch, 1) < 0)
                        return -1;
                } else if (put_utf8(b, c) < 0) {
                    return -1;
                }
                continue;
            }
        }
        if (esc == NULL) {
            if (c >= 0xD800 && c <= 0xDFFF)
                c = 0xFFFD;
            tmp[0] = '\\';
            tmp[1] = 'u';
            tmp[2] = HEX[c >> 12 & 0xF];
            tmp[3] = HEX[c >> 8 & 0xF];
            tmp[4] = HEX[c >> 4 & 0xF];
            tmp[5] = HEX[c & 0xF];
            tmp[6] = 0;
            esc = tmp;
        }
        if (buf_put(b, esc, (Py_ssize_t)strlen(esc)) < 0)
            return -1;
    }
    return buf_lit(b, "\"");
}

static int put_int(Buf *b, PyObject *v) {
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (x == -1 && PyErr_Occurred())
        return -1;
    if (overflow) {
        PyObject *s = PyObject_Str(v);
        if (s == NULL)
            return -1;
        Py_ssize_t n;
        const char *u = PyUnicode_AsUTF8AndSize(s, &n);
        int r = u == NULL ? -1 : buf_put(b, u, n);
        Py_DECREF(s);
        return r;
    }
    char tmp[24];
    int n = 0;
    if (x < 0)
        tmp[n++] = '-';
    n += put_uint(tmp + n, x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x, 1);
    return buf_put(b, tmp, n);
}

static int put_hex(Buf *b, PyObject *id) {
    Py_ssize_t n = PyBytes_GET_SIZE(id);
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(id);
    if (buf_reserve(b, 2 * n + 2) < 0)
        return -1;
    char *o = b->data + b->len;
    *o++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        *o++ = HEX[s[i] >> 4];
        *o++ = HEX[s[i] & 0xF];
    }
    *o++ = '"';
    b->len = o - b->data;
    return 0;
}

/* 1 when the fast path cannot write this time (the caller asks Python). */
static int put_time(Buf *b, PyObject *ts) {
    if (ts == go_zero)
        return buf_lit(b, "\"0001-01-01T00:00:00Z\"");
    if (Py_TYPE(ts) != ts_type)
        return 1;
    PyObject *nsobj = SLOT(ts, ts_off_ns), *offobj = SLOT(ts, ts_off_offset);
    if (nsobj == NULL || offobj == NULL || !PyLong_CheckExact(nsobj) || !PyLong_CheckExact(offobj))
        return 1;
    int overflow;
    long long ns = PyLong_AsLongLongAndOverflow(nsobj, &overflow);
    if (overflow || (ns == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        /* Go's zero time lies outside int64 nanoseconds; other such times go to Python. */
        int zero_time = PyObject_RichCompareBool(ts, go_zero, Py_EQ);
        if (zero_time < 0)
            return -1;
        return zero_time ? buf_lit(b, "\"0001-01-01T00:00:00Z\"") : 1;
    }
    long offset = PyLong_AsLongAndOverflow(offobj, &overflow);
    if (overflow || offset > 1000000000L || offset < -1000000000L || (offset == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 1;
    }
    __int128 wall = (__int128)ns + (__int128)offset * NS_PER_SEC;
    __int128 secs = wall / NS_PER_SEC;
    __int128 frac = wall - secs * NS_PER_SEC;
    if (frac < 0) {
        frac += NS_PER_SEC;
        secs -= 1;
    }
    int64_t s64 = (int64_t)secs;
    int64_t days = s64 / 86400, sod = s64 % 86400;
    if (sod < 0) {
        sod += 86400;
        days -= 1;
    }
    int64_t year;
    int month, day;
    civil_from_days(days, &year, &month, &day);
    if (year < 0 || year > 9999)
        return 1;
    char tmp[80];
    int n = 0;
    tmp[n++] = '"';
    n += put_uint(tmp + n, (unsigned long long)year, 4);
    tmp[n++] = '-';
    n += put_uint(tmp + n, (unsigned)month, 2);
    tmp[n++] = '-';
    n += put_uint(tmp + n, (unsigned)day, 2);
    tmp[n++] = 'T';
    n += put_uint(tmp + n, (unsigned long long)(sod / 3600), 2);
    tmp[n++] = ':';
    n += put_uint(tmp + n, (unsigned long long)(sod / 60 % 60), 2);
    tmp[n++] = ':';
    n += put_uint(tmp + n, (unsigned long long)(sod % 60), 2);
    if (frac) {
        int f = (int)frac, width = 9;
        while (f % 10 == 0) {
            f /= 10;
            width--;
        }
        tmp[n++] = '.';
        n += put_uint(tmp + n, (unsigned)f, width);
    }
    if (offset == 0) {
        tmp[n++] = 'Z';
    } else {
        long zone = offset / 60; /* truncates toward zero, as Go does */
        tmp[n++] = '+';
        if (zone < 0) {
            tmp[n - 1] = '-';
            zone = -zone;
        }
        n += put_uint(tmp + n, (unsigned long long)(zone / 60), 2);
        tmp[n++] = ':';
        n += put_uint(tmp + n, (unsigned long long)(zone % 60), 2);
    }
    tmp[n++] = '"';
    return buf_put(b, tmp, n);
}

static void check_str(PyObject *v, int *fallback) {
    if (!PyUnicode_CheckExact(v))
        *fallback = 1;
}

static void check_int(PyObject *v, int *fallback) {
    if (!PyLong_CheckExact(v))
        *fallback = 1;
}

/* An exact int's truth value (cannot fail). */
#define NONZERO(v) (PyObject_IsTrue(v) > 0)

/* Is this name written by Go's quoting as itself (printable ASCII, no quote or
 * backslash)? */
static int plain_name(PyObject *name) {
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(name);
    Py_ssize_t n = PyBytes_GET_SIZE(name);
    for (Py_ssize_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7E || s[i] == '"' || s[i] == '\\')
            return 0;
    return 1;
}

/* Can the fast path write this node? Checks every field's Python type first, so a
 * node is never half written. */
static int fast_node(PyObject *node) {
    if (Py_TYPE(node) != node_type)
        return 0;
    PyObject *v[NFIELDS];
    for (int i = 0; i < NFIELDS; i++)
        if ((v[i] = SLOT(node, node_off[i])) == NULL)
            return 0;
    int fallback = 0;
    if (!PyBytes_CheckExact(v[F_NAME]) || !PyUnicode_CheckExact(v[F_TYPE]))
        return 0;
    static const int ints[] = {F_MODE, F_UID, F_GID, F_INODE, F_DEVICE_ID, F_SIZE, F_LINKS, F_DEVICE};
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
        check_int(v[ints[i]], &fallback);
    check_str(v[F_USER], &fallback);
    check_str(v[F_GROUP], &fallback);
    check_str(v[F_ERROR], &fallback);
    if (v[F_LINKTARGET] != Py_None)
        check_str(v[F_LINKTARGET], &fallback);
    if (v[F_LINKTARGET_RAW] != Py_None &&
        !(PyBytes_CheckExact(v[F_LINKTARGET_RAW]) && PyBytes_GET_SIZE(v[F_LINKTARGET_RAW]) == 0))
        return 0;
    if (!(PyTuple_CheckExact(v[F_XATTRS]) && PyTuple_GET_SIZE(v[F_XATTRS]) == 0))
        return 0;
    PyObject *content = v[F_CONTENT];
    if (content != Py_None) {
        if (!PyTuple_CheckExact(content))
            return 0;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(content); i++)
            if (!PyBytes_CheckExact(PyTuple_GET_ITEM(content, i)))
                return 0;
    }
    if (v[F_SUBTREE] != Py_None && !PyBytes_CheckExact(v[F_SUBTREE]))
        return 0;
    return !fallback;
}

/* One node's JSON object; 1 when the fast path could not write it after all. */
static int put_node(Buf *b, PyObject *node) {
    Py_ssize_t start = b->len;
    PyObject *name = SLOT(node, node_off[F_NAME]);
    int r = buf_lit(b, "{\"name\":");
    if (r == 0) {
        if (plain_name(name)) {
            PyObject *s = PyUnicode_DecodeASCII(PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name), NULL);
            r = s == NULL ? -1 : put_json_str(b, s);
            Py_XDECREF(s);
        } else {
            PyObject *s = PyObject_CallOneArg(quote_name, name);
            r = s == NULL ? -1 : PyUnicode_Check(s) ? put_json_str(b, s) : 1;
            Py_XDECREF(s);
        }
    }
#define FIELD(i) SLOT(node, node_off[i])
#define KEY(k) (r == 0 ? (r = buf_lit(b, k)) : r)
#define STEP(expr) (r == 0 ? (r = (expr)) : r)
    KEY(",\"type\":");
    STEP(put_json_str(b, FIELD(F_TYPE)));
    if (NONZERO(FIELD(F_MODE))) {
        KEY(",\"mode\":");
        STEP(put_int(b, FIELD(F_MODE)));
    }
    KEY(",\"mtime\":");
    STEP(put_time(b, FIELD(F_MTIME)));
    KEY(",\"atime\":");
    STEP(put_time(b, FIELD(F_ATIME)));
    KEY(",\"ctime\":");
    STEP(put_time(b, FIELD(F_CTIME)));
    KEY(",\"uid\":");
    STEP(put_int(b, FIELD(F_UID)));
    KEY(",\"gid\":");
    STEP(put_int(b, FIELD(F_GID)));
    if (PyUnicode_GET_LENGTH(FIELD(F_USER))) {
        KEY(",\"user\":");
        STEP(put_json_str(b, FIELD(F_USER)));
    }
    if (PyUnicode_GET_LENGTH(FIELD(F_GROUP))) {
        KEY(",\"group\":");
        STEP(put_json_str(b, FIELD(F_GROUP)));
    }
    static const struct {
        int field;
        const char *key;
    } counts[] = {{F_INODE, ",\"inode\":"}, {F_DEVICE_ID, ",\"device_id\":"},
                  {F_SIZE, ",\"size\":"}, {F_LINKS, ",\"links\":"}};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        if (NONZERO(FIELD(counts[i].field))) {
            STEP(buf_put(b, counts[i].key, (Py_ssize_t)strlen(counts[i].key)));
            STEP(put_int(b, FIELD(counts[i].field)));
        }
    }
    PyObject *target = FIELD(F_LINKTARGET);
    if (target != Py_None && PyUnicode_GET_LENGTH(target)) {
        KEY(",\"linktarget\":");
        STEP(put_json_str(b, target));
    }
    if (NONZERO(FIELD(F_DEVICE))) {
        KEY(",\"device\":");
        STEP(put_int(b, FIELD(F_DEVICE)));
    }
    PyObject *content = FIELD(F_CONTENT);
    if (content == Py_None) {
        KEY(",\"content\":null");
    } else {
        KEY(",\"content\":[");
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(content); i++) {
            if (i)
                KEY(",");
            STEP(put_hex(b, PyTuple_GET_ITEM(content, i)));
        }
        KEY("]");
    }
    if (FIELD(F_SUBTREE) != Py_None) {
        KEY(",\"subtree\":");
        STEP(put_hex(b, FIELD(F_SUBTREE)));
    }
    if (PyUnicode_GET_LENGTH(FIELD(F_ERROR))) {
        KEY(",\"error\":");
        STEP(put_json_str(b, FIELD(F_ERROR)));
    }
    KEY("}");
#undef FIELD
#undef KEY
#undef STEP
    if (r == 1)
        b->len = start;
    return r;
}

static int put_fallback(Buf *b, PyObject *node) {
    PyObject *raw = PyObject_CallOneArg(json_fallback, node);
    if (raw == NULL)
        return -1;
    if (!PyBytes_Check(raw)) {
        Py_DECREF(raw);
        PyErr_SetString(PyExc_TypeError, "node JSON fallback must return bytes");
        return -1;
    }
    int r = buf_put(b, PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw));
    Py_DECREF(raw);
    return r;
}

static PyObject *encode(PyObject *self, PyObject *arg) {
    if (node_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_treecodec is not configured");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(arg, "encode() wants a sequence of nodes");
    if (seq == NULL)
        return NULL;
    Buf b = {0};
    int r = buf_lit(&b, "{\"nodes\":[");
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n && r == 0; i++) {
        PyObject *node = PySequence_Fast_GET_ITEM(seq, i);
        if (i)
            r = buf_lit(&b, ",");
        if (r == 0)
            r = fast_node(node) ? put_node(&b, node) : 1;
        if (r == 1)
            r = put_fallback(&b, node);
    }
    if (r == 0)
        r = buf_lit(&b, "]}\n");
    Py_DECREF(seq);
    PyObject *out = r == 0 ? PyBytes_FromStringAndSize(b.data, b.len) : NULL;
    PyMem_Free(b.data);
    return out;
}

/* ------------------------------------------------------------------ replace */

static PyObject *field_names[NFIELDS]; /* interned */

static PyObject *replace(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    if (node_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_treecodec is not configured");
        return NULL;
    }
    if (nargs != 1 || !Py_IS_TYPE(args[0], node_type)) {
        PyErr_SetString(PyExc_TypeError, "replace() takes one Node and keyword arguments");
        return NULL;
    }
    PyObject *vals[NFIELDS];
    for (int i = 0; i < NFIELDS; i++)
        vals[i] = SLOT(args[0], node_off[i]);
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    int next = 0; /* keywords usually come in field order, as interned names */
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        int i = NFIELDS;
        for (int j = 0; j < NFIELDS; j++) {
            int at = (next + j) % NFIELDS;
            if (key == field_names[at]) {
                i = at;
                break;
            }
        }
        for (int j = 0; i == NFIELDS && j < NFIELDS; j++)
            if (PyUnicode_Compare(key, field_names[j]) == 0)
                i = j;
        if (i == NFIELDS) {
            PyErr_Format(PyExc_TypeError, "Node has no field %R", key);
            return NULL;
        }
        vals[i] = args[1 + k];
        next = i + 1;
    }
    PyObject *node = node_type->tp_alloc(node_type, 0);
    if (node == NULL)
        return NULL;
    for (int i = 0; i < NFIELDS; i++) {
        if (vals[i] == NULL) {
            Py_DECREF(node);
            PyErr_SetString(PyExc_TypeError, "replace() of a Node with an unset field");
            return NULL;
        }
        Py_INCREF(vals[i]);
        SLOT(node, node_off[i]) = vals[i];
    }
    return node;
}

/* --------------------------------------------------------------- configure */

static int member_offset(PyTypeObject *type, const char *name, Py_ssize_t *off) {
    PyObject *descr = PyObject_GetAttrString((PyObject *)type, name);
    if (descr == NULL)
        return -1;
    int ok = Py_IS_TYPE(descr, &PyMemberDescr_Type) &&
             ((PyMemberDescrObject *)descr)->d_member->type == T_OBJECT_EX;
    if (ok)
        *off = ((PyMemberDescrObject *)descr)->d_member->offset;
    Py_DECREF(descr);
    if (!ok)
        PyErr_Format(PyExc_TypeError, "%s.%s is not a slot", type->tp_name, name);
    return ok ? 0 : -1;
}

static int check_fields(PyTypeObject *type, const char *const *names, int count) {
    PyObject *fields = PyObject_GetAttrString((PyObject *)type, "__dataclass_fields__");
    if (fields == NULL)
        return -1;
    PyObject *keys = PySequence_List(fields);
    Py_DECREF(fields);
    if (keys == NULL)
        return -1;
    int ok = PyList_GET_SIZE(keys) == count;
    for (int i = 0; ok && i < count; i++) {
        PyObject *k = PyList_GET_ITEM(keys, i);
        ok = PyUnicode_Check(k) && PyUnicode_CompareWithASCIIString(k, names[i]) == 0;
    }
    Py_DECREF(keys);
    if (!ok)
        PyErr_Format(PyExc_TypeError, "%s's fields are not what _treecodec expects", type->tp_name);
    return ok ? 0 : -1;
}

static PyObject *configure(PyObject *self, PyObject *args) {
    PyObject *nt, *tt, *zero_ts, *nfb, *jfb, *unq, *q;
    if (!PyArg_ParseTuple(args, "O!O!OOOOO:configure", &PyType_Type, &nt, &PyType_Type, &tt,
                          &zero_ts, &nfb, &jfb, &unq, &q))
        return NULL;
    static const char *const ts_names[] = {"ns", "offset"};
    Py_ssize_t offs[NFIELDS], ns_off, offset_off;
    if (check_fields((PyTypeObject *)nt, FIELD_NAMES, NFIELDS) < 0 ||
        check_fields((PyTypeObject *)tt, ts_names, 2) < 0)
        return NULL;
    for (int i = 0; i < NFIELDS; i++)
        if (member_offset((PyTypeObject *)nt, FIELD_NAMES[i], &offs[i]) < 0)
            return NULL;
    if (member_offset((PyTypeObject *)tt, "ns", &ns_off) < 0 ||
        member_offset((PyTypeObject *)tt, "offset", &offset_off) < 0)
        return NULL;
    if (!Py_IS_TYPE(zero_ts, (PyTypeObject *)tt)) {
        PyErr_SetString(PyExc_TypeError, "the zero time must be a Timestamp");
        return NULL;
    }
    memcpy(node_off, offs, sizeof(offs));
    ts_off_ns = ns_off;
    ts_off_offset = offset_off;
#define KEEP(var, value) Py_INCREF(value); Py_XSETREF(var, value)
    KEEP(node_type, (PyTypeObject *)nt);
    KEEP(ts_type, (PyTypeObject *)tt);
    KEEP(go_zero, zero_ts);
    KEEP(node_fallback, nfb);
    KEEP(json_fallback, jfb);
    KEEP(unquote_name, unq);
    KEEP(quote_name, q);
#undef KEEP
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(Node, Timestamp, GO_ZERO, node_from_json, node_to_json, unquote, quote): "
     "the classes and the Python fallbacks."},
    {"decode", decode, METH_O, "decode(data) -> list of Node, or None for the Python decoder."},
    {"encode", encode, METH_O, "encode(sorted_nodes) -> tree blob bytes."},
    {"replace", (PyCFunction)(void (*)(void))replace, METH_FASTCALL | METH_KEYWORDS,
     "replace(node, /, **changes) -> a copy of node with the given fields changed."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_treecodec", "Tree blob JSON codec (see tree.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__treecodec(void) {
    init_hex_table();
    empty_bytes = PyBytes_FromStringAndSize("", 0);
    empty_str = PyUnicode_FromString("");
    empty_tuple = PyTuple_New(0);
    zero = PyLong_FromLong(0);
    for (int i = 0; i < NFIELDS; i++) {
        field_len[i] = (Py_ssize_t)strlen(FIELD_NAMES[i]);
        if ((field_names[i] = PyUnicode_InternFromString(FIELD_NAMES[i])) == NULL)
            return NULL;
    }
    type_file = PyUnicode_InternFromString("file");
    type_dir = PyUnicode_InternFromString("dir");
    type_symlink = PyUnicode_InternFromString("symlink");
    if (!empty_bytes || !empty_str || !empty_tuple || !zero || !type_file || !type_dir ||
        !type_symlink)
        return NULL;
    return PyModule_Create(&module);
}
