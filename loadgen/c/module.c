/* loadgen._cload: the CPython binding of the load generator's core (core.c, churn.c).
 *
 * KeepAliveCore(...).run() runs the send/receive loop with the GIL released for
 * the whole bounded run, on buffers the Python worker owns (alive: bytearray,
 * sent and intended: array('q')); what it hands back is a list of tuples for the
 * worker's slow path. Latencies stay in C until take_counts(), which returns
 * them as {microseconds: count} maps, the form loadgen.histogram records.
 * ChurnCore(...) does the same for a churn worker (connect, request, close).
 * http_reply, echo_reply, wait_plan and next_intended expose the pure parts so
 * tests can check them against Python's rules and with a fake clock.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "cload.h"

#ifndef SELECTBENCH_SANITIZE
#define SELECTBENCH_SANITIZE "" /* setup.py names the sanitizers of a checking build */
#endif

/* See core.c's comment for the measurement behind it. */
#define LG_SPIN_NS 50000

typedef struct {
    PyObject_HEAD
    lg_core core;
    PyObject *request; /* keeps core.req alive */
    int running;
} CoreObject;

static int Core_init(CoreObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"epoll_fd",    "request", "http",    "open_loop",
                             "interval_ns", "spin_ns", "poll_ns", NULL};
    int epfd = -1, http = 0, open_loop = 0;
    PyObject *request = NULL;
    long long interval = 0, spin = LG_SPIN_NS, poll = 0;
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError, "the core is running");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$iSppLLL", kwlist, &epfd, &request, &http,
                                     &open_loop, &interval, &spin, &poll))
        return -1;
    if (request == NULL || epfd < 0) {
        PyErr_SetString(PyExc_TypeError, "epoll_fd and request are required");
        return -1;
    }
    if (PyBytes_GET_SIZE(request) == 0 || interval < 0 || spin < 0 || poll < 0) {
        PyErr_SetString(PyExc_ValueError, "request must not be empty; interval_ns, spin_ns and "
                                          "poll_ns must be >= 0");
        return -1;
    }
    lg_core_free(&self->core);
    Py_XDECREF(self->request);
    Py_INCREF(request);
    self->request = request;
    self->core = (lg_core){.epfd = epfd,
                           .http = http,
                           .open_loop = open_loop,
                           .req = PyBytes_AS_STRING(request),
                           .req_len = (size_t)PyBytes_GET_SIZE(request),
                           .interval = interval,
                           .spin_ns = spin,
                           .poll_ns = poll};
    if (lg_core_init(&self->core) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    /* Wake-ups as close to the deadline as the kernel can (default slack: 50 us). */
    prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0);
    return 0;
}

