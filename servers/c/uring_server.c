/* The io_uring completion server (backend c-uring): the connection handling of
 * servers/eventloop.py and loop.c, driven by completions instead of readiness.
 *
 * Every socket operation is a submission whose result comes back as a completion:
 * - the listener has one multishot accept: one completion per new connection;
 * - each connection has one multishot receive that takes its buffer from a ring of
 *   provided buffers (IOSQE_BUFFER_SELECT): one completion per chunk received, and no
 *   system call per read;
 * - output leaves as IORING_OP_SEND submissions, at most one in flight per connection so
 *   the bytes keep their order; a short send is resubmitted for the rest, and what the
 *   protocol answers meanwhile waits in a second buffer;
 * - the wake-up pipe (signals, Loop.stop()) has a multishot poll.
 * One pass of the loop is one io_uring_enter that submits what the last pass queued and
 * waits for a completion: the counters' wait call. Their events are completions.
 *
 * The design points of loop.c, translated:
 * - backpressure: above max_queued_bytes of unsent output the connection's receive is
 *   cancelled (reading pauses) and re-armed once below half of it;
 * - out of descriptors: the kernel allocates the descriptor before it looks for a
 *   connection, so a multishot accept at the limit ends at once with EMFILE, with or
 *   without a pending connection. The pending ones are shed through the reserve
 *   descriptor with accept4, as loop.c does, and when none is left the accept is not
 *   re-armed until a connection closes (re-arming would fail at once again: a spin);
 * - closing cancels the connection's operations by their user_data and closes its
 *   descriptor; its memory is freed only after its last completion arrived (a send in
 *   flight reads its buffer until then), and never in the middle of a batch.
 * The HTTP answers come from http.c (cl_http_feed, as in loop.c).
 */
#define _GNU_SOURCE
#include "curing.h"

#if defined(__has_include)
#if __has_include(<liburing.h>)
#define CL_HAVE_LIBURING 1
#endif
#endif

#ifdef CL_HAVE_LIBURING
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Submission queue entries; the completion queue gets four times as many, so a full
 * pass of completions (CL_MAX_EVENTS) never waits for room. */
#define CLU_ENTRIES 2048
/* The provided buffers, shared by every connection. They are reused in ring order, so all
 * of them become resident: 1024 x 1 KiB = 1 MiB (the load generator's messages are 64 B
 * and HTTP heads fit) keeps the server's memory well inside the 8 MiB bounds of the
 * head and backpressure tests, also under AddressSanitizer (with 4 KiB buffers, and output
 * storage freed at every drain, the backpressure test's RSS grew 10-13.6 MiB there); 1024
 * lets that many connections' data land in one pass before a receive runs out
 * (ENOBUFS, then re-armed). */
#define CLU_BUF_BYTES 1024
#define CLU_BUFS 1024
#define CLU_BGID 0
/* Output storage a connection keeps once everything has left (see drained()): freeing
 * above 64 KiB let ASan's quarantine grow the backpressure test's RSS to 4.6-6.3 MiB, at
 * 256 KiB 4.2-5.5 MiB (six runs each). */
#define CLU_KEEP_BYTES (256 << 10)
/* How long the shutdown waits for the cancelled operations' last completions. */
#define CLU_DRAIN_NS 10000000000LL

/* user_data = pointer | operation: malloc'd pointers leave the low 3 bits free. */
enum { OP_ACCEPT = 1, OP_WAKE, OP_RECV, OP_SEND, OP_CANCEL };
#define OP_MASK 7u
_Static_assert(alignof(max_align_t) >= 8, "user_data needs 3 free pointer bits");

typedef struct uconn {
    int fd;
    int ops; /* submissions whose last completion has not arrived */
    unsigned receiving : 1;   /* the multishot receive is armed */
    unsigned cancelling : 1;  /* a cancel of that receive is in flight */
    unsigned sending : 1;     /* a send of out[out_sent:] is in flight */
    unsigned paused : 1;      /* above the queue cap: not receiving */
    unsigned closing : 1;     /* close once the output has left; read nothing more */
    unsigned closed : 1;      /* descriptor closed, waiting for its last completions */
    unsigned free_queued : 1; /* on the dead list */
    cl_buf out;               /* what the send in flight reads: it must not move */
    size_t out_sent;
    cl_buf next; /* answers produced while a send is in flight, sent after out */
    cl_buf in;   /* unconsumed HTTP input (an incomplete request) */
    struct uconn *next_dead;
} uconn;

