/* servers._cloop: the CPython binding of the C event loop (loop.c).
 *
 * Loop(...).run() serves with the GIL released for the whole loop, so the
 * server's Python control threads keep answering; they read the counters
 * through Loop.counters(), which loads each one atomically while the loop runs.
 * http_consume() exposes the C parser so tests can compare it with
 * servers.protocol.http_consume on the same bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include "cloop.h"
#include "curing.h"

/* The bits an fd_set holds are the descriptor numbers select can watch (mech_select.c). */
_Static_assert(sizeof(fd_set) * CHAR_BIT == FD_SETSIZE, "fd_set is not FD_SETSIZE bits");

typedef struct {
    PyObject_HEAD
    cl_config cfg;
    int (*serve)(const cl_config *, cl_stats *, const int *); /* cl_loop_run or cl_uring_run */
    cl_stats stats;
    int stop_flag;
    int wake_write_fd;
    int running;
} LoopObject;

/* The names of the adapters this build links (cloop.h CL_MECHANISM), sorted: a tuple. */
static PyObject *mechanism_names(void) {
    PyObject *names = PyList_New(0);
    if (names == NULL) return NULL;
    for (size_t i = 0; i < cl_mech_count(); i++) {
        PyObject *name = PyUnicode_FromString(cl_mech_at(i)->name);
        if (name == NULL || PyList_Append(names, name) < 0) {
            Py_XDECREF(name);
            Py_DECREF(names);
            return NULL;
        }
        Py_DECREF(name);
    }
    PyObject *sorted = PyList_Sort(names) < 0 ? NULL : PyList_AsTuple(names);
    Py_DECREF(names);
    return sorted;
}

static int Loop_init(LoopObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"mechanism",        "listen_fd",      "wake_fd",
                             "wake_write_fd",    "http",           "http_close",
                             "instrumentation",  "max_queued_bytes", "max_head_bytes",
                             "sample_seed",      NULL};
    const char *mechanism;
    int listen_fd, wake_fd, wake_write_fd, http, http_close, instrumentation;
    Py_ssize_t max_queued, max_head;
    unsigned long long seed;
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError, "the loop is running");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "$siiipppnnK", kwlist, &mechanism, &listen_fd,
                                     &wake_fd, &wake_write_fd, &http, &http_close,
                                     &instrumentation, &max_queued, &max_head, &seed))
        return -1;
    const cl_mech *mech = cl_mech_find(mechanism);
    int (*serve)(const cl_config *, cl_stats *, const int *) = cl_loop_run;
    if (strcmp(mechanism, CL_URING_COMPLETION) == 0) {
#ifdef SELECTBENCH_URING
        serve = cl_uring_run;
#else
        PyErr_SetString(PyExc_ValueError,
                        "mechanism '" CL_URING_COMPLETION "' needs io_uring support, which this "
                        "build of servers._cloop lacks (liburing was not found when it was "
                        "built): apt-get install liburing-dev, then pip install -e . again");
        return -1;
#endif
    } else if (mech == NULL) {
        PyObject *known = mechanism_names();
        if (known != NULL) {
            PyErr_Format(PyExc_ValueError,
                         "unknown mechanism '%s': choose one of %R or " CL_URING_COMPLETION,
                         mechanism, known);
            Py_DECREF(known);
        }
        return -1;
    }
    if (listen_fd < 0 || wake_fd < 0 || max_queued < 1 || max_head < 1) {
        PyErr_SetString(PyExc_ValueError,
                        "descriptors must be >= 0, byte limits >= 1");
        return -1;
    }
    self->cfg = (cl_config){
        .mech = mech,
        .listen_fd = listen_fd,
        .wake_fd = wake_fd,
        .http = http,
        .http_close = http_close,
        .instrumentation = instrumentation,
        .max_queued_bytes = (size_t)max_queued,
        .max_head_bytes = (size_t)max_head,
        .sample_seed = seed,
    };
    self->serve = serve;
    memset(&self->stats, 0, sizeof self->stats);
    self->stop_flag = 0;
    self->wake_write_fd = wake_write_fd;
    return 0;
}

