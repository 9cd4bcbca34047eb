/* The keep-alive worker's loop in C: epoll, read, decide, record, send.
 *
 * Runs over the Python worker's own epoll descriptor and its per-descriptor
 * arrays (alive, sent, intended; loadgen.keepalive_c), so Python's slow path
 * sees the state it would have kept itself. Each run ends at `until` (the
 * worker's next tick), after `max_completed` answers, or after an epoll batch
 * in which something was handed to Python; nothing in it touches Python
 * objects, so the binding releases the GIL for all of it.
 *
 * Timing (open loop): block in epoll_pwait2 (nanosecond timeout, 1 ns timer
 * slack) until SPIN_NS (50 us) before the next intended send, then poll epoll
 * without blocking until the send is due. Sleeping alone (the Python loop's timerfd) puts
 * the whole wake-up error into every send lag: on this project's 2-CPU VM, open loop
 * at 1,000 req/s over 8 and 100 connections, the send lag's p50 was 37-40 us with
 * the Python loop and 0 us with this one (benchmarks/loadgen_vs_wrk.py --quick
 * --lag-cores c,python, which prints the wake-up measurement for its machine).
 *
 * A long sleep wakes late more often than a short one: the hypervisor deschedules a
 * vCPU that stays halted, and waking it takes longer. So the long sleep ends
 * NAP_HORIZON_NS (300 us) before the spin and the rest is slept in naps of at most
 * NAP_NS (100 us), 3 or 4 more wake-ups per send. Measured on this VM (2026-12-06,
 * 3,000 sends at 1 ms, pinned, a C copy of this plan): a single sleep to the 50 us spin
 * sent 603, 11, 19, 23 and 13 of 3,000 sends more than 25 us late in five rounds (p99
 * 219 us in the first, when the host was busy); with the naps, 3, 2, 8, 7 and 0. A
 * 300 us spin and no naps did about as well (3, 2, 0 in the last three) at six times the
 * CPU per send. loadgen._cload.paced_lags runs this plan on the real clock
 * (benchmarks/loadgen_vs_wrk.py prints it with and without naps). In default runs
 * before the naps, 6-9 of 63 open-loop trials (450 sends each) had a send-lag p99 of
 * 100-300 us while the others had 0-2 us: a few late wake-ups are that p99. The spin is
 * waiting, not work: it is counted with the polling (polled_ns) and left out of the
 * busy fraction. A clock read costs 40 ns.
 *
 * A tick (Python's work between two runs) takes 0.26-0.65 ms, and a send due meanwhile
 * waited for it. With room_ns > 0 (open loop, every tick but the window's end;
 * loadgen.keepalive_c.TICK_ROOM_NS) a run makes the send due within room_ns after its
 * tick before it returns (lg_tick_end), records what comes after the tick past a mark,
 * and the tick takes only what came before it.
 *
 * Closed loop, poll_ns > 0 (the default, loadgen.core.DEFAULT_POLL_NS): poll epoll
 * without blocking for up to poll_ns before blocking. A client asleep in epoll_wait is
 * woken by the server's send, and on this VM (no cpuidle driver: an idle vCPU halts) that
 * wake-up is paid on the server's CPU. Measured 2026-12-06 against the Python epoll
 * server, 100 connections, one core each, 3 x 3 s: blocking at once, the core slept
 * 0.42-0.74 times per answer and the server spent 8.3-11.5 us of CPU per request (86-119
 * k req/s); polling 30 us first, 0.01 sleeps per answer, 8.2-8.5 us, 116-121 k req/s.
 * The time spent polling is counted (polled_ns: up to the last empty poll) so that the
 * worker's busy fraction and CPU per request leave the waiting out.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "cload.h"

#define READ_SIZE 65536 /* loadgen.worker_base.READ_SIZE */

int64_t lg_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int lg_vec_push(lg_vec *v, int64_t x) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4096;
        int64_t *p = realloc(v->v, cap * sizeof *p);
        if (p == NULL) return -1;
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = x;
    return 0;
}

int lg_core_init(lg_core *c) {
    c->rbuf_len = READ_SIZE;
    c->rbuf = malloc(c->rbuf_len);
    return c->rbuf == NULL ? -1 : 0;
}

static void conn_clear(lg_conn *k) {
    free(k->in);
    free(k->out);
    *k = (lg_conn){0};
}

