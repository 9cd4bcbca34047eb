/* The connection handling of servers/eventloop.py, in C: accept, read, answer
 * (echo, or servers/protocol.py's HTTP through http.c), queue what the socket
 * will not take, watch for writability, close. Each function names the method
 * it mirrors; the adapters (mech_*.c) only say which descriptors are ready.
 *
 * Same design points as the Python loop: per-connection output queues with
 * write interest only while bytes are queued; reading pauses above
 * max_queued_bytes and resumes below half of it; EMFILE/ENFILE on accept
 * sheds one pending connection through a reserve descriptor, or stops
 * watching the listener until a connection closes; select's FD_SETSIZE guard
 * closes a connection numbered past it right after accept.
 *
 * A closed connection is not freed at once: it goes on a list freed after the
 * current batch of events, so no caller up the stack can touch freed memory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cloop.h"

typedef struct conn {
    int fd;
    int mask; /* interest last given to the adapter */
    unsigned paused : 1;
    unsigned closing : 1;
    unsigned closed : 1;
    char *out; /* queued output is out[out_off:out_len]; NULL when nothing is queued */
    size_t out_off, out_len, out_cap;
    cl_buf in; /* unconsumed HTTP input (an incomplete request); empty = None */
    struct conn *next_dead;
} conn;

typedef struct loop {
    const cl_config *cfg;
    const cl_mech *mech;
    void *mst;
    cl_stats *st;
    const int *stop_flag;
    int et, fd_limit;
    size_t cap, resume_below;
    int reserve_fd;
    int accept_paused;
    int stopping;
    conn **conns; /* indexed by descriptor */
    int nconns;
    conn *dead;
    cl_buf obuf; /* one read's HTTP answers */
    char rbuf[CL_RECV_BYTES];
} loop;

static void conn_read(loop *L, conn *c);
static void do_accept(loop *L);

static size_t queued(const conn *c) {
    return c->out_len - c->out_off;
}

