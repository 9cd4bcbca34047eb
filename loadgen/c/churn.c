/* loadgen.churn's loop in C: a new TCP connection per request.
 *
 * The core owns the connections it opens until one of them needs Python: a
 * failed connect or request (Python counts the error and reschedules the
 * slot), an answer it cannot classify alone or one that completes after the
 * run's deadline (the descriptor and its state go to Python's own loop), or
 * the end of the window (every connection goes to Python's drain). Latency,
 * uncorrected latency and send lag mean what they mean in loadgen.churn:
 * from the connect's start, or from the intended send time (open loop,
 * corrected); lag from the intended send time to the connect's start.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "cload.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

int lg_churn_init(lg_churn *c) {
    c->rbuf_len = 65536;
    c->rbuf = malloc(c->rbuf_len);
    return c->rbuf == NULL ? -1 : 0;
}

void lg_churn_free(lg_churn *c) {
    for (size_t fd = 0; fd < c->nconns; fd++) {
        if (c->conns[fd].active) close((int)fd);
        free(c->conns[fd].in);
    }
    free(c->conns);
    free(c->sources);
    free(c->source_len);
    free(c->starts);
    free(c->lat_c.v);
    free(c->lat_u.v);
    free(c->lag.v);
    lg_heap_free(&c->heap);
    free(c->rbuf);
    c->conns = NULL;
    c->sources = NULL;
    c->source_len = NULL;
    c->starts = NULL;
    c->rbuf = NULL;
    c->nconns = c->nsources = c->nstarts = c->starts_cap = c->inflight = 0;
    c->lat_c = c->lat_u = c->lag = (lg_vec){0};
}

int lg_churn_queue_start(lg_churn *c, int slot) {
    if (c->nstarts == c->starts_cap) {
        size_t cap = c->starts_cap ? c->starts_cap * 2 : 64;
        int *p = realloc(c->starts, cap * sizeof *p);
        if (p == NULL) return -1;
        c->starts = p;
        c->starts_cap = cap;
    }
    c->starts[c->nstarts++] = slot;
    return 0;
}

static lg_churn_ev *push_ev(lg_churn_out *out, int kind, int slot, int64_t t) {
    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 64;
        lg_churn_ev *v = realloc(out->v, cap * sizeof *v);
        if (v == NULL) {
            out->status = ENOMEM;
            return NULL;
        }
        out->v = v;
        out->cap = cap;
    }
    lg_churn_ev *e = &out->v[out->n++];
    *e = (lg_churn_ev){.kind = kind, .slot = slot, .fd = -1, .t = t};
    return e;
}

void lg_churn_out_free(lg_churn_out *out) {
    for (size_t i = 0; i < out->n; i++) free(out->v[i].data);
    free(out->v);
    *out = (lg_churn_out){0};
}

static lg_churn_conn *slot_conn(lg_churn *c, int fd) {
    if ((size_t)fd >= c->nconns) {
        size_t n = (size_t)fd + 1 > 2 * c->nconns ? (size_t)fd + 1 : 2 * c->nconns;
        lg_churn_conn *p = realloc(c->conns, n * sizeof *p);
        if (p == NULL) return NULL;
        memset(p + c->nconns, 0, (n - c->nconns) * sizeof *p);
        c->conns = p;
        c->nconns = n;
    }
    return &c->conns[fd];
}

/* The connection leaves the core: closed (close_fd) or handed to Python. */
static void release(lg_churn *c, int fd, int close_fd) {
    lg_churn_conn *k = &c->conns[fd];
    if (close_fd) close(fd); /* close also removes it from the epoll set */
    k->active = 0;
    k->in_len = 0;
    c->inflight--;
}

static void failed(lg_churn *c, int fd, const char *what, int err, int64_t t,
                   lg_churn_out *out) {
    int slot = c->conns[fd].slot;
    release(c, fd, 1);
    lg_churn_ev *e = push_ev(out, LG_FAILED, slot, t);
    if (e) {
        e->what = what;
        e->err = err;
    }
}