typedef struct uloop {
    const cl_config *cfg;
    cl_stats *st;
    const int *stop_flag;
    struct io_uring ring;
    int ring_ready;
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    char *bufs;
    int br_registered;
    size_t cap, resume_below;
    int reserve_fd;
    int accepting;     /* the multishot accept is armed */
    int accept_paused; /* out of descriptors: not re-armed until a connection closes */
    int watching_wake; /* the wake-up pipe's multishot poll is armed */
    int stopping;
    int fatal; /* errno that ends the loop (the listener failed, no submission slot) */
    int ops;   /* submissions in flight, for the drain at shutdown */
    uconn **conns; /* live connections, indexed by descriptor */
    int nconns;
    uconn *dead;
    cl_buf obuf; /* one read's HTTP answers */
} uloop;

static uint64_t user_data(const void *ptr, unsigned op) {
    return (uint64_t)(uintptr_t)ptr | op;
}

static size_t queued(const uconn *c) {
    return c->out.len - c->out_sent + c->next.len;
}

static int open_reserve(void) {
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* A free submission slot. A full queue is handed to the kernel first: an io_uring_enter
 * like the pass's own, so it is counted as a wait call when calls are counted. */
static struct io_uring_sqe *get_sqe(uloop *L) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&L->ring);
    if (sqe != NULL) return sqe;
    io_uring_submit(&L->ring);
    if (L->cfg->instrumentation) CL_ADD(L->st, wait_calls, 1);
    sqe = io_uring_get_sqe(&L->ring);
    if (sqe == NULL && !L->fatal) L->fatal = EBUSY;
    return sqe;
}

static void arm_accept(uloop *L) {
    struct io_uring_sqe *sqe = get_sqe(L);
    if (sqe == NULL) return;
    io_uring_prep_multishot_accept(sqe, L->cfg->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, user_data(NULL, OP_ACCEPT));
    L->accepting = 1;
    L->ops++;
}

static void arm_wake(uloop *L) {
    struct io_uring_sqe *sqe = get_sqe(L);
    if (sqe == NULL) return;
    io_uring_prep_poll_multishot(sqe, L->cfg->wake_fd, POLLIN);
    io_uring_sqe_set_data64(sqe, user_data(NULL, OP_WAKE));
    L->watching_wake = 1;
    L->ops++;
}

/* Cancel the submission whose user_data is `target`; its own completion counts for c. */
static int cancel(uloop *L, uconn *c, uint64_t target) {
    struct io_uring_sqe *sqe = get_sqe(L);
    if (sqe == NULL) return -1;
    io_uring_prep_cancel64(sqe, target, 0);
    io_uring_sqe_set_data64(sqe, user_data(c, OP_CANCEL));
    if (c) c->ops++;
    L->ops++;
    return 0;
}

static int arm_recv(uloop *L, uconn *c) {
    struct io_uring_sqe *sqe = get_sqe(L);
    if (sqe == NULL) return -1;
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = CLU_BGID;
    io_uring_sqe_set_data64(sqe, user_data(c, OP_RECV));
    c->receiving = 1;
    c->ops++;
    L->ops++;
    return 0;
}

static int submit_send(uloop *L, uconn *c) {
    struct io_uring_sqe *sqe = get_sqe(L);
    if (sqe == NULL) return -1;
    io_uring_prep_send(sqe, c->fd, c->out.data + c->out_sent, c->out.len - c->out_sent,
                       MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, user_data(c, OP_SEND));
    c->sending = 1;
    c->ops++;
    L->ops++;
    return 0;
}

