/* Reading a batch of small files whole, with the GIL released once for the batch.
 *
 * Read from Python, every file costs six or seven system calls (open, fstat, read, read to
 * see the end, close, listxattr), and each one hands the GIL over to whichever thread wants
 * it: with the walk, the sealing tasks and a second reader running, that is hundreds of
 * thousands of thread switches for a folder tree of small files. Here the calls for a whole
 * batch run in one go.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Files the caller says are larger than this are refused: they are read as streams. */
#define WHOLE_MAX (64L << 20)

enum { OK = 0, FAIL_OPEN, FAIL_STAT, FAIL_READ };
static const char *OPS[] = {NULL, "open", "stat", "read"};

typedef struct {
    const char *path;
    char *buf;
    Py_ssize_t cap; /* expected size + 1: a full buffer means the file grew */
    Py_ssize_t got;
    int failed, err, xattrs;
    struct stat st;
} job_t;

static void read_one(job_t *j, int noatime) {
    /* O_NONBLOCK: a fifo put in place of a listed file must not block the open. */
    int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
#ifdef O_NOATIME
    int fd = noatime ? open(j->path, flags | O_NOATIME) : -1;
    if (fd < 0 && (!noatime || errno == EPERM || errno == EACCES)) fd = open(j->path, flags);
#else
    int fd = open(j->path, flags);
#endif
    if (fd < 0) {
        j->failed = FAIL_OPEN;
        j->err = errno;
        return;
    }
    if (fstat(fd, &j->st) < 0) {
        j->failed = FAIL_STAT;
        j->err = errno;
        close(fd);
        return;
    }
    if (S_ISREG(j->st.st_mode)) {
        while (j->got < j->cap) {
            ssize_t n = read(fd, j->buf + j->got, (size_t)(j->cap - j->got));
            if (n < 0) {
                if (errno == EINTR) continue;
                j->failed = FAIL_READ;
                j->err = errno;
                break;
            }
            if (n == 0) break;
            j->got += n;
        }
        /* Any attribute, or an error other than "none here", is left for Python to read. */
        ssize_t names = flistxattr(fd, NULL, 0);
        j->xattrs = names > 0 || (names < 0 && errno != ENOTSUP && errno != ENODATA);
    }
    close(fd);
}

static PyObject *stat_tuple(const struct stat *st) {
    return Py_BuildValue("(KKKKKKLLLLK)", (unsigned long long)st->st_mode, (unsigned long long)st->st_ino,
                         (unsigned long long)st->st_dev, (unsigned long long)st->st_nlink,
                         (unsigned long long)st->st_uid, (unsigned long long)st->st_gid,
                         (long long)st->st_size,
                         (long long)st->st_atim.tv_sec * 1000000000LL + st->st_atim.tv_nsec,
                         (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec,
                         (long long)st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec,
                         (unsigned long long)st->st_rdev);
}

PyDoc_STRVAR(read_whole_doc,
"read_whole(paths, sizes, noatime) -> list\n\n"
"Open (O_NOFOLLOW, O_NOATIME when allowed), fstat and read each file, expecting sizes[i]\n"
"bytes. One tuple per file: (op, errno, None, None, False) when a call failed, else\n"
"(None, 0, status, data, xattrs): status is (mode, ino, dev, nlink, uid, gid, size,\n"
"atime_ns, mtime_ns, ctime_ns, rdev) from fstat, data the whole content, or None when\n"
"the file is not regular or holds more than expected; xattrs tells whether it may\n"
"have extended attributes.");

static PyObject *read_whole(PyObject *module, PyObject *args) {
    PyObject *paths, *sizes;
    int noatime;
    if (!PyArg_ParseTuple(args, "O!O!p", &PyList_Type, &paths, &PyList_Type, &sizes, &noatime)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(paths);
    if (PyList_GET_SIZE(sizes) != n) {
        PyErr_SetString(PyExc_ValueError, "paths and sizes differ in length");
        return NULL;
    }
    job_t *jobs = PyMem_Calloc((size_t)n + 1, sizeof(job_t));
    PyObject **names = PyMem_Calloc((size_t)n + 1, sizeof(PyObject *));
    PyObject **bufs = PyMem_Calloc((size_t)n + 1, sizeof(PyObject *));
    PyObject *out = NULL;
    if (jobs == NULL || names == NULL || bufs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        /* Our own references: the lists may change while the GIL is released. */
        names[i] = Py_NewRef(PyList_GET_ITEM(paths, i));
        if (!PyBytes_Check(names[i])) {
            PyErr_SetString(PyExc_TypeError, "paths must be bytes");
            goto done;
        }
        long long size = PyLong_AsLongLong(PyList_GET_ITEM(sizes, i));
        if (size == -1 && PyErr_Occurred()) goto done;
        if (size < 0 || size > WHOLE_MAX) {
            PyErr_SetString(PyExc_ValueError, "size out of range");
            goto done;
        }
        bufs[i] = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size + 1);
        if (bufs[i] == NULL) goto done;
        jobs[i].path = PyBytes_AS_STRING(names[i]);
        jobs[i].buf = PyBytes_AS_STRING(bufs[i]);
        jobs[i].cap = (Py_ssize_t)size + 1;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) read_one(&jobs[i], noatime);
    Py_END_ALLOW_THREADS
    out = PyList_New(n);
    if (out == NULL) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        job_t *j = &jobs[i];
        PyObject *item;
        if (j->failed) {
            item = Py_BuildValue("(siOOO)", OPS[j->failed], j->err, Py_None, Py_None, Py_False);
        } else {
            PyObject *st = stat_tuple(&j->st);
            PyObject *data = Py_None;
            if (st != NULL && S_ISREG(j->st.st_mode) && j->got < j->cap) {
                if (_PyBytes_Resize(&bufs[i], j->got) < 0) {
                    Py_DECREF(st);
                    Py_CLEAR(out);
                    goto done;
                }
                data = bufs[i];
            }
            item = st == NULL ? NULL : Py_BuildValue("(OiNOO)", Py_None, 0, st, data, j->xattrs ? Py_True : Py_False);
        }
        if (item == NULL) {
            Py_CLEAR(out);
            goto done;
        }
        PyList_SET_ITEM(out, i, item);
    }
done:
    if (names != NULL && bufs != NULL) {
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_XDECREF(names[i]);
            Py_XDECREF(bufs[i]);
        }
    }
    PyMem_Free(jobs);
    PyMem_Free(names);
    PyMem_Free(bufs);
    return out;
}

static PyMethodDef methods[] = {
    {"read_whole", read_whole, METH_VARARGS, read_whole_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_readfiles", "Small files read whole, a batch per GIL release.", -1, methods,
};

PyMODINIT_FUNC PyInit__readfiles(void) { return PyModule_Create(&module); }