/* Open the slot's next connection; a failure is an event (Python retries later). */
static void start_slot(lg_churn *c, int slot, lg_churn_out *out) {
    int64_t t = lg_now();
    int fd = socket(c->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err = fd < 0 ? errno : 0;
    if (!err) {
        int one = 1;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) err = errno;
    }
    if (!err && c->nsources) {
        size_t i = c->source_i++ % c->nsources;
        int one = 1;
        if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) < 0 ||
            bind(fd, (struct sockaddr *)&c->sources[i], c->source_len[i]) < 0)
            err = errno;
    }
    if (!err && connect(fd, (struct sockaddr *)&c->target, c->target_len) < 0 &&
        errno != EINPROGRESS)
        err = errno;
    lg_churn_conn *k = err ? NULL : slot_conn(c, fd);
    if (!err && k == NULL) err = ENOMEM;
    if (!err) {
        struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
        if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) err = errno;
    }
    if (err) {
        if (fd >= 0) close(fd);
        lg_churn_ev *e = push_ev(out, LG_CONNECT_FAILED, slot, t);
        if (e) e->err = err;
        return;
    }
    *k = (lg_churn_conn){.active = 1, .phase = LG_CONNECTING, .slot = slot, .start_ns = t,
                         .in = k->in, .in_cap = k->in_cap};
    c->inflight++;
}

/* After a complete answer: the slot's next request (loadgen.churn next_for_slot). */
static void next_for_slot(lg_churn *c, int slot, int64_t *intended, int64_t t,
                          lg_churn_out *out) {
    if (!c->open_loop) {
        start_slot(c, slot, out);
        return;
    }
    int send_now;
    int64_t lag;
    intended[slot] = lg_next_intended(intended[slot], c->interval, t, &send_now, &lag);
    if (!send_now) {
        if (lg_heap_push(&c->heap, intended[slot], slot) < 0) out->status = ENOMEM;
        return;
    }
    if (lg_vec_push(&c->lag, lag) < 0) {
        out->status = ENOMEM;
        return;
    }
    start_slot(c, slot, out);
}

static void write_request(lg_churn *c, int fd, lg_churn_conn *k, int64_t t, lg_churn_out *out) {
    ssize_t n = write(fd, c->req + k->out_off, c->req_len - k->out_off);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            failed(c, fd, "send_error", errno, t, out);
            return;
        }
        n = 0;
    }
    k->out_off += (size_t)n;
    k->phase = k->out_off < c->req_len ? LG_SENDING : LG_WAITING;
    struct epoll_event ev = {.events = k->phase == LG_SENDING ? EPOLLIN | EPOLLOUT : EPOLLIN,
                             .data.fd = fd};
    if (epoll_ctl(c->epfd, EPOLL_CTL_MOD, fd, &ev) < 0) failed(c, fd, "send_error", errno, t, out);
}

static int append(lg_churn_conn *k, const char *p, size_t n) {
    if (k->in_len + n > k->in_cap) {
        size_t cap = k->in_cap ? k->in_cap : 1024;
        while (cap < k->in_len + n) cap *= 2;
        char *q = realloc(k->in, cap);
        if (q == NULL) return -1;
        k->in = q;
        k->in_cap = cap;
    }
    memcpy(k->in + k->in_len, p, n);
    k->in_len += n;
    return 0;
}

/* Python takes the connection with the bytes read so far (data). */
static void adopt(lg_churn *c, int fd, const char *data, size_t len, int64_t t,
                  lg_churn_out *out) {
    lg_churn_conn *k = &c->conns[fd];
    lg_churn_ev *e = push_ev(out, LG_ADOPT, k->slot, t);
    if (e == NULL) return;
    e->fd = fd;
    e->phase = k->phase;
    e->start_ns = k->start_ns;
    e->sent_ns = k->sent_ns;
    e->out_off = k->out_off;
    e->data = malloc(len ? len : 1);
    if (e->data == NULL) {
        out->status = ENOMEM;
        return;
    }
    if (len) memcpy(e->data, data, len);
    e->data_len = len;
    release(c, fd, 0);
}