void lg_core_free(lg_core *c) {
    for (size_t i = 0; i < c->nconns; i++) conn_clear(&c->conns[i]);
    free(c->conns);
    free(c->lat_c.v);
    free(c->lat_u.v);
    free(c->lag.v);
    lg_heap_free(&c->heap);
    free(c->rbuf);
    c->conns = NULL;
    c->nconns = 0;
    c->lat_c = c->lat_u = c->lag = (lg_vec){0};
    c->rbuf = NULL;
}

static lg_conn *conn_at(lg_core *c, int fd) {
    if (fd < 0) return NULL;
    if ((size_t)fd >= c->nconns) {
        size_t n = (size_t)fd + 1 > 2 * c->nconns ? (size_t)fd + 1 : 2 * c->nconns;
        lg_conn *p = realloc(c->conns, n * sizeof *p);
        if (p == NULL) return NULL;
        memset(p + c->nconns, 0, (n - c->nconns) * sizeof *p);
        c->conns = p;
        c->nconns = n;
    }
    return &c->conns[fd];
}

void lg_core_forget(lg_core *c, int fd) {
    if (fd >= 0 && (size_t)fd < c->nconns) conn_clear(&c->conns[fd]);
}

static int append_in(lg_conn *k, const char *p, size_t n) {
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

int lg_core_set_partial(lg_core *c, int fd, const char *p, size_t n) {
    lg_conn *k = conn_at(c, fd);
    if (k == NULL) return -1;
    k->in_len = 0;
    return append_in(k, p, n);
}

int lg_core_set_out(lg_core *c, int fd, const char *p, size_t n) {
    lg_conn *k = conn_at(c, fd);
    if (k == NULL) return -1;
    free(k->out);
    k->out = NULL;
    k->out_len = k->out_off = 0;
    if (n == 0) return 0;
    k->out = malloc(n);
    if (k->out == NULL) return -1;
    memcpy(k->out, p, n);
    k->out_len = n;
    return 0;
}

static char *copy(const char *p, size_t n) {
    char *q = malloc(n ? n : 1);
    if (q != NULL && n) memcpy(q, p, n);
    return q;
}

/* Hand fd to Python: the bytes it has not seen and the request's unsent rest go with it,
 * and the core keeps nothing of it. */
static int hand_back(lg_core *c, lg_run_out *out, int fd, int err, int read, int64_t t,
                     const char *data, size_t len) {
    lg_handback *h = &out->hb[out->nhb++];
    *h = (lg_handback){.fd = fd, .err = err, .read = read, .t = t};
    if (read) {
        h->data = copy(data, len);
        h->data_len = len;
        if (h->data == NULL) return -1;
    }
    if (fd >= 0 && (size_t)fd < c->nconns) {
        lg_conn *k = &c->conns[fd];
        if (read && len == 0 && k->in_len) { /* EOF: what came before it, as a partial */
            h->partial = copy(k->in, k->in_len);
            h->partial_len = k->in_len;
            if (h->partial == NULL) return -1;
        }
        if (k->out != NULL && k->out_off < k->out_len) {
            h->rest = copy(k->out + k->out_off, k->out_len - k->out_off);
            h->rest_len = k->out_len - k->out_off;
            if (h->rest == NULL) return -1;
        }
        conn_clear(k);
    }
    return 0;
}

void lg_run_out_free(lg_run_out *out) {
    for (size_t i = 0; i < out->nhb; i++) {
        free(out->hb[i].partial);
        free(out->hb[i].data);
        free(out->hb[i].rest);
    }
    out->nhb = 0;
}

static int set_events(lg_core *c, int fd, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.fd = fd};
    return epoll_ctl(c->epfd, EPOLL_CTL_MOD, fd, &ev);
}

/* Write the rest of a request; 0 done or waiting for EPOLLOUT, else an errno. */
static int flush_out(lg_core *c, int fd, lg_conn *k) {
    while (k->out_off < k->out_len) {
        ssize_t n = write(fd, k->out + k->out_off, k->out_len - k->out_off);
        if (n < 0) return errno == EAGAIN || errno == EINTR ? 0 : errno;
        k->out_off += (size_t)n;
    }
    free(k->out);
    k->out = NULL;
    k->out_len = k->out_off = 0;
    return set_events(c, fd, EPOLLIN) < 0 ? errno : 0;
}