/* Stop reading from c: its multishot receive ends with a last completion. */
static void stop_receiving(uloop *L, uconn *c) {
    if (c->receiving && !c->cancelling && cancel(L, c, user_data(c, OP_RECV)) == 0)
        c->cancelling = 1;
}

static void queue_free(uloop *L, uconn *c) {
    if (c->closed && c->ops == 0 && !c->free_queued) {
        c->free_queued = 1;
        c->next_dead = L->dead;
        L->dead = c;
    }
}

static void free_dead(uloop *L) {
    while (L->dead) {
        uconn *c = L->dead;
        L->dead = c->next_dead;
        cl_buf_free(&c->out);
        free(c);
    }
}

/* _resume_accepting */
static void resume_accepting(uloop *L) {
    L->accept_paused = 0;
    if (!L->accepting && !L->stopping) arm_accept(L);
}

/* _close */
static void conn_close(uloop *L, uconn *c) {
    if (c->closed) return;
    c->closed = 1;
    L->conns[c->fd] = NULL;
    /* Closing the descriptor alone would not end the operations: each holds the socket. */
    stop_receiving(L, c);
    if (c->sending) cancel(L, c, user_data(c, OP_SEND));
    close(c->fd);
    cl_buf_free(&c->next);
    cl_buf_free(&c->in);
    if (!c->sending) cl_buf_free(&c->out);
    CL_ADD(L->st, registered_fds, -1);
    CL_ADD(L->st, closed, 1);
    CL_ADD(L->st, current_connections, -1);
    queue_free(L, c);
    if (L->accept_paused) resume_accepting(L);
}

/* _send: queue behind what is in flight, or send now. */
static void conn_send(uloop *L, uconn *c, const char *data, size_t len) {
    cl_buf *dst = c->sending ? &c->next : &c->out;
    if (cl_buf_append(dst, data, len) < 0 || (!c->sending && submit_send(L, c) < 0)) {
        CL_ADD(L->st, errors, 1);
        conn_close(L, c);
        return;
    }
    if (queued(c) >= L->cap && !c->paused) {
        c->paused = 1;
        CL_ADD(L->st, paused_reads, 1);
        stop_receiving(L, c);
    }
}

/* The HTTP branch of _read. */
static void http_input(uloop *L, uconn *c, const char *data, size_t got) {
    L->obuf.len = 0;
    cl_http_result res;
    if (cl_http_feed(&c->in, data, got, L->cfg->max_head_bytes, L->cfg->http_close, &L->obuf,
                     &res) < 0) {
        CL_ADD(L->st, errors, 1);
        conn_close(L, c);
        return;
    }
    CL_ADD(L->st, requests, res.requests);
    if (res.close) {
        c->closing = 1;
        stop_receiving(L, c);
    }
    if (L->obuf.len) conn_send(L, c, L->obuf.data, L->obuf.len);
    else if (c->closing) conn_close(L, c);
}

static void return_buffer(uloop *L, unsigned bid) {
    io_uring_buf_ring_add(L->br, L->bufs + (size_t)bid * CLU_BUF_BYTES, CLU_BUF_BYTES,
                          (unsigned short)bid, io_uring_buf_ring_mask(CLU_BUFS), 0);
    io_uring_buf_ring_advance(L->br, 1);
}

/* A completion of c's multishot receive: _read for one chunk. */
static void on_recv(uloop *L, uconn *c, int res, unsigned flags) {
    if (!(flags & IORING_CQE_F_MORE)) {
        c->receiving = 0;
        c->cancelling = 0;
        c->ops--;
    }
    int has_buffer = (flags & IORING_CQE_F_BUFFER) != 0;
    unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
    /* Closing: the protocol reads nothing more (the Python loop leaves such bytes unread). */
    if (!c->closed && !c->closing) {
        if (res > 0 && has_buffer) {
            const char *data = L->bufs + (size_t)bid * CLU_BUF_BYTES;
            CL_ADD(L->st, bytes_in, res);
            if (L->cfg->http) {
                http_input(L, c, data, (size_t)res);
            } else {
                CL_ADD(L->st, requests, 1);
                conn_send(L, c, data, (size_t)res);
            }
        } else if (res == 0) { /* the client closed its side (EOF or half-close) */
            c->closing = 1;
            if (!queued(c)) conn_close(L, c);
        } else if (res != -ENOBUFS && res != -ECANCELED && res != -EINTR && res != -EAGAIN) {
            /* ENOBUFS: every provided buffer was in use; re-armed below. */
            CL_ADD(L->st, errors, 1);
            conn_close(L, c);
        }
    }
    if (has_buffer) return_buffer(L, bid);
    if (!c->closed && !c->closing && !c->paused && !c->receiving && arm_recv(L, c) < 0) {
        CL_ADD(L->st, errors, 1);
        conn_close(L, c);
    }
    queue_free(L, c);
}