static int open_reserve(void) {
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* _update_interest */
static void update_interest(loop *L, conn *c) {
    if (L->et) return;
    int mask = (c->paused || c->closing) ? 0 : CL_READ;
    if (queued(c)) mask |= CL_WRITE;
    if (mask != c->mask) {
        if (L->mech->modify(L->mst, c->fd, mask) < 0) CL_ADD(L->st, errors, 1);
        c->mask = mask;
    }
}

/* _resume_accepting */
static void resume_accepting(loop *L) {
    L->accept_paused = 0;
    if (L->mech->modify(L->mst, L->cfg->listen_fd, CL_READ) < 0) CL_ADD(L->st, errors, 1);
    if (L->et) do_accept(L); /* connections queued meanwhile raise no new edge */
}

/* _pause_accepting */
static void pause_accepting(loop *L) {
    if (!L->accept_paused) {
        L->accept_paused = 1;
        if (L->mech->modify(L->mst, L->cfg->listen_fd, 0) < 0) CL_ADD(L->st, errors, 1);
    }
}

static void free_out(conn *c) {
    free(c->out);
    c->out = NULL;
    c->out_off = c->out_len = c->out_cap = 0;
}

/* _close */
static void conn_close(loop *L, conn *c) {
    if (c->closed) return;
    c->closed = 1;
    L->conns[c->fd] = NULL;
    L->mech->del(L->mst, c->fd);
    CL_ADD(L->st, registered_fds, -1);
    close(c->fd);
    free_out(c);
    cl_buf_free(&c->in);
    CL_ADD(L->st, closed, 1);
    CL_ADD(L->st, current_connections, -1);
    c->next_dead = L->dead;
    L->dead = c;
    if (L->accept_paused) resume_accepting(L);
}

static void free_dead(loop *L) {
    while (L->dead) {
        conn *c = L->dead;
        L->dead = c->next_dead;
        free(c);
    }
}

/* Queue data behind what is already queued (conn.out += data). */
static int queue_out(conn *c, const char *data, size_t len) {
    if (c->out_off && c->out_off >= queued(c)) {
        /* Compact when the sent prefix is at least as long as what is left. */
        memmove(c->out, c->out + c->out_off, queued(c));
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    if (c->out_len + len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + len) cap *= 2;
        char *grown = realloc(c->out, cap);
        if (grown == NULL) return -1;
        c->out = grown;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return 0;
}

/* _send */
static void conn_send(loop *L, conn *c, const char *data, size_t len) {
    if (queued(c)) {
        if (queue_out(c, data, len) < 0) {
            CL_ADD(L->st, errors, 1);
            conn_close(L, c);
            return;
        }
    } else {
        ssize_t sent;
        do {
            sent = send(c->fd, data, len, MSG_NOSIGNAL);
        } while (sent < 0 && errno == EINTR);
        if (sent < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                CL_ADD(L->st, errors, 1);
                conn_close(L, c);
                return;
            }
            sent = 0;
        }
        CL_ADD(L->st, bytes_out, sent);
        if ((size_t)sent == len) {
            if (c->closing) conn_close(L, c);
            return;
        }
        if (queue_out(c, data + sent, len - (size_t)sent) < 0) {
            CL_ADD(L->st, errors, 1);
            conn_close(L, c);
            return;
        }
    }
    if (queued(c) >= L->cap && !c->paused) {
        c->paused = 1;
        CL_ADD(L->st, paused_reads, 1);
    }
    update_interest(L, c);
}

/* _flush */
static void conn_flush(loop *L, conn *c) {
    while (queued(c)) {
        ssize_t sent = send(c->fd, c->out + c->out_off, queued(c), MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            CL_ADD(L->st, errors, 1);
            conn_close(L, c);
            return;
        }
        CL_ADD(L->st, bytes_out, sent);
        c->out_off += (size_t)sent;
        if (!L->et) break; /* level-triggered: the next wait reports writability again */
    }
    if (!queued(c)) {
        free_out(c);
        if (c->closing) {
            conn_close(L, c);
            return;
        }
    }
    int resume = c->paused && (queued(c) == 0 || queued(c) < L->resume_below);
    if (resume) c->paused = 0;
    update_interest(L, c);
    /* Edge-triggered: bytes that arrived while paused raised no new edge; read them now. */
    if (resume && L->et) conn_read(L, c);
}

/* The HTTP branch of _read: answer what `data` completes, keep the rest. */
static void http_input(loop *L, conn *c, size_t got) {
    L->obuf.len = 0;
    cl_http_result res;
    if (cl_http_feed(&c->in, L->rbuf, got, L->cfg->max_head_bytes, L->cfg->http_close,
                     &L->obuf, &res) < 0) {
        CL_ADD(L->st, errors, 1);
        conn_close(L, c);
        return;
    }
    CL_ADD(L->st, requests, res.requests);
    if (res.close) c->closing = 1;
    if (L->obuf.len) conn_send(L, c, L->obuf.data, L->obuf.len);
    else if (c->closing) conn_close(L, c);
}

/* _read */
static void conn_read(loop *L, conn *c) {
    for (;;) {
        ssize_t got = recv(c->fd, L->rbuf, sizeof L->rbuf, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            CL_ADD(L->st, errors, 1);
            conn_close(L, c);
            return;
        }
        if (got == 0) { /* the client closed its side (EOF or half-close) */
            c->closing = 1;
            if (!queued(c)) conn_close(L, c);
            else update_interest(L, c);
            return;
        }
        CL_ADD(L->st, bytes_in, got);
        if (L->cfg->http) {
            http_input(L, c, (size_t)got);
        } else {
            CL_ADD(L->st, requests, 1);
            conn_send(L, c, L->rbuf, (size_t)got);
        }
        if (!L->et || c->closing || c->paused || c->closed) return;
    }
}

static int grow_conns(loop *L, int fd) {
    if (fd < L->nconns) return 0;
    int n = L->nconns ? L->nconns : 1024;
    while (n <= fd) n *= 2;
    conn **grown = realloc(L->conns, (size_t)n * sizeof *grown);
    if (grown == NULL) return -1;
    memset(grown + L->nconns, 0, (size_t)(n - L->nconns) * sizeof *grown);
    L->conns = grown;
    L->nconns = n;
    return 0;
}

/* _shed_one_pending: out of descriptors, accept one pending connection and close it
 * at once, so a level-triggered listener does not stay readable and spin the loop. */
static int shed_one_pending(loop *L) {
    if (L->reserve_fd < 0) {
        L->reserve_fd = open_reserve();
        if (L->reserve_fd < 0) return 0;
    }
    close(L->reserve_fd);
    L->reserve_fd = -1;
    int fd = accept4(L->cfg->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    int shed = fd >= 0;
    if (shed) close(fd);
    L->reserve_fd = open_reserve();
    return shed;
}

/* _accept */
static void do_accept(loop *L) {
    for (;;) { /* until EAGAIN: required for edge-triggered, fair for all */
        int fd = accept4(L->cfg->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (errno == EMFILE || errno == ENFILE) {
                CL_ADD(L->st, accept_emfile, 1);
                if (!shed_one_pending(L)) {
                    /* No spare descriptor to shed with: stop watching the listener
                     * until a connection closes and frees one. */
                    pause_accepting(L);
                    return;
                }
                continue;
            }
            if (errno == ECONNABORTED || errno == EPROTO || errno == EINTR) continue;
            CL_ADD(L->st, errors, 1);
            return;
        }
        if (L->fd_limit && fd >= L->fd_limit) {
            CL_ADD(L->st, rejected_fd_setsize, 1);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn *c = NULL;
        if (grow_conns(L, fd) < 0 || (c = calloc(1, sizeof *c)) == NULL ||
            L->mech->add(L->mst, fd, CL_READ) < 0) {
            free(c);
            close(fd);
            CL_ADD(L->st, errors, 1);
            continue;
        }
        c->fd = fd;
        c->mask = CL_READ;
        L->conns[fd] = c;
        CL_ADD(L->st, registered_fds, 1);
        CL_ADD(L->st, accepted, 1);
        CL_ADD(L->st, current_connections, 1);
        if (L->st->current_connections > L->st->peak_connections)
            CL_SET(L->st, peak_connections, L->st->current_connections);
    }
}

/* _drain_wakeup, plus the Python signal handler's job: the bytes are signal numbers
 * (signal.set_wakeup_fd); SIGTERM or SIGINT stops the loop after this batch. */
static void drain_wakeup(loop *L) {
    unsigned char buf[512];
    ssize_t n;
    while ((n = read(L->cfg->wake_fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] == SIGTERM || buf[i] == SIGINT) L->stopping = 1;
    if (L->stop_flag && __atomic_load_n(L->stop_flag, __ATOMIC_RELAXED)) L->stopping = 1;
}

/* _dispatch */
static void dispatch(loop *L, const cl_event *events, int n) {
    for (int i = 0; i < n; i++) {
        int fd = events[i].fd, mask = events[i].mask;
        conn *c = (fd >= 0 && fd < L->nconns) ? L->conns[fd] : NULL;
        if (c == NULL) {
            if (fd == L->cfg->listen_fd) do_accept(L);
            else if (fd == L->cfg->wake_fd) drain_wakeup(L);
            continue; /* a descriptor closed earlier in this batch */
        }
        if ((mask & CL_ERROR) && (c->closing || c->paused)) {
            /* Hang-up or error while we only wanted to write: nobody can read it. */
            conn_close(L, c);
            continue;
        }
        if ((mask & (CL_READ | CL_ERROR)) && !c->closing && !c->paused) conn_read(L, c);
        if ((mask & CL_WRITE) && queued(c) && !c->closed) conn_flush(L, c);
    }
    free_dead(L);
}

static int64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* _loop_instrumented. Wall time inside a blocking wait is mostly sleep; the thread's
 * CPU time inside it is the kernel's cost of the call. A thread CPU clock read is a
 * real system call, so it is read on a random 1 call in 8, drawn as in the Python
 * loop (sampling.c); the same statements in the same order as there. */
static int loop_instrumented(loop *L) {
    cl_stats *st = L->st;
    cl_sampler sampler;
    cl_sampler_init(&sampler, L->cfg->sample_seed);
    int countdown = cl_sampler_next_gap(&sampler);
    while (!L->stopping) {
        cl_event *events;
        int n;
        int64_t t0, t1;
        int64_t cpu = -1;
        if (--countdown) {
            t0 = clock_ns(CLOCK_MONOTONIC);
            n = L->mech->wait(L->mst, &events);
            t1 = clock_ns(CLOCK_MONOTONIC);
        } else {
            int64_t c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
            t0 = clock_ns(CLOCK_MONOTONIC);
            n = L->mech->wait(L->mst, &events);
            t1 = clock_ns(CLOCK_MONOTONIC);
            cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
            countdown = cl_sampler_next_gap(&sampler);
        }
        if (n < 0) return -1;
        cl_stats_begin(st);
        if (cpu >= 0) {
            CL_ADD(st, wait_cpu_ns, cpu);
            CL_ADD(st, wait_cpu_samples, 1);
            CL_ADD(st, wait_cpu_sample_events, n);
        }
        CL_ADD(st, wait_ns, t1 - t0);
        CL_ADD(st, wait_calls, 1);
        CL_ADD(st, wait_events, n);
        dispatch(L, events, n);
        cl_stats_end(st);
    }
    return 0;
}

/* _loop_plain: the same loop without timing, only to measure the instrumentation. */
static int loop_plain(loop *L) {
    while (!L->stopping) {
        cl_event *events;
        int n = L->mech->wait(L->mst, &events);
        if (n < 0) return -1;
        cl_stats_begin(L->st);
        dispatch(L, events, n);
        cl_stats_end(L->st);
    }
    return 0;
}

/* _shutdown, except the listener and the wake-up pipe, which the caller owns. */
static void shutdown_loop(loop *L) {
    L->accept_paused = 0; /* closing connections below must not re-arm accept */
    cl_stats_begin(L->st);
    for (int fd = 0; fd < L->nconns; fd++)
        if (L->conns[fd]) conn_close(L, L->conns[fd]);
    cl_stats_end(L->st);
    free_dead(L);
    free(L->conns);
    cl_buf_free(&L->obuf);
    if (L->mst) L->mech->destroy(L->mst);
    if (L->reserve_fd >= 0) close(L->reserve_fd);
}

/* run */
int cl_loop_run(const cl_config *cfg, cl_stats *stats, const int *stop_flag) {
    /* A descriptor that is not open fails here for every mechanism (poll would
     * otherwise report POLLNVAL forever, which no branch of dispatch handles), before
     * the reserve descriptor could take its number. */
    int listen_flags = fcntl(cfg->listen_fd, F_GETFL), wake_flags = fcntl(cfg->wake_fd, F_GETFL);
    if (listen_flags < 0 || wake_flags < 0) return -1;
    /* Both are drained until EAGAIN (run() in the Python loop: listener.setblocking(False)). */
    if (fcntl(cfg->listen_fd, F_SETFL, listen_flags | O_NONBLOCK) < 0 ||
        fcntl(cfg->wake_fd, F_SETFL, wake_flags | O_NONBLOCK) < 0)
        return -1;
    loop *L = calloc(1, sizeof *L);
    if (L == NULL) return -1;
    L->cfg = cfg;
    L->mech = cfg->mech;
    L->st = stats;
    L->stop_flag = stop_flag;
    L->et = cfg->mech->edge_triggered;
    L->fd_limit = cfg->mech->fd_limit;
    L->cap = cfg->max_queued_bytes;
    L->resume_below = cfg->max_queued_bytes / 2;
    L->reserve_fd = open_reserve();
    struct rlimit rl;
    int setsize = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (1 << 20))
        setsize = (int)rl.rlim_cur;
    int rc = -1, saved = 0;
    if (L->reserve_fd < 0 || grow_conns(L, setsize - 1) < 0) goto out;
    L->mst = L->mech->create(L->mech, setsize);
    if (L->mst == NULL) goto out;
    if (L->mech->add(L->mst, cfg->listen_fd, CL_READ) < 0) goto out;
    if (L->mech->add(L->mst, cfg->wake_fd, CL_READ) < 0) goto out;
    cl_stats_begin(stats);
    CL_SET(stats, registered_fds, 2);
    cl_stats_end(stats);
    rc = cfg->instrumentation ? loop_instrumented(L) : loop_plain(L);
out:
    saved = errno;
    shutdown_loop(L);
    free(L);
    errno = saved;
    return rc;
}

void cl_stats_read(const cl_stats *live, cl_stats *copy) {
    for (;;) {
        uint64_t before = __atomic_load_n(&live->seq, __ATOMIC_ACQUIRE);
        if (before & 1) { /* the loop is mid-iteration: let it finish */
            sched_yield();
            continue;
        }
#define CL_COPY(name) copy->name = __atomic_load_n(&live->name, __ATOMIC_RELAXED);
        CL_COUNTERS(CL_COPY)
#undef CL_COPY
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&live->seq, __ATOMIC_RELAXED) == before) {
            copy->seq = before;
            return;
        }
    }
}

/* Defined by the linker around the section CL_MECHANISM fills (cloop.h). */
extern const cl_mech *const __start_cl_mechanisms[];
extern const cl_mech *const __stop_cl_mechanisms[];

size_t cl_mech_count(void) { return (size_t)(__stop_cl_mechanisms - __start_cl_mechanisms); }

const cl_mech *cl_mech_at(size_t index) { return __start_cl_mechanisms[index]; }

const cl_mech *cl_mech_find(const char *name) {
    for (size_t i = 0; i < cl_mech_count(); i++)
        if (strcmp(cl_mech_at(i)->name, name) == 0) return cl_mech_at(i);
    return NULL;
}