/* Send the request on fd; 0, or an errno (then the fd goes back to Python). */
static int send_request(lg_core *c, int fd) {
    ssize_t n = write(fd, c->req, c->req_len);
    if (n == (ssize_t)c->req_len) return 0;
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) return errno;
        n = 0;
    }
    /* Short write (a large echo payload): finish it when the socket is writable. */
    if (lg_core_set_out(c, fd, c->req + n, c->req_len - (size_t)n) < 0) return ENOMEM;
    return set_events(c, fd, EPOLLIN | EPOLLOUT) < 0 ? errno : 0;
}

int lg_wait_events(int epfd, struct epoll_event *ev, int64_t ns) {
    int n;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    n = epoll_pwait2(epfd, ev, LG_MAX_EVENTS, &ts, NULL);
    if (n >= 0 || errno != ENOSYS) return n < 0 && errno == EINTR ? 0 : n;
#endif
    /* Whole milliseconds, rounded down: the spin covers the rest. */
    n = epoll_wait(epfd, ev, LG_MAX_EVENTS, (int)(ns / 1000000));
    return n < 0 && errno == EINTR ? 0 : n;
}

static int owned(const lg_state *s, int fd) {
    return fd >= 0 && (size_t)fd < s->nalive && (size_t)fd < s->nstate && s->alive[fd];
}

/* A run that may go on past its tick (room_ns): what is recorded from t on belongs to the
 * interval after the tick (take_counts takes the entries before the mark). */
static void mark_tick(lg_core *c, int64_t t) {
    if (c->room_ns <= 0 || c->marked || t < c->until) return;
    c->marked = 1;
    c->mark_c = c->lat_c.n;
    c->mark_u = c->lat_u.n;
    c->mark_lag = c->lag.n;
}

/* One answer arrived whole on fd at t (sent[fd] != 0): record it, send the next. */
static int answered(lg_core *c, lg_state *s, int fd, int64_t t) {
    mark_tick(c, t);
    if (!c->open_loop) {
        if (lg_vec_push(&c->lat_c, t - s->sent[fd]) < 0) return ENOMEM;
        s->sent[fd] = t;
        return send_request(c, fd);
    }
    if (lg_vec_push(&c->lat_c, t - s->intended[fd]) < 0 ||
        lg_vec_push(&c->lat_u, t - s->sent[fd]) < 0)
        return ENOMEM;
    int send_now;
    int64_t lag;
    int64_t next = lg_next_intended(s->intended[fd], c->interval, t, &send_now, &lag);
    s->intended[fd] = next;
    if (!send_now) {
        s->sent[fd] = 0;
        return lg_heap_push(&c->heap, next, fd) < 0 ? ENOMEM : 0;
    }
    if (lg_vec_push(&c->lag, lag) < 0) return ENOMEM;
    s->sent[fd] = t;
    return send_request(c, fd);
}

/* One epoll event; -1 when out of memory. */
static int on_event(lg_core *c, lg_state *s, const struct epoll_event *ev, int64_t until,
                    lg_run_out *out) {
    int fd = ev->data.fd;
    if (!owned(s, fd)) return hand_back(c, out, fd, 0, 0, lg_now(), NULL, 0);
    lg_conn *k = conn_at(c, fd);
    if (k == NULL) return -1;
    if ((ev->events & (EPOLLOUT | EPOLLERR)) && k->out != NULL) {
        int err = flush_out(c, fd, k);
        if (err) return hand_back(c, out, fd, err, 0, lg_now(), NULL, 0);
    }
    if (!(ev->events & (EPOLLIN | EPOLLERR | EPOLLHUP))) return 0;
    ssize_t n = read(fd, c->rbuf, c->rbuf_len);
    int64_t t = lg_now();
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return 0;
        return hand_back(c, out, fd, errno, 0, t, NULL, 0);
    }
    if (n == 0) return hand_back(c, out, fd, 0, 1, t, NULL, 0);
    const char *buf = c->rbuf;
    size_t len = (size_t)n;
    if (k->in_len) {
        if (append_in(k, buf, len) < 0) return -1;
        buf = k->in;
        len = k->in_len;
    }
    enum lg_reply r = c->http ? lg_http_reply(buf, len) : lg_echo_reply(buf, len, c->req, c->req_len);
    if (r == LG_INCOMPLETE && s->sent[fd]) {
        if (buf == c->rbuf && append_in(k, buf, len) < 0) return -1;
        return 0;
    }
    /* After the tick, an answer is Python's unless the run goes on past it (room_ns): then
     * it is recorded after the tick's mark. */
    if (r != LG_COMPLETE || !s->sent[fd] || (t >= until && c->room_ns <= 0)) {
        /* Python's slow path gets all the bytes, the partial included. */
        int rc = hand_back(c, out, fd, 0, 1, t, buf, len);
        return rc;
    }
    k->in_len = 0;
    out->completed++;
    int err = answered(c, s, fd, t);
    if (err == ENOMEM) return -1;
    if (err) return hand_back(c, out, fd, err, 0, t, NULL, 0);
    return 0;
}