static PyObject *Loop_run(LoopObject *self, PyObject *Py_UNUSED(ignored)) {
    if (self->serve == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Loop.__init__ was not called");
        return NULL;
    }
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError, "the loop is already running");
        return NULL;
    }
    self->running = 1;
    __atomic_store_n(&self->stop_flag, 0, __ATOMIC_RELAXED);
    int rc, err;
    Py_BEGIN_ALLOW_THREADS
    rc = self->serve(&self->cfg, &self->stats, &self->stop_flag);
    err = errno;
    Py_END_ALLOW_THREADS
    self->running = 0;
    if (rc < 0) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyObject *Loop_stop(LoopObject *self, PyObject *Py_UNUSED(ignored)) {
    __atomic_store_n(&self->stop_flag, 1, __ATOMIC_RELAXED);
    if (self->wake_write_fd >= 0) {
        const char byte = 0;
        ssize_t n;
        do {
            n = write(self->wake_write_fd, &byte, 1);
        } while (n < 0 && errno == EINTR);
        /* EAGAIN: the pipe is full, so the loop wakes anyway. */
    }
    Py_RETURN_NONE;
}

static PyObject *Loop_counters(LoopObject *self, PyObject *Py_UNUSED(ignored)) {
    cl_stats copy;
    cl_stats_read(&self->stats, &copy);
    PyObject *dict = PyDict_New();
    if (dict == NULL) return NULL;
#define CL_PUT(name)                                                                       \
    {                                                                                      \
        PyObject *v = PyLong_FromLongLong(copy.name);                                      \
        if (v == NULL || PyDict_SetItemString(dict, #name, v) < 0) {                       \
            Py_XDECREF(v);                                                                 \
            Py_DECREF(dict);                                                               \
            return NULL;                                                                   \
        }                                                                                  \
        Py_DECREF(v);                                                                      \
    }
    CL_COUNTERS(CL_PUT)
#undef CL_PUT
    return dict;
}

static PyMethodDef Loop_methods[] = {
    {"run", (PyCFunction)Loop_run, METH_NOARGS,
     "Serve until SIGTERM/SIGINT (a byte on wake_fd) or stop(); the GIL is released."},
    {"stop", (PyCFunction)Loop_stop, METH_NOARGS,
     "Ask a running loop to stop (safe from any thread)."},
    {"counters", (PyCFunction)Loop_counters, METH_NOARGS,
     "The counters as a dict (servers.stats COUNTERS and GAUGES): one consistent reading."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LoopType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "servers._cloop.Loop",
    .tp_doc = "The C event loop on one readiness mechanism (servers/c/loop.c).",
    .tp_basicsize = sizeof(LoopObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Loop_init,
    .tp_methods = Loop_methods,
};

#ifdef SELECTBENCH_URING
/* servers._cloop.UringPoll: the io_uring readiness adapter (mech_uring_poll.c) for the
 * Python loop, shaped like select.epoll: register, modify, unregister, poll, close.
 * poll() releases the GIL while it waits, as select.epoll.poll does. Not thread-safe:
 * one thread drives it (the loop's), so another thread's call while it waits is refused. */
typedef struct {
    PyObject_HEAD
    cl_uring *ring;
    int waiting;
} UringPollObject;

static int UringPoll_usable(UringPollObject *self) {
    if (self->ring == NULL) {
        PyErr_SetString(PyExc_ValueError, "I/O operation on closed UringPoll object");
        return 0;
    }
    if (self->waiting) {
        PyErr_SetString(PyExc_RuntimeError, "UringPoll.poll() is waiting in another thread");
        return 0;
    }
    return 1;
}

static PyObject *UringPoll_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "", kwlist)) return NULL;
    UringPollObject *self = (UringPollObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->ring = cl_uring_new();
    if (self->ring == NULL) {
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void UringPoll_dealloc(UringPollObject *self) {
    if (self->ring) cl_uring_free(self->ring);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

typedef int (*uring_change)(cl_uring *u, int fd, int mask);

static PyObject *UringPoll_change(UringPollObject *self, PyObject *args, uring_change change) {
    PyObject *fileobj;
    unsigned int mask = CL_READ | CL_WRITE;
    if (!PyArg_ParseTuple(args, "O|I", &fileobj, &mask)) return NULL;
    int fd = PyObject_AsFileDescriptor(fileobj);
    if (fd < 0 || !UringPoll_usable(self)) return NULL;
    if (change(self->ring, fd, (int)(mask & 0xffff)) < 0) return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *UringPoll_register(UringPollObject *self, PyObject *args) {
    return UringPoll_change(self, args, cl_uring_add);
}

static PyObject *UringPoll_modify(UringPollObject *self, PyObject *args) {
    return UringPoll_change(self, args, cl_uring_modify);
}

static PyObject *UringPoll_unregister(UringPollObject *self, PyObject *fileobj) {
    int fd = PyObject_AsFileDescriptor(fileobj);
    if (fd < 0 || !UringPoll_usable(self)) return NULL;
    if (cl_uring_del(self->ring, fd) < 0) return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *UringPoll_poll(UringPollObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"timeout", NULL};
    PyObject *timeout_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O", kwlist, &timeout_obj)) return NULL;
    int timeout_ms = -1;
    if (timeout_obj != Py_None) {
        double seconds = PyFloat_AsDouble(timeout_obj);
        if (seconds == -1.0 && PyErr_Occurred()) return NULL;
        if (seconds >= 0) {
            if (seconds * 1000.0 > INT_MAX) {
                PyErr_SetString(PyExc_OverflowError, "timeout is too large");
                return NULL;
            }
            timeout_ms = (int)(seconds * 1000.0 + 0.999); /* round up, as select.epoll */
        }
    }
    if (!UringPoll_usable(self)) return NULL;
    cl_event *events;
    int n, err;
    self->waiting = 1;
    Py_BEGIN_ALLOW_THREADS
    n = cl_uring_wait(self->ring, &events, timeout_ms);
    err = errno;
    Py_END_ALLOW_THREADS
    self->waiting = 0;
    if (n < 0) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *list = PyList_New(n);
    if (list == NULL) return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *pair = Py_BuildValue("(ii)", events[i].fd, events[i].mask);
        if (pair == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, pair);
    }
    return list;
}

static PyObject *UringPoll_close(UringPollObject *self, PyObject *Py_UNUSED(ignored)) {
    if (self->waiting) {
        PyErr_SetString(PyExc_RuntimeError, "UringPoll.poll() is waiting in another thread");
        return NULL;
    }
    if (self->ring) cl_uring_free(self->ring);
    self->ring = NULL;
    Py_RETURN_NONE;
}

static PyObject *UringPoll_closed(UringPollObject *self, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(self->ring == NULL);
}

static PyMethodDef UringPoll_methods[] = {
    {"register", (PyCFunction)UringPoll_register, METH_VARARGS,
     "register(fd, eventmask=POLLIN|POLLOUT): arm a multishot poll (submitted by poll())."},
    {"modify", (PyCFunction)UringPoll_modify, METH_VARARGS,
     "modify(fd, eventmask): remove the poll and arm one with the new mask (0: none)."},
    {"unregister", (PyCFunction)UringPoll_unregister, METH_O,
     "unregister(fd): remove the poll (submitted by the next poll())."},
    {"poll", (PyCFunction)(void (*)(void))UringPoll_poll, METH_VARARGS | METH_KEYWORDS,
     "poll(timeout=None) -> [(fd, events)]: one io_uring_enter submits the queued changes "
     "and waits; one pair per completion (edge-triggered: a completion per wake-up)."},
    {"close", (PyCFunction)UringPoll_close, METH_NOARGS, "Close the ring."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef UringPoll_getset[] = {
    {"closed", (getter)UringPoll_closed, NULL, "True once close() was called.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject UringPollType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "servers._cloop.UringPoll",
    .tp_doc = "io_uring readiness: multishot IORING_OP_POLL_ADD per descriptor "
              "(servers/c/mech_uring_poll.c).",
    .tp_basicsize = sizeof(UringPollObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = UringPoll_new,
    .tp_dealloc = (destructor)UringPoll_dealloc,
    .tp_methods = UringPoll_methods,
    .tp_getset = UringPoll_getset,
};

static PyObject *py_uring_probe(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored)) {
    char why[256] = "";
    int err;
    Py_BEGIN_ALLOW_THREADS
    err = cl_uring_probe(why, sizeof why);
    Py_END_ALLOW_THREADS
    if (err == 0) Py_RETURN_NONE;
    return Py_BuildValue("(is)", err, why);
}
#endif

static PyObject *py_http_consume(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"data", "max_head_bytes", "close_every", NULL};
    Py_buffer data;
    Py_ssize_t max_head;
    int close_every = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*n|p", kwlist, &data, &max_head,
                                     &close_every))
        return NULL;
    cl_buf out = {0};
    cl_http_result res;
    int rc = cl_http_consume(data.buf, (size_t)data.len, max_head < 0 ? 0 : (size_t)max_head,
                             close_every, &out, &res);
    PyObject *result = NULL;
    if (rc < 0) {
        PyErr_NoMemory();
    } else {
        const char *rest = (const char *)data.buf + res.consumed;
        Py_ssize_t rest_len = res.close ? 0 : data.len - (Py_ssize_t)res.consumed;
        result = Py_BuildValue("(y#y#NL)", out.data ? out.data : "", (Py_ssize_t)out.len, rest,
                               rest_len, PyBool_FromLong(res.close), (long long)res.requests);
    }
    cl_buf_free(&out);
    PyBuffer_Release(&data);
    return result;
}

static PyObject *py_sample_gaps(PyObject *Py_UNUSED(module), PyObject *args) {
    unsigned long long seed;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "Kn", &seed, &n)) return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "n must be >= 0");
        return NULL;
    }
    cl_sampler sampler;
    cl_sampler_init(&sampler, seed);
    PyObject *list = PyList_New(n);
    if (list == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *gap = PyLong_FromLong(cl_sampler_next_gap(&sampler));
        if (gap == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, gap);
    }
    return list;
}