/* An emptied output buffer keeps its storage up to CLU_KEEP_BYTES: answers are copied
 * into it (a send reads it after this pass), and allocating one per answer would cost a
 * malloc/free pair per request that loop.c, sending from its receive buffer, never pays. */
static void drained(cl_buf *buf) {
    if (buf->cap > CLU_KEEP_BYTES) cl_buf_free(buf);
    else buf->len = 0;
}

/* A completion of c's send: _flush. */
static void on_send(uloop *L, uconn *c, int res) {
    c->sending = 0;
    c->ops--;
    if (c->closed) {
        cl_buf_free(&c->out);
        queue_free(L, c);
        return;
    }
    if (res == -EINTR || res == -EAGAIN) {
        res = 0; /* nothing left: send the same bytes again */
    } else if (res < 0) {
        /* A reset while only writing (paused or closing) is the hang-up loop.c's dispatch
         * closes without counting an error; otherwise _flush's send error. */
        if (!((c->paused || c->closing) && (res == -ECONNRESET || res == -EPIPE)))
            CL_ADD(L->st, errors, 1);
        conn_close(L, c);
        return;
    }
    CL_ADD(L->st, bytes_out, res);
    c->out_sent += (size_t)res;
    if (c->out_sent == c->out.len) {
        /* All of out has left: next goes out now, and out's storage takes what comes
         * next, so a streaming connection does not allocate per send. */
        cl_buf sent = c->out;
        c->out = c->next;
        c->next = sent;
        c->next.len = 0;
        c->out_sent = 0;
    }
    if (c->out.len) {
        if (submit_send(L, c) < 0) {
            CL_ADD(L->st, errors, 1);
            conn_close(L, c);
            return;
        }
    } else { /* drained */
        drained(&c->out);
        drained(&c->next);
        if (c->closing) {
            conn_close(L, c);
            return;
        }
    }
    if (c->paused && (queued(c) == 0 || queued(c) < L->resume_below)) {
        c->paused = 0;
        if (!c->closing && !c->receiving && arm_recv(L, c) < 0) {
            CL_ADD(L->st, errors, 1);
            conn_close(L, c);
        }
    }
}

static int grow_conns(uloop *L, int fd) {
    if (fd < L->nconns) return 0;
    int n = L->nconns ? L->nconns : 1024;
    while (n <= fd) n *= 2;
    uconn **grown = realloc(L->conns, (size_t)n * sizeof *grown);
    if (grown == NULL) return -1;
    memset(grown + L->nconns, 0, (size_t)(n - L->nconns) * sizeof *grown);
    L->conns = grown;
    L->nconns = n;
    return 0;
}

/* The registration half of _accept, for a descriptor from either accept path. */
static void add_conn(uloop *L, int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    uconn *c = NULL;
    if (grow_conns(L, fd) < 0 || (c = calloc(1, sizeof *c)) == NULL) {
        free(c);
        close(fd);
        CL_ADD(L->st, errors, 1);
        return;
    }
    c->fd = fd;
    if (arm_recv(L, c) < 0) {
        free(c);
        close(fd);
        CL_ADD(L->st, errors, 1);
        return;
    }
    L->conns[fd] = c;
    CL_ADD(L->st, registered_fds, 1);
    CL_ADD(L->st, accepted, 1);
    CL_ADD(L->st, current_connections, 1);
    if (L->st->current_connections > L->st->peak_connections)
        CL_SET(L->st, peak_connections, L->st->current_connections);
}