/* The sends that are due, each at the clock's reading just before its write. */
static int send_due(lg_core *c, lg_state *s, lg_run_out *out) {
    lg_slot slot = lg_heap_pop(&c->heap);
    int fd = slot.fd;
    /* An entry for a connection that closed or was rescheduled by Python is stale. */
    if (!owned(s, fd) || s->intended[fd] != slot.due || s->sent[fd]) return 0;
    int64_t t = lg_now();
    mark_tick(c, t);
    if (lg_vec_push(&c->lag, t - slot.due) < 0) return -1;
    s->sent[fd] = t;
    int err = send_request(c, fd);
    if (err == ENOMEM) return -1;
    return err ? hand_back(c, out, fd, err, 0, t, NULL, 0) : 0;
}

/* The heap from the state: every live connection waiting for its intended send time. */
static int build_heap(lg_core *c, const lg_state *s) {
    c->heap.n = 0;
    size_t n = s->nalive < s->nstate ? s->nalive : s->nstate;
    for (size_t fd = 0; fd < n; fd++)
        if (s->alive[fd] && !s->sent[fd] && s->intended[fd] &&
            lg_heap_push(&c->heap, s->intended[fd], (int)fd) < 0)
            return -1;
    return 0;
}

void lg_core_run(lg_core *c, lg_state *s, int64_t until, uint64_t max_completed,
                 lg_run_out *out) {
    struct epoll_event ev[LG_MAX_EVENTS];
    out->nhb = 0;
    out->completed = 0;
    out->status = 0;
    c->until = until;
    c->marked = 0; /* a mark the worker did not take: its intervals are one */
    if (c->open_loop && build_heap(c, s) < 0) {
        out->status = ENOMEM;
        return;
    }
    while (out->nhb == 0 && (max_completed == 0 || out->completed < max_completed)) {
        int64_t now = lg_now();
        int64_t ns;
        if (c->open_loop) {
            int64_t next_due = c->heap.n ? c->heap.v[0].due : INT64_MAX;
            int64_t end = lg_tick_end(until, c->room_ns, next_due);
            enum lg_wait plan = lg_wait_plan(now, next_due, end, c->spin_ns, LG_NAP_NS, &ns);
            if (plan == LG_UNTIL) break;
            if (plan == LG_SEND) {
                if (send_due(c, s, out) < 0) out->status = ENOMEM;
                if (out->status) break;
                continue;
            }
        } else {
            if (now >= until) break;
            ns = until - now;
        }
        int n = 0;
        if (!c->open_loop && c->poll_ns > 0) {
            int64_t stop = now + (c->poll_ns < ns ? c->poll_ns : ns), polled = now;
            while ((n = epoll_wait(c->epfd, ev, LG_MAX_EVENTS, 0)) == 0 &&
                   (polled = lg_now()) < stop) {
            }
            if (n < 0) n = errno == EINTR ? 0 : n;
            /* Up to the last empty poll: the worker waited, it did no work. */
            c->polled_ns += polled - now;
        }
        if (n == 0) n = lg_wait_events(c->epfd, ev, ns);
        /* A spin's empty poll: waiting for the send, not work. */
        if (c->open_loop && n == 0 && ns == 0) c->polled_ns += lg_now() - now;
        if (n < 0) {
            out->status = errno;
            break;
        }
        for (int i = 0; i < n && !out->status; i++)
            if (on_event(c, s, &ev[i], until, out) < 0) out->status = ENOMEM;
        if (out->status) break;
    }
    /* Everything so far came before the tick if the tick has passed. */
    mark_tick(c, lg_now());
}