static void Core_dealloc(CoreObject *self) {
    lg_core_free(&self->core);
    Py_XDECREF(self->request);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *bytes_or_none(const char *p, size_t n, int present) {
    if (!present) Py_RETURN_NONE;
    return PyBytes_FromStringAndSize(p, (Py_ssize_t)n);
}

static PyObject *handbacks(const lg_run_out *out) {
    PyObject *list = PyList_New((Py_ssize_t)out->nhb);
    if (list == NULL) return NULL;
    for (size_t i = 0; i < out->nhb; i++) {
        const lg_handback *h = &out->hb[i];
        PyObject *item = Py_BuildValue(
            "(iNNLNi)", h->fd, bytes_or_none(h->partial, h->partial_len, h->partial != NULL),
            bytes_or_none(h->data, h->data_len, h->read), (long long)h->t,
            bytes_or_none(h->rest, h->rest_len, h->rest != NULL), h->err);
        if (item == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

static int get_int64_buffer(PyObject *obj, Py_buffer *view, const char *name) {
    if (!PyObject_CheckBuffer(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a writable array('q'), not %s", name,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE | PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    const char *f = view->format ? view->format : "B";
    if (view->itemsize != 8 || (strcmp(f, "q") != 0 && strcmp(f, "l") != 0)) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "%s must be a writable array('q')", name);
        return -1;
    }
    return 0;
}

static PyObject *Core_run(CoreObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"alive",         "sent",    "intended", "until_ns",
                             "max_completed", "room_ns", NULL};
    PyObject *alive_obj, *sent_obj, *intended_obj;
    long long until, room = 0;
    unsigned long long max_completed = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOL|KL", kwlist, &alive_obj, &sent_obj,
                                     &intended_obj, &until, &max_completed, &room))
        return NULL;
    if (room < 0) {
        PyErr_SetString(PyExc_ValueError, "room_ns must be >= 0");
        return NULL;
    }
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError, "the core is already running");
        return NULL;
    }
    Py_buffer alive, sent, intended;
    if (PyObject_GetBuffer(alive_obj, &alive, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    if (alive.itemsize != 1) {
        PyBuffer_Release(&alive);
        PyErr_SetString(PyExc_TypeError, "alive must be a bytearray");
        return NULL;
    }
    if (get_int64_buffer(sent_obj, &sent, "sent") < 0) {
        PyBuffer_Release(&alive);
        return NULL;
    }
    if (get_int64_buffer(intended_obj, &intended, "intended") < 0) {
        PyBuffer_Release(&alive);
        PyBuffer_Release(&sent);
        return NULL;
    }
    size_t nsent = (size_t)sent.len / 8, nint = (size_t)intended.len / 8;
    lg_state state = {.alive = alive.buf,
                      .nalive = (size_t)alive.len,
                      .sent = sent.buf,
                      .intended = intended.buf,
                      .nstate = nsent < nint ? nsent : nint};
    lg_run_out *out = calloc(1, sizeof *out);
    if (out == NULL) {
        PyBuffer_Release(&alive);
        PyBuffer_Release(&sent);
        PyBuffer_Release(&intended);
        return PyErr_NoMemory();
    }
    self->running = 1;
    self->core.room_ns = self->core.open_loop ? room : 0;
    Py_BEGIN_ALLOW_THREADS
    lg_core_run(&self->core, &state, until, max_completed, out);
    Py_END_ALLOW_THREADS
    self->running = 0;
    PyBuffer_Release(&alive);
    PyBuffer_Release(&sent);
    PyBuffer_Release(&intended);
    PyObject *result = NULL;
    if (out->status == ENOMEM) {
        PyErr_NoMemory();
    } else if (out->status) {
        errno = out->status;
        PyErr_SetFromErrno(PyExc_OSError);
    } else {
        PyObject *list = handbacks(out);
        if (list != NULL) result = Py_BuildValue("(KN)", (unsigned long long)out->completed, list);
    }
    lg_run_out_free(out);
    free(out);
    return result;
}

static PyObject *Core_set_partial(CoreObject *self, PyObject *args) {
    int fd;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "iy*", &fd, &data)) return NULL;
    int rc = lg_core_set_partial(&self->core, fd, data.buf, (size_t)data.len);
    PyBuffer_Release(&data);
    if (rc < 0) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *Core_set_out(CoreObject *self, PyObject *args) {
    int fd;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "iy*", &fd, &data)) return NULL;
    int rc = lg_core_set_out(&self->core, fd, data.buf, (size_t)data.len);
    PyBuffer_Release(&data);
    if (rc < 0) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *Core_forget(CoreObject *self, PyObject *arg) {
    long fd = PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred()) return NULL;
    if (fd >= 0 && fd <= INT_MAX) lg_core_forget(&self->core, (int)fd);
    Py_RETURN_NONE;
}

/* {fd: (partial or None, rest or None)} for every descriptor with bytes in the core,
 * which then holds none: Python's drain takes over. */