/* _shed_one_pending: accept one pending connection on the reserve descriptor and close it. */
static int shed_one_pending(uloop *L) {
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

/* After an EMFILE completion: loop.c's _accept with accept4 until the backlog is empty
 * (EAGAIN: the listener is non-blocking), shedding while out of descriptors. Returns 0
 * when out of descriptors with nothing left to shed: then accepting pauses. */
static int accept_out_of_fds(uloop *L) {
    CL_ADD(L->st, accept_emfile, 1);
    if (!shed_one_pending(L)) return 0;
    for (;;) {
        int fd = accept4(L->cfg->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            add_conn(L, fd);
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 1;
        if (errno == EMFILE || errno == ENFILE) {
            CL_ADD(L->st, accept_emfile, 1);
            if (!shed_one_pending(L)) return 0;
            continue;
        }
        if (errno == ECONNABORTED || errno == EPROTO || errno == EINTR) continue;
        CL_ADD(L->st, errors, 1);
        return 1;
    }
}

/* A completion of the multishot accept. */
static void on_accept(uloop *L, int res, unsigned flags) {
    if (!(flags & IORING_CQE_F_MORE)) L->accepting = 0;
    if (res >= 0) {
        if (L->stopping) close(res); /* accepted while the shutdown cancelled the accept */
        else add_conn(L, res);
    } else if (res == -EMFILE || res == -ENFILE) {
        if (!accept_out_of_fds(L)) L->accept_paused = 1;
    } else if (res == -ECANCELED) {
        return;
    } else if (res != -ECONNABORTED && res != -EPROTO && res != -EINTR && res != -EAGAIN &&
               res != -ENOBUFS && res != -ENOMEM && res != -EPERM) {
        /* EBADF, EINVAL, ENOTSOCK...: the listener itself is unusable. */
        L->fatal = -res;
        return;
    }
    if (!L->accepting && !L->accept_paused && !L->stopping) arm_accept(L);
}

/* _drain_wakeup, plus the Python signal handler's job (loop.c drain_wakeup). */
static void drain_wakeup(uloop *L) {
    unsigned char buf[512];
    ssize_t n;
    while ((n = read(L->cfg->wake_fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] == SIGTERM || buf[i] == SIGINT) L->stopping = 1;
    if (L->stop_flag && __atomic_load_n(L->stop_flag, __ATOMIC_RELAXED)) L->stopping = 1;
}

static void on_wake(uloop *L, int res, unsigned flags) {
    if (!(flags & IORING_CQE_F_MORE)) L->watching_wake = 0;
    if (res == -ECANCELED) return;
    drain_wakeup(L);
    if (!L->watching_wake && !L->stopping) arm_wake(L);
}

typedef struct ucqe {
    uint64_t data;
    int res;
    unsigned flags;
} ucqe;

static void handle(uloop *L, const ucqe *e) {
    unsigned op = (unsigned)(e->data & OP_MASK);
    uconn *c = (uconn *)(uintptr_t)(e->data & ~(uint64_t)OP_MASK);
    if (!(e->flags & IORING_CQE_F_MORE)) L->ops--;
    switch (op) {
    case OP_ACCEPT: on_accept(L, e->res, e->flags); break;
    case OP_WAKE: on_wake(L, e->res, e->flags); break;
    case OP_RECV: on_recv(L, c, e->res, e->flags); break;
    case OP_SEND: on_send(L, c, e->res); break;
    case OP_CANCEL:
        if (c != NULL) {
            c->ops--;
            queue_free(L, c);
        }
        break;
    }
}

/* Copies up to CL_MAX_EVENTS completions out of the ring and frees their slots. */
static unsigned reap(uloop *L, ucqe *batch) {
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&L->ring, head, cqe) {
        batch[n].data = io_uring_cqe_get_data64(cqe);
        batch[n].res = cqe->res;
        batch[n].flags = cqe->flags;
        if (++n == CL_MAX_EVENTS) break;
    }
    io_uring_cq_advance(&L->ring, n);
    return n;
}

static void handle_batch(uloop *L, const ucqe *batch, unsigned n) {
    for (unsigned i = 0; i < n; i++) handle(L, &batch[i]);
    free_dead(L);
}

static int64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One io_uring_enter: submit, and wait for at least one completion. EINTR (a signal)
 * and EBUSY/EAGAIN (completions to reap first) only end the wait early. */
static int enter(uloop *L) {
    int rc = io_uring_submit_and_wait(&L->ring, 1);
    if (rc < 0 && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN) {
        errno = -rc;
        return -1;
    }
    return 0;
}

/* loop.c loop_instrumented, with io_uring_enter as the wait call and completions as its
 * events: the same sampled thread-CPU reads, statements and order. */
static int loop_instrumented(uloop *L, ucqe *batch) {
    cl_stats *st = L->st;
    cl_sampler sampler;
    cl_sampler_init(&sampler, L->cfg->sample_seed);
    int countdown = cl_sampler_next_gap(&sampler);
    while (!L->stopping && !L->fatal) {
        int rc;
        int64_t t0, t1;
        int64_t cpu = -1;
        if (--countdown) {
            t0 = clock_ns(CLOCK_MONOTONIC);
            rc = enter(L);
            t1 = clock_ns(CLOCK_MONOTONIC);
        } else {
            int64_t c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
            t0 = clock_ns(CLOCK_MONOTONIC);
            rc = enter(L);
            t1 = clock_ns(CLOCK_MONOTONIC);
            cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
            countdown = cl_sampler_next_gap(&sampler);
        }
        if (rc < 0) return -1;
        unsigned n = reap(L, batch);
        cl_stats_begin(st);
        if (cpu >= 0) {
            CL_ADD(st, wait_cpu_ns, cpu);
            CL_ADD(st, wait_cpu_samples, 1);
            CL_ADD(st, wait_cpu_sample_events, n);
        }
        CL_ADD(st, wait_ns, t1 - t0);
        CL_ADD(st, wait_calls, 1);
        CL_ADD(st, wait_events, n);
        handle_batch(L, batch, n);
        cl_stats_end(st);
    }
    return 0;
}

/* loop.c loop_plain */
static int loop_plain(uloop *L, ucqe *batch) {
    while (!L->stopping && !L->fatal) {
        if (enter(L) < 0) return -1;
        unsigned n = reap(L, batch);
        cl_stats_begin(L->st);
        handle_batch(L, batch, n);
        cl_stats_end(L->st);
    }
    return 0;
}

/* _shutdown: close every connection, cancel the accept and the wake-up poll, and wait
 * for the last completion of each, so no operation outlives the memory it uses. */
static void shutdown_uring(uloop *L, ucqe *batch) {
    L->stopping = 1;
    L->accept_paused = 0; /* closing connections below must not re-arm accept */
    cl_stats_begin(L->st);
    for (int fd = 0; fd < L->nconns; fd++)
        if (L->conns[fd]) conn_close(L, L->conns[fd]);
    if (L->ring_ready) {
        if (L->accepting) cancel(L, NULL, user_data(NULL, OP_ACCEPT));
        if (L->watching_wake) cancel(L, NULL, user_data(NULL, OP_WAKE));
        int64_t deadline = clock_ns(CLOCK_MONOTONIC) + CLU_DRAIN_NS;
        while (L->ops > 0 && clock_ns(CLOCK_MONOTONIC) < deadline) {
            struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 100000000};
            struct io_uring_cqe *cqe;
            io_uring_submit_and_wait_timeout(&L->ring, &cqe, 1, &ts, NULL);
            unsigned n;
            while ((n = reap(L, batch)) > 0) handle_batch(L, batch, n);
        }
    }
    cl_stats_end(L->st);
    free_dead(L);
    free(L->conns);
    cl_buf_free(&L->obuf);
    /* A connection still waiting for a completion here (the drain timed out) is left
     * allocated: the kernel may still use its buffers until the ring is gone. */
    if (L->ring_ready) {
        if (L->br_registered) io_uring_unregister_buf_ring(&L->ring, CLU_BGID);
        io_uring_queue_exit(&L->ring);
    }
    if (L->br) munmap(L->br, L->br_bytes);
    if (L->bufs) munmap(L->bufs, (size_t)CLU_BUFS * CLU_BUF_BYTES);
    if (L->reserve_fd >= 0) close(L->reserve_fd);
}

/* The setup flags, newest first: one task submits and reaps (SINGLE_ISSUER), completions
 * are processed when it waits instead of interrupting it (DEFER_TASKRUN, Linux 6.1; else
 * COOP_TASKRUN, 5.19), and one failed submission does not stop the rest (SUBMIT_ALL). */
static int setup_ring(struct io_uring *ring) {
    static const unsigned tries[] = {
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof tries / sizeof tries[0] && rc == -EINVAL; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = tries[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = 4 * CLU_ENTRIES;
        rc = io_uring_queue_init_params(CLU_ENTRIES, ring, &p);
    }
    return rc;
}

/* The provided buffers and the ring that lists them, registered by hand: liburing 2.3 has
 * no io_uring_setup_buf_ring. Both are mmap'd: the ring must be page-aligned. */
static int setup_buffers(uloop *L) {
    L->br_bytes = CLU_BUFS * sizeof(struct io_uring_buf);
    void *br = mmap(NULL, L->br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                    -1, 0);
    void *bufs = mmap(NULL, (size_t)CLU_BUFS * CLU_BUF_BYTES, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    L->br = br == MAP_FAILED ? NULL : br;
    L->bufs = bufs == MAP_FAILED ? NULL : bufs;
    if (L->br == NULL || L->bufs == NULL) return -ENOMEM;
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)L->br;
    reg.ring_entries = CLU_BUFS;
    reg.bgid = CLU_BGID;
    int rc = io_uring_register_buf_ring(&L->ring, &reg, 0);
    if (rc < 0) return rc;
    L->br_registered = 1;
    io_uring_buf_ring_init(L->br);
    for (unsigned i = 0; i < CLU_BUFS; i++)
        io_uring_buf_ring_add(L->br, L->bufs + (size_t)i * CLU_BUF_BYTES, CLU_BUF_BYTES,
                              (unsigned short)i, io_uring_buf_ring_mask(CLU_BUFS), (int)i);
    io_uring_buf_ring_advance(L->br, CLU_BUFS);
    return 0;
}

int cl_uring_run(const cl_config *cfg, cl_stats *stats, const int *stop_flag) {
    /* As cl_loop_run: a descriptor that is not open fails first (EBADF); both are drained
     * with non-blocking calls (accept4 when shedding, read of the wake-up pipe). */
    int listen_flags = fcntl(cfg->listen_fd, F_GETFL), wake_flags = fcntl(cfg->wake_fd, F_GETFL);
    if (listen_flags < 0 || wake_flags < 0) return -1;
    if (fcntl(cfg->listen_fd, F_SETFL, listen_flags | O_NONBLOCK) < 0 ||
        fcntl(cfg->wake_fd, F_SETFL, wake_flags | O_NONBLOCK) < 0)
        return -1;
    uloop *L = calloc(1, sizeof *L);
    ucqe *batch = malloc(CL_MAX_EVENTS * sizeof *batch);
    if (L == NULL || batch == NULL) {
        free(L);
        free(batch);
        errno = ENOMEM;
        return -1;
    }
    L->cfg = cfg;
    L->st = stats;
    L->stop_flag = stop_flag;
    L->cap = cfg->max_queued_bytes;
    L->resume_below = cfg->max_queued_bytes / 2;
    L->reserve_fd = open_reserve();
    struct rlimit rl;
    int setsize = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (1 << 20))
        setsize = (int)rl.rlim_cur;
    int rc = -1, saved = 0, err;
    if (L->reserve_fd < 0 || grow_conns(L, setsize - 1) < 0) goto out;
    if ((err = setup_ring(&L->ring)) < 0) {
        errno = -err;
        goto out;
    }
    L->ring_ready = 1;
    if ((err = setup_buffers(L)) < 0) {
        errno = -err;
        goto out;
    }
    arm_accept(L);
    arm_wake(L);
    cl_stats_begin(stats);
    CL_SET(stats, registered_fds, 2);
    cl_stats_end(stats);
    rc = cfg->instrumentation ? loop_instrumented(L, batch) : loop_plain(L, batch);
    if (rc == 0 && L->fatal) {
        errno = L->fatal;
        rc = -1;
    }
out:
    saved = errno;
    shutdown_uring(L, batch);
    free(batch);
    free(L);
    errno = saved;
    return rc;
}

/* ---- the probe ---- */

static cl_uring_server_stage probe_fail(cl_uring_server_stage stage, int *err, int rc) {
    *err = rc < 0 ? -rc : 0;
    return stage;
}

/* Waits for one completion of the probe ring, up to a second. */
static int probe_wait(struct io_uring *ring, struct io_uring_cqe **cqe) {
    struct __kernel_timespec ts = {.tv_sec = 1, .tv_nsec = 0};
    return io_uring_wait_cqe_timeout(ring, cqe, &ts);
}

cl_uring_server_stage cl_uring_server_probe(int *err) {
    struct io_uring ring;
    int rc = io_uring_queue_init(8, &ring, 0);
    if (rc < 0) return probe_fail(CL_URING_SETUP, err, rc);
    enum { BUFS = 8, BYTES = 64 };
    size_t br_bytes = BUFS * sizeof(struct io_uring_buf);
    cl_uring_server_stage stage = CL_URING_OK;
    int sv[2] = {-1, -1};
    void *br = mmap(NULL, br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    static char bufs[BUFS][BYTES];
    if (br == MAP_FAILED) {
        stage = probe_fail(CL_URING_BUF_RING, err, -ENOMEM);
        br = NULL;
        goto out;
    }
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)br;
    reg.ring_entries = BUFS;
    reg.bgid = CLU_BGID;
    rc = io_uring_register_buf_ring(&ring, &reg, 0);
    if (rc < 0) {
        stage = probe_fail(CL_URING_BUF_RING, err, rc);
        goto out;
    }
    io_uring_buf_ring_init(br);
    for (int i = 0; i < BUFS; i++)
        io_uring_buf_ring_add(br, bufs[i], BYTES, (unsigned short)i, io_uring_buf_ring_mask(BUFS),
                              i);
    io_uring_buf_ring_advance(br, BUFS);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        stage = probe_fail(CL_URING_MULTISHOT_RECV, err, -errno);
        goto out;
    }
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = CLU_BGID;
    io_uring_submit(&ring);
    struct io_uring_cqe *cqe;
    if (write(sv[1], "x", 1) != 1) {
        stage = probe_fail(CL_URING_MULTISHOT_RECV, err, -errno);
    } else if ((rc = probe_wait(&ring, &cqe)) < 0) {
        stage = probe_fail(CL_URING_MULTISHOT_RECV, err, rc);
    } else {
        /* Required: one byte, in a provided buffer, with the receive still armed. */
        int ok = cqe->res == 1 && (cqe->flags & IORING_CQE_F_BUFFER) &&
                 (cqe->flags & IORING_CQE_F_MORE);
        int res = cqe->res;
        io_uring_cqe_seen(&ring, cqe);
        if (!ok) stage = probe_fail(CL_URING_MULTISHOT_RECV, err, res < 0 ? res : 0);
    }
    /* End the receive (EOF) and take its last completion before the buffers go away. */
    close(sv[1]);
    sv[1] = -1;
    while (probe_wait(&ring, &cqe) == 0) {
        int more = (cqe->flags & IORING_CQE_F_MORE) != 0;
        io_uring_cqe_seen(&ring, cqe);
        if (!more) break;
    }
out:
    if (sv[0] >= 0) close(sv[0]);
    if (sv[1] >= 0) close(sv[1]);
    io_uring_queue_exit(&ring);
    if (br) munmap(br, br_bytes);
    return stage;
}

#endif /* CL_HAVE_LIBURING */