static PyObject *py_splitmix64(PyObject *Py_UNUSED(module), PyObject *args) {
    unsigned long long seed;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "Kn", &seed, &n)) return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "n must be >= 0");
        return NULL;
    }
    uint64_t state = seed;
    PyObject *list = PyList_New(n);
    if (list == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *value = PyLong_FromUnsignedLongLong(cl_splitmix64(&state));
        if (value == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, value);
    }
    return list;
}

static PyObject *py_calibrate_clock_pair(PyObject *Py_UNUSED(module), PyObject *args) {
    int pairs = 2000;
    if (!PyArg_ParseTuple(args, "|i", &pairs)) return NULL;
    int64_t median;
    Py_BEGIN_ALLOW_THREADS
    median = cl_calibrate_clock_pair(pairs);
    Py_END_ALLOW_THREADS
    if (median < 0) return PyErr_NoMemory();
    return PyLong_FromLongLong(median);
}

#ifdef SELECTBENCH_URING
/* None when this kernel runs the io_uring completion server, else (stage, errno): the
 * first step that failed (curing.h); servers.c_uring words it. */
static PyObject *py_uring_completion_probe(PyObject *Py_UNUSED(module),
                                           PyObject *Py_UNUSED(ignored)) {
    int err = 0;
    cl_uring_server_stage stage;
    Py_BEGIN_ALLOW_THREADS
    stage = cl_uring_server_probe(&err);
    Py_END_ALLOW_THREADS
    static const char *const names[] = {"ok", "setup", "buf_ring", "multishot_recv"};
    if (stage == CL_URING_OK) Py_RETURN_NONE;
    return Py_BuildValue("(si)", names[stage], err);
}
#endif