static PyObject *Core_export(CoreObject *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *d = PyDict_New();
    if (d == NULL) return NULL;
    for (size_t fd = 0; fd < self->core.nconns; fd++) {
        lg_conn *k = &self->core.conns[fd];
        int has_out = k->out != NULL && k->out_off < k->out_len;
        if (!k->in_len && !has_out) continue;
        PyObject *v = Py_BuildValue("(NN)", bytes_or_none(k->in, k->in_len, k->in_len > 0),
                                    bytes_or_none(k->out + (has_out ? k->out_off : 0),
                                                  has_out ? k->out_len - k->out_off : 0, has_out));
        PyObject *key = PyLong_FromSize_t(fd);
        int rc = v && key ? PyDict_SetItem(d, key, v) : -1;
        Py_XDECREF(v);
        Py_XDECREF(key);
        if (rc < 0) {
            Py_DECREF(d);
            return NULL;
        }
        lg_core_forget(&self->core, (int)fd);
    }
    return d;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* {v // 1000: count} of the first `upto` nanosecond values (floor division, as Python's),
 * which leave the vector; the rest move to its front. */
static PyObject *us_counts(lg_vec *v, size_t upto) {
    PyObject *d = PyDict_New();
    if (d == NULL || upto == 0) return d; /* qsort must not see a NULL array */
    for (size_t i = 0; i < upto; i++) {
        int64_t x = v->v[i], q = x / 1000;
        v->v[i] = (x % 1000 < 0) ? q - 1 : q;
    }
    qsort(v->v, upto, sizeof *v->v, cmp_i64);
    for (size_t i = 0; i < upto;) {
        size_t j = i;
        while (j < upto && v->v[j] == v->v[i]) j++;
        PyObject *key = PyLong_FromLongLong(v->v[i]);
        PyObject *count = PyLong_FromSize_t(j - i);
        int rc = key && count ? PyDict_SetItem(d, key, count) : -1;
        Py_XDECREF(key);
        Py_XDECREF(count);
        if (rc < 0) {
            Py_DECREF(d);
            return NULL;
        }
        i = j;
    }
    memmove(v->v, v->v + upto, (v->n - upto) * sizeof *v->v);
    v->n -= upto;
    return d;
}

static PyObject *Core_take_counts(CoreObject *self, PyObject *Py_UNUSED(ignored)) {
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError, "the core is running");
        return NULL;
    }
    lg_core *c = &self->core;
    /* After a run that went on past its tick, the entries from the tick's mark on are the
     * next interval's. */
    int m = c->marked;
    c->marked = 0;
    return Py_BuildValue("(NNN)", us_counts(&c->lat_c, m ? c->mark_c : c->lat_c.n),
                         us_counts(&c->lat_u, m ? c->mark_u : c->lat_u.n),
                         us_counts(&c->lag, m ? c->mark_lag : c->lag.n));
}

static PyObject *Core_polled_ns(CoreObject *self, void *closure) {
    (void)closure;
    return PyLong_FromLongLong((long long)self->core.polled_ns);
}