static void on_event(lg_churn *c, const struct epoll_event *ev, int64_t *intended,
                     size_t nintended, int64_t until, lg_churn_out *out) {
    int fd = ev->data.fd;
    int64_t t = lg_now();
    if (fd < 0 || (size_t)fd >= c->nconns || !c->conns[fd].active) {
        lg_churn_ev *e = push_ev(out, LG_FOREIGN, -1, t);
        if (e) {
            e->fd = fd;
            e->events = ev->events;
        }
        return;
    }
    lg_churn_conn *k = &c->conns[fd];
    if (k->phase == LG_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
        if (err || (ev->events & (EPOLLERR | EPOLLHUP))) {
            int slot = k->slot;
            release(c, fd, 1);
            lg_churn_ev *e = push_ev(out, LG_CONNECT_FAILED, slot, t);
            if (e) e->err = err ? err : ECONNRESET;
            return;
        }
        c->opened++;
        k->sent_ns = t;
        write_request(c, fd, k, t, out);
        return;
    }
    if (k->phase == LG_SENDING && (ev->events & EPOLLOUT)) {
        write_request(c, fd, k, t, out);
        if (!k->active) return;
    }
    if (!(ev->events & (EPOLLIN | EPOLLERR | EPOLLHUP))) return;
    ssize_t n = read(fd, c->rbuf, c->rbuf_len);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) failed(c, fd, "unexpected_close", errno, t, out);
        return;
    }
    if (n == 0) {
        failed(c, fd, "unexpected_close", 0, t, out);
        return;
    }
    if (append(k, c->rbuf, (size_t)n) < 0) {
        out->status = ENOMEM;
        return;
    }
    enum lg_reply r = c->http ? lg_http_reply_as(k->in, k->in_len, 1)
                              : lg_echo_reply(k->in, k->in_len, c->req, c->req_len);
    if (r == LG_INCOMPLETE) return;
    if (r != LG_COMPLETE || t >= until || (size_t)k->slot >= nintended) {
        adopt(c, fd, k->in, k->in_len, t, out);
        return;
    }
    int slot = k->slot;
    int64_t start = k->start_ns;
    release(c, fd, 1);
    out->completed++;
    if (lg_vec_push(&c->lat_c, t - (c->open_loop ? intended[slot] : start)) < 0 ||
        (c->open_loop && lg_vec_push(&c->lat_u, t - start) < 0)) {
        out->status = ENOMEM;
        return;
    }
    next_for_slot(c, slot, intended, t, out);
}

void lg_churn_run(lg_churn *c, int64_t *intended, size_t nintended, int64_t until,
                  lg_churn_out *out) {
    struct epoll_event ev[LG_MAX_EVENTS];
    out->completed = 0;
    out->status = 0;
    for (size_t i = 0; i < c->nstarts && !out->status; i++) start_slot(c, c->starts[i], out);
    c->nstarts = 0;
    while (out->n == 0 && !out->status) {
        int64_t now = lg_now(), ns;
        int64_t next_due = c->heap.n ? c->heap.v[0].due : INT64_MAX;
        enum lg_wait plan = lg_wait_plan(now, next_due, until, c->spin_ns, LG_NAP_NS, &ns);
        if (plan == LG_UNTIL) break;
        if (plan == LG_SEND) {
            int slot = lg_heap_pop(&c->heap).fd;
            if (c->open_loop && (size_t)slot < nintended &&
                lg_vec_push(&c->lag, lg_now() - intended[slot]) < 0)
                out->status = ENOMEM;
            else
                start_slot(c, slot, out);
            continue;
        }
        int n = lg_wait_events(c->epfd, ev, ns);
        if (n < 0) {
            out->status = errno;
            break;
        }
        for (int i = 0; i < n && !out->status; i++)
            on_event(c, &ev[i], intended, nintended, until, out);
    }
}

void lg_churn_expire(lg_churn *c, int64_t now, int64_t connect_limit, int64_t request_limit,
                     lg_churn_out *out) {
    for (size_t fd = 0; fd < c->nconns && !out->status; fd++) {
        lg_churn_conn *k = &c->conns[fd];
        if (!k->active) continue;
        if (k->phase == LG_CONNECTING && now - k->start_ns > connect_limit) {
            int slot = k->slot;
            release(c, (int)fd, 1);
            lg_churn_ev *e = push_ev(out, LG_CONNECT_FAILED, slot, now);
            if (e) e->err = ETIMEDOUT;
        } else if (k->phase != LG_CONNECTING && now - k->sent_ns > request_limit) {
            failed(c, (int)fd, "timeout", 0, now, out);
        }
    }
}

void lg_churn_export(lg_churn *c, lg_churn_out *out) {
    for (size_t fd = 0; fd < c->nconns && !out->status; fd++)
        if (c->conns[fd].active)
            adopt(c, (int)fd, c->conns[fd].in, c->conns[fd].in_len, lg_now(), out);
    c->heap.n = 0;
}