static PyMethodDef module_methods[] = {
    {"http_consume", (PyCFunction)(void (*)(void))py_http_consume, METH_VARARGS | METH_KEYWORDS,
     "http_consume(data, max_head_bytes, close_every=False) -> "
     "(output, rest, close, requests): servers.protocol.http_consume in C."},
    {"sample_gaps", py_sample_gaps, METH_VARARGS,
     "sample_gaps(seed, n) -> the first n gaps servers.sampling.CallSampler(seed) draws."},
    {"splitmix64", py_splitmix64, METH_VARARGS,
     "splitmix64(seed, n) -> the first n outputs of splitmix64 from seed (servers.sampling)."},
    {"calibrate_clock_pair", py_calibrate_clock_pair, METH_VARARGS,
     "calibrate_clock_pair(pairs=2000) -> median CPU ns of the C loop's clock reads."},
#ifdef SELECTBENCH_URING
    {"uring_probe", py_uring_probe, METH_NOARGS,
     "uring_probe() -> None when io_uring multishot poll works here, else (errno, why)."},
    {"uring_completion_probe", py_uring_completion_probe, METH_NOARGS,
     "uring_completion_probe() -> None when c-uring can run here, else (stage, errno) of the "
     "first failure: 'setup', 'buf_ring' or 'multishot_recv'."},
#endif
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cloop_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "servers._cloop",
    .m_doc = "The C twin of servers.eventloop (see servers/c/).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__cloop(void) {
    if (PyType_Ready(&LoopType) < 0) return NULL;
#ifdef SELECTBENCH_URING
    if (PyType_Ready(&UringPollType) < 0) return NULL;
#endif
    PyObject *m = PyModule_Create(&cloop_module);
    if (m == NULL) return NULL;
    PyObject *mechanisms = mechanism_names();
#define CL_NAME(name) "s"
#define CL_STR(name) #name,
    PyObject *names = Py_BuildValue("(" CL_COUNTERS(CL_NAME) ")", CL_COUNTERS(CL_STR) NULL);
#undef CL_STR
#undef CL_NAME
    if (names == NULL || mechanisms == NULL) goto fail;
    Py_INCREF(&LoopType);
    if (PyModule_AddObject(m, "Loop", (PyObject *)&LoopType) < 0) {
        Py_DECREF(&LoopType);
        goto fail;
    }
    if (PyModule_AddObject(m, "COUNTER_NAMES", names) < 0) goto fail;
    names = NULL;
    if (PyModule_AddObject(m, "MECHANISMS", mechanisms) < 0) goto fail;
    mechanisms = NULL;
#ifdef SELECTBENCH_URING
    Py_INCREF(&UringPollType);
    if (PyModule_AddObject(m, "UringPoll", (PyObject *)&UringPollType) < 0) {
        Py_DECREF(&UringPollType);
        goto fail;
    }
    if (PyModule_AddStringConstant(m, "LIBURING", cl_uring_library()) < 0) goto fail;
#else
    /* Built without liburing (setup.py found no liburing.h / -luring). */
    if (PyModule_AddObjectRef(m, "LIBURING", Py_None) < 0) goto fail;
#endif
#ifndef SELECTBENCH_SANITIZE
#define SELECTBENCH_SANITIZE ""
#endif
    if (PyModule_AddStringConstant(m, "SANITIZE", SELECTBENCH_SANITIZE) < 0) goto fail;
    if (PyModule_AddStringConstant(m, "URING_COMPLETION", CL_URING_COMPLETION) < 0) goto fail;
    if (PyModule_AddIntConstant(m, "FD_SETSIZE", (long)(sizeof(fd_set) * CHAR_BIT)) < 0 ||
        PyModule_AddIntConstant(m, "RECV_BYTES", CL_RECV_BYTES) < 0 ||
        PyModule_AddIntConstant(m, "MAX_EVENTS", CL_MAX_EVENTS) < 0 ||
        PyModule_AddIntConstant(m, "MAX_BODY_BYTES", CL_MAX_BODY_BYTES) < 0 ||
        PyModule_AddIntConstant(m, "MAX_CONTENT_LENGTH_DIGITS", CL_MAX_CONTENT_LENGTH_DIGITS) < 0)
        goto fail;
    return m;
fail:
    Py_XDECREF(names);
    Py_XDECREF(mechanisms);
    Py_DECREF(m);
    return NULL;
}