static PyGetSetDef Core_getset[] = {
    {"polled_ns", (getter)Core_polled_ns, NULL,
     "ns spent polling for an event (closed loop) or spinning before a send (open loop), "
     "since the core was made (waiting, not work)",
     NULL},

    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef Core_methods[] = {
    {"run", (PyCFunction)(void (*)(void))Core_run, METH_VARARGS | METH_KEYWORDS,
     "run(alive, sent, intended, until_ns, max_completed=0, room_ns=0) -> (completed, "
     "handbacks)\n"
     "handbacks: [(fd, partial, data, t_ns, rest, errno)] for the worker's slow path.\n"
     "Open loop, room_ns > 0: a send due within room_ns after until_ns is made before the "
     "run returns; take_counts() then takes what came before until_ns."},
    {"set_partial", (PyCFunction)Core_set_partial, METH_VARARGS,
     "set_partial(fd, bytes): the answer's bytes read so far"},
    {"set_out", (PyCFunction)Core_set_out, METH_VARARGS,
     "set_out(fd, bytes): the unsent rest of a request (EPOLLOUT already registered)"},
    {"forget", (PyCFunction)Core_forget, METH_O, "forget(fd): the descriptor was closed"},
    {"export", (PyCFunction)Core_export, METH_NOARGS,
     "export() -> {fd: (partial, rest)}, leaving the core without bytes"},
    {"take_counts", (PyCFunction)Core_take_counts, METH_NOARGS,
     "take_counts() -> (corrected, uncorrected, send_lag): {us: count} since the last call"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "loadgen._cload.KeepAliveCore",
    .tp_basicsize = sizeof(CoreObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "KeepAliveCore(*, epoll_fd, request, http, open_loop, interval_ns=0, "
              "spin_ns=SPIN_NS, poll_ns=0): a keep-alive worker's send/receive loop",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Core_init,
    .tp_dealloc = (destructor)Core_dealloc,
    .tp_methods = Core_methods,
    .tp_getset = Core_getset,
};


/* ------------------------------------------------------------------ churn */
typedef struct {
    PyObject_HEAD
    lg_churn churn;
    PyObject *request;
    int running;
} ChurnObject;

/* An IPv4 or IPv6 address string and a port as a sockaddr; -1 with ValueError if not. */
static int parse_address(const char *host, int port, struct sockaddr_storage *ss,
                         socklen_t *len, int *family) {
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof *a4;
        *family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof *a6;
        *family = AF_INET6;
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "%s is not an IPv4 or IPv6 address", host);
    return -1;
}

static int Churn_init(ChurnObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"epoll_fd", "request", "http",    "open_loop", "address",
                             "port",     "sources", "source_start", "interval_ns", "spin_ns",
                             NULL};
    int epfd = -1, http = 0, open_loop = 0, port = 0;
    PyObject *request = NULL, *sources = NULL;
    const char *address = NULL;
    long long interval = 0, spin = LG_SPIN_NS;
    Py_ssize_t source_start = 0;
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError, "the core is running");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$iSppsiOnLL", kwlist, &epfd, &request,
                                     &http, &open_loop, &address, &port, &sources,
                                     &source_start, &interval, &spin))
        return -1;
    if (request == NULL || epfd < 0 || address == NULL) {
        PyErr_SetString(PyExc_TypeError, "epoll_fd, request and address are required");
        return -1;
    }
    if (PyBytes_GET_SIZE(request) == 0 || interval < 0 || spin < 0 || port <= 0 ||
        port > 65535 || source_start < 0) {
        PyErr_SetString(PyExc_ValueError, "need a request, a port in 1..65535 and "
                                          "interval_ns, spin_ns, source_start >= 0");
        return -1;
    }
    lg_churn_free(&self->churn);
    Py_XDECREF(self->request);
    Py_INCREF(request);
    self->request = request;
    lg_churn *c = &self->churn;
    *c = (lg_churn){.epfd = epfd,
                    .http = http,
                    .open_loop = open_loop,
                    .req = PyBytes_AS_STRING(request),
                    .req_len = (size_t)PyBytes_GET_SIZE(request),
                    .interval = interval,
                    .spin_ns = spin,
                    .source_i = (size_t)source_start};
    if (parse_address(address, port, &c->target, &c->target_len, &c->family) < 0) return -1;
    if (sources != NULL && sources != Py_None) {
        PyObject *seq = PySequence_Fast(sources, "sources must be a sequence of addresses");
        if (seq == NULL) return -1;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        c->sources = calloc((size_t)n + 1, sizeof *c->sources);
        c->source_len = calloc((size_t)n + 1, sizeof *c->source_len);
        if (c->sources == NULL || c->source_len == NULL) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            const char *src = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i));
            int family;
            if (src == NULL ||
                parse_address(src, 0, &c->sources[i], &c->source_len[i], &family) < 0) {
                Py_DECREF(seq);
                return -1;
            }
        }
        c->nsources = (size_t)n;
        Py_DECREF(seq);
    }
    if (lg_churn_init(c) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0);
    return 0;
}

static void Churn_dealloc(ChurnObject *self) {
    lg_churn_free(&self->churn);
    Py_XDECREF(self->request);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *churn_events(lg_churn_out *out) {
    if (out->status == ENOMEM) return PyErr_NoMemory();
    if (out->status) {
        errno = out->status;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *list = PyList_New((Py_ssize_t)out->n);
    for (size_t i = 0; list != NULL && i < out->n; i++) {
        const lg_churn_ev *e = &out->v[i];
        PyObject *item = NULL;
        switch (e->kind) {
        case LG_CONNECT_FAILED:
            item = Py_BuildValue("(iii)", e->kind, e->slot, e->err);
            break;
        case LG_FAILED:
            item = Py_BuildValue("(iisi)", e->kind, e->slot, e->what, e->err);
            break;
        case LG_ADOPT:
            item = Py_BuildValue("(iiiLLiny#L)", e->kind, e->fd, e->slot,
                                 (long long)e->start_ns, (long long)e->sent_ns, e->phase,
                                 (Py_ssize_t)e->out_off, e->data, (Py_ssize_t)e->data_len,
                                 (long long)e->t);
            break;
        default:
            item = Py_BuildValue("(iiI)", e->kind, e->fd, (unsigned)e->events);
        }
        if (item == NULL) Py_CLEAR(list);
        else PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

static PyObject *Churn_run(ChurnObject *self, PyObject *args) {
    PyObject *intended_obj;
    long long until;
    if (!PyArg_ParseTuple(args, "OL", &intended_obj, &until)) return NULL;
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError, "the core is already running");
        return NULL;
    }
    Py_buffer intended;
    if (get_int64_buffer(intended_obj, &intended, "intended") < 0) return NULL;
    lg_churn_out out = {0};
    self->running = 1;
    Py_BEGIN_ALLOW_THREADS
    lg_churn_run(&self->churn, intended.buf, (size_t)intended.len / 8, until, &out);
    Py_END_ALLOW_THREADS
    self->running = 0;
    PyBuffer_Release(&intended);
    PyObject *events = churn_events(&out);
    PyObject *result = events ? Py_BuildValue("(KN)", (unsigned long long)out.completed, events)
                              : NULL;
    lg_churn_out_free(&out);
    return result;
}

static PyObject *Churn_start(ChurnObject *self, PyObject *slots) {
    PyObject *seq = PySequence_Fast(slots, "start() takes a sequence of slots");
    if (seq == NULL) return NULL;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        long slot = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (slot == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return NULL;
        }
        if (slot < 0 || slot > INT_MAX || lg_churn_queue_start(&self->churn, (int)slot) < 0) {
            Py_DECREF(seq);
            return slot < 0 || slot > INT_MAX
                       ? PyErr_Format(PyExc_ValueError, "slot %ld out of range", slot)
                       : PyErr_NoMemory();
        }
    }
    Py_DECREF(seq);
    Py_RETURN_NONE;
}

static PyObject *Churn_schedule(ChurnObject *self, PyObject *args) {
    long long due;
    int slot;
    if (!PyArg_ParseTuple(args, "Li", &due, &slot)) return NULL;
    if (slot < 0) return PyErr_Format(PyExc_ValueError, "slot %d out of range", slot);
    if (lg_heap_push(&self->churn.heap, due, slot) < 0) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *Churn_expire(ChurnObject *self, PyObject *args) {
    long long now, connect_limit, request_limit;
    if (!PyArg_ParseTuple(args, "LLL", &now, &connect_limit, &request_limit)) return NULL;
    lg_churn_out out = {0};
    lg_churn_expire(&self->churn, now, connect_limit, request_limit, &out);
    PyObject *events = churn_events(&out);
    lg_churn_out_free(&out);
    return events;
}

static PyObject *Churn_export(ChurnObject *self, PyObject *Py_UNUSED(ignored)) {
    lg_churn_out out = {0};
    lg_churn_export(&self->churn, &out);
    PyObject *events = churn_events(&out);
    lg_churn_out_free(&out);
    return events;
}

static PyObject *Churn_inflight(ChurnObject *self, PyObject *Py_UNUSED(ignored)) {
    return PyLong_FromSize_t(self->churn.inflight);
}

static PyObject *Churn_take_opened(ChurnObject *self, PyObject *Py_UNUSED(ignored)) {
    unsigned long long n = self->churn.opened;
    self->churn.opened = 0;
    return PyLong_FromUnsignedLongLong(n);
}

static PyObject *Churn_take_counts(ChurnObject *self, PyObject *Py_UNUSED(ignored)) {
    lg_churn *c = &self->churn;
    return Py_BuildValue("(NNN)", us_counts(&c->lat_c, c->lat_c.n),
                         us_counts(&c->lat_u, c->lat_u.n), us_counts(&c->lag, c->lag.n));
}

static PyMethodDef Churn_methods[] = {
    {"run", (PyCFunction)Churn_run, METH_VARARGS,
     "run(intended, until_ns) -> (completed, events): (0, slot, errno) connect failed, "
     "(1, slot, what, errno) request failed, (2, fd, slot, start_ns, sent_ns, phase, "
     "written, data, t_ns) Python takes the connection, (3, fd, events) Python's descriptor"},
    {"start", (PyCFunction)Churn_start, METH_O, "start(slots): open these at the next run"},
    {"schedule", (PyCFunction)Churn_schedule, METH_VARARGS,
     "schedule(due_ns, slot): open the slot's next connection at due_ns"},
    {"expire", (PyCFunction)Churn_expire, METH_VARARGS,
     "expire(now, connect_limit_ns, request_limit_ns) -> events of the connections closed"},
    {"export", (PyCFunction)Churn_export, METH_NOARGS,
     "export() -> every connection the core owns, as events of kind 2 (for the drain)"},
    {"inflight", (PyCFunction)Churn_inflight, METH_NOARGS, "connections the core owns"},
    {"take_opened", (PyCFunction)Churn_take_opened, METH_NOARGS,
     "handshakes completed since the last call"},
    {"take_counts", (PyCFunction)Churn_take_counts, METH_NOARGS,
     "take_counts() -> (corrected, uncorrected, send_lag): {us: count} since the last call"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ChurnType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "loadgen._cload.ChurnCore",
    .tp_basicsize = sizeof(ChurnObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "ChurnCore(*, epoll_fd, request, http, open_loop, address, port, sources=(), "
              "source_start=0, interval_ns=0, spin_ns=SPIN_NS): a churn worker's loop",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Churn_init,
    .tp_dealloc = (destructor)Churn_dealloc,
    .tp_methods = Churn_methods,
};

static PyObject *py_http_reply(PyObject *Py_UNUSED(m), PyObject *args) {
    Py_buffer b;
    int closing = 0;
    if (!PyArg_ParseTuple(args, "y*|p", &b, &closing)) return NULL;
    enum lg_reply r = lg_http_reply_as(b.buf, (size_t)b.len, closing);
    PyBuffer_Release(&b);
    return PyLong_FromLong(r);
}

static PyObject *py_echo_reply(PyObject *Py_UNUSED(m), PyObject *args) {
    Py_buffer b, req;
    if (!PyArg_ParseTuple(args, "y*y*", &b, &req)) return NULL;
    enum lg_reply r = lg_echo_reply(b.buf, (size_t)b.len, req.buf, (size_t)req.len);
    PyBuffer_Release(&b);
    PyBuffer_Release(&req);
    return PyLong_FromLong(r);
}

static PyObject *py_wait_plan(PyObject *Py_UNUSED(m), PyObject *args) {
    long long now, due, until, spin, nap = LG_NAP_NS;
    if (!PyArg_ParseTuple(args, "LLLL|L", &now, &due, &until, &spin, &nap)) return NULL;
    int64_t ns;
    enum lg_wait w = lg_wait_plan(now, due, until, spin, nap, &ns);
    return Py_BuildValue("(iL)", (int)w, (long long)ns);
}

/* The timing measurements' set-up: room for n values and an empty epoll to sleep in
 * (its descriptor; -1 with the exception set). */
static int timing_probe(int n, int64_t **late) {
    *late = malloc((size_t)n * sizeof **late);
    if (*late == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        free(*late);
        PyErr_SetFromErrno(PyExc_OSError);
    }
    return epfd;
}

/* The n values as a list of ints (NULL on failure); frees them either way. */
static PyObject *ns_list(int64_t *v, int n) {
    PyObject *list = PyList_New(n);
    for (int i = 0; list != NULL && i < n; i++) {
        PyObject *x = PyLong_FromLongLong(v[i]);
        if (x == NULL) Py_CLEAR(list);
        else PyList_SET_ITEM(list, i, x);
    }
    free(v);
    return list;
}

/* n sends paced every interval_ns by lg_wait_plan on the real clock (no sockets):
 * how late each went (ns). The measurement behind LG_NAP_NS, for
 * benchmarks/loadgen_vs_wrk.py; nap_ns 0 sleeps straight to the spin. */
static PyObject *py_paced_lags(PyObject *Py_UNUSED(m), PyObject *args) {
    int n;
    long long interval, spin, nap;
    if (!PyArg_ParseTuple(args, "iLLL", &n, &interval, &spin, &nap)) return NULL;
    if (n <= 0 || n > 1000000 || interval <= 0 || interval >= 1000000000 || spin < 0 ||
        nap < 0) {
        PyErr_SetString(PyExc_ValueError,
                        "need 0 < n <= 1e6, 0 < interval_ns < 1e9, spin_ns >= 0, nap_ns >= 0");
        return NULL;
    }
    int64_t *late;
    int epfd = timing_probe(n, &late);
    if (epfd < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0);
    struct epoll_event ev[LG_MAX_EVENTS];
    int64_t due = lg_now() + interval;
    for (int i = 0; i < n; i++, due += interval) {
        int64_t now, ns;
        enum lg_wait w;
        while ((w = lg_wait_plan(now = lg_now(), due, INT64_MAX, spin, nap, &ns)) != LG_SEND)
            lg_wait_events(epfd, ev, w == LG_SLEEP ? ns : 0);
        late[i] = now - due;
    }
    Py_END_ALLOW_THREADS
    close(epfd);
    return ns_list(late, n);
}

static PyObject *py_next_intended(PyObject *Py_UNUSED(m), PyObject *args) {
    long long intended, interval, t;
    if (!PyArg_ParseTuple(args, "LLL", &intended, &interval, &t)) return NULL;
    int send_now;
    int64_t lag;
    int64_t next = lg_next_intended(intended, interval, t, &send_now, &lag);
    return Py_BuildValue("(LOL)", (long long)next, send_now ? Py_True : Py_False, (long long)lag);
}

/* How late epoll_pwait2 wakes after a sleep_ns timeout, n times (ns each): the
 * measurement behind LG_SPIN_NS, for benchmarks/loadgen_vs_wrk.py. */
static PyObject *py_tick_end(PyObject *Py_UNUSED(m), PyObject *args) {
    long long until, room, due;
    if (!PyArg_ParseTuple(args, "LLL", &until, &room, &due)) return NULL;
    return PyLong_FromLongLong((long long)lg_tick_end(until, room, due));
}

static PyObject *py_oversleep(PyObject *Py_UNUSED(m), PyObject *args) {
    int n;
    long long sleep_ns;
    if (!PyArg_ParseTuple(args, "iL", &n, &sleep_ns)) return NULL;
    if (n <= 0 || n > 1000000 || sleep_ns < 0 || sleep_ns >= 1000000000) {
        PyErr_SetString(PyExc_ValueError, "need 0 < n <= 1e6 and 0 <= sleep_ns < 1e9");
        return NULL;
    }
    int64_t *late;
    int epfd = timing_probe(n, &late);
    if (epfd < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0);
    struct epoll_event ev[1];
    for (int i = 0; i < n; i++) {
        int64_t t0 = lg_now();
        struct timespec ts = {.tv_sec = 0, .tv_nsec = sleep_ns};
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
        epoll_pwait2(epfd, ev, 1, &ts, NULL);
#else
        epoll_wait(epfd, ev, 1, (int)(ts.tv_nsec / 1000000));
#endif
        late[i] = lg_now() - t0 - sleep_ns;
    }
    Py_END_ALLOW_THREADS
    close(epfd);
    return ns_list(late, n);
}

static PyMethodDef module_methods[] = {
    {"http_reply", py_http_reply, METH_VARARGS,
     "http_reply(buf, closing=False) -> 0 incomplete, 1 complete (keep-alive unless "
     "closing), 2 Python decides"},
    {"echo_reply", py_echo_reply, METH_VARARGS, "echo_reply(buf, request) -> 0, 1 or 2"},
    {"wait_plan", py_wait_plan, METH_VARARGS,
     "wait_plan(now, next_due, until, spin_ns, nap_ns=NAP_NS) -> (action, ns): 0 send, "
     "1 sleep ns, 2 spin, 3 return"},
    {"paced_lags", py_paced_lags, METH_VARARGS,
     "paced_lags(n, interval_ns, spin_ns, nap_ns) -> [ns late] of n sends paced by wait_plan"},
    {"next_intended", py_next_intended, METH_VARARGS,
     "next_intended(intended, interval, t) -> (next, send_now, lag_ns)"},
    {"tick_end", py_tick_end, METH_VARARGS,
     "tick_end(until, room_ns, next_due) -> when an open-loop run with that room ends"},
    {"oversleep", py_oversleep, METH_VARARGS,
     "oversleep(n, sleep_ns) -> [ns late] of n epoll_pwait2 sleeps"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cload_module = {
    PyModuleDef_HEAD_INIT, "loadgen._cload",
    "The load generator's compiled keep-alive loop (loadgen/c/).", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cload(void) {
    if (PyType_Ready(&CoreType) < 0 || PyType_Ready(&ChurnType) < 0) return NULL;
    PyObject *m = PyModule_Create(&cload_module);
    if (m == NULL) return NULL;
    Py_INCREF(&CoreType);
    Py_INCREF(&ChurnType);
    if (PyModule_AddObject(m, "KeepAliveCore", (PyObject *)&CoreType) < 0 ||
        PyModule_AddObject(m, "ChurnCore", (PyObject *)&ChurnType) < 0 ||
        PyModule_AddIntConstant(m, "SPIN_NS", LG_SPIN_NS) < 0 ||
        PyModule_AddIntConstant(m, "NAP_HORIZON_NS", LG_NAP_HORIZON_NS) < 0 ||
        PyModule_AddIntConstant(m, "NAP_NS", LG_NAP_NS) < 0 ||
        PyModule_AddIntConstant(m, "INCOMPLETE", LG_INCOMPLETE) < 0 ||
        PyModule_AddIntConstant(m, "COMPLETE", LG_COMPLETE) < 0 ||
        PyModule_AddIntConstant(m, "DEFER", LG_DEFER) < 0 ||
        PyModule_AddStringConstant(m, "SANITIZE", SELECTBENCH_SANITIZE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
