/* The C twin of servers/eventloop.py: one event loop, one short adapter per
 * readiness mechanism (the shape of wrk's ae.c + ae_select.c / ae_poll.c /
 * ae_epoll.c), and the HTTP parser of servers/protocol.py.
 *
 * Behaviour is meant to be byte-for-byte that of the Python loop; each
 * function names the Python function it mirrors. Counters live in a struct the
 * Python side reads while the loop runs without the GIL.
 */
#ifndef SELECTBENCH_CLOOP_H
#define SELECTBENCH_CLOOP_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

/* Masks use poll's bits, as servers/backends does: epoll shares their values. */
#define CL_READ POLLIN
#define CL_WRITE POLLOUT
#define CL_ERROR (POLLERR | POLLHUP)

/* servers/limits.py RECV_BYTES; servers/backends/epoll_backend.py MAX_EVENTS */
#define CL_RECV_BYTES 65536
#define CL_MAX_EVENTS 1024
/* servers/protocol.py MAX_BODY_BYTES, MAX_CONTENT_LENGTH_DIGITS */
#define CL_MAX_BODY_BYTES (1 << 20)
#define CL_MAX_CONTENT_LENGTH_DIGITS 18

/* ---- counters: the names are the JSON keys of servers.stats (COUNTERS + GAUGES) ---- */
#define CL_COUNTERS(X)                                                                      \
    X(wait_calls) X(wait_ns) X(wait_cpu_ns) X(wait_cpu_samples) X(wait_cpu_sample_events)  \
    X(wait_events) X(accepted) X(closed) X(requests) X(bytes_in) X(bytes_out)              \
    X(rejected_fd_setsize) X(accept_emfile) X(errors) X(paused_reads)                       \
    X(current_connections) X(peak_connections) X(registered_fds)

typedef struct cl_stats {
#define CL_FIELD(name) int64_t name;
    CL_COUNTERS(CL_FIELD)
#undef CL_FIELD
    uint64_t seq; /* odd while the loop updates counters: a seqlock for readers */
} cl_stats;

/* Only the loop thread writes a counter. It updates them between cl_stats_begin and
 * cl_stats_end (one loop iteration, after the wait call returns), and other threads
 * take a consistent copy with cl_stats_read: a snapshot never shows a connection
 * counted closed but still current, or the reverse (a seqlock; while the loop blocks
 * in its wait call, readers never wait). Relaxed atomics make the concurrent reads
 * defined without a locked instruction on the loop's side. */
#define CL_SET(st, field, v) __atomic_store_n(&(st)->field, (int64_t)(v), __ATOMIC_RELAXED)
#define CL_ADD(st, field, n) CL_SET(st, field, (st)->field + (int64_t)(n))

static inline void cl_stats_begin(cl_stats *st) {
    __atomic_store_n(&st->seq, st->seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

static inline void cl_stats_end(cl_stats *st) {
    __atomic_store_n(&st->seq, st->seq + 1, __ATOMIC_RELEASE);
}

void cl_stats_read(const cl_stats *live, cl_stats *copy);

/* ---- readiness adapters (one file each) ---- */
typedef struct cl_event {
    int fd;
    int mask;
} cl_event;

typedef struct cl_mech {
    const char *name;
    int edge_triggered; /* readiness reported once per change: drain until EAGAIN */
    int fd_limit;       /* highest descriptor number + 1 accepted, or 0 for none */
    void *(*create)(const struct cl_mech *mech, int setsize);
    int (*add)(void *state, int fd, int mask);
    int (*modify)(void *state, int fd, int mask);
    int (*del)(void *state, int fd);
    /* Blocks until something is ready; *events points into the adapter's own array.
     * Returns the number of events, or -1 with errno set. */
    int (*wait)(void *state, cl_event **events);
    void (*destroy)(void *state);
} cl_mech;

/* Every adapter: each mech_*.c file ends with CL_MECHANISM(its cl_mech), which puts a
 * pointer to it into the section cl_mechanisms. The linker bounds that section with the
 * symbols __start_cl_mechanisms and __stop_cl_mechanisms (a linker set, as FreeBSD's
 * SET_DECLARE), so the loop and the module find every adapter the build links and no
 * list is kept in step: a new adapter is its file and its line in setup.py. The name
 * is the backend's `mechanism` in servers/c_backends.py. */
#define CL_MECHANISM(mech)                                                                  \
    static const cl_mech *const cl_mechanism_entry_##mech                                   \
        __attribute__((used, section("cl_mechanisms"))) = &mech
size_t cl_mech_count(void);
const cl_mech *cl_mech_at(size_t index); /* in link order, index < cl_mech_count() */
const cl_mech *cl_mech_find(const char *name); /* NULL: no adapter of that name */

/* ---- io_uring readiness (mech_uring_poll.c): only when setup.py found liburing ---- */
#ifdef SELECTBENCH_URING
typedef struct cl_uring cl_uring;
/* Multishot poll per descriptor; the mask is armed as given (0: registered, unarmed).
 * add/modify/del queue submissions; cl_uring_wait submits them and reaps (timeout_ms
 * < 0 blocks). The functions return -1 with errno set (EEXIST, ENOENT, EBUSY ...). */
cl_uring *cl_uring_new(void); /* NULL with errno set: io_uring_setup's own error */
int cl_uring_add(cl_uring *u, int fd, int mask);
int cl_uring_modify(cl_uring *u, int fd, int mask);
int cl_uring_del(cl_uring *u, int fd);
int cl_uring_wait(cl_uring *u, cl_event **events, int timeout_ms);
void cl_uring_free(cl_uring *u);
const char *cl_uring_library(void); /* the liburing file loaded, e.g. liburing.so.2.3 */
/* 0 when a ring is set up and a multishot poll reports a readable pipe; else the
 * errno and one sentence in why. */
int cl_uring_probe(char *why, size_t len);
#endif

/* ---- a growable byte buffer ---- */
typedef struct cl_buf {
    char *data;
    size_t len;
    size_t cap;
} cl_buf;

int cl_buf_append(cl_buf *buf, const char *data, size_t len); /* 0, or -1 when out of memory */
void cl_buf_free(cl_buf *buf);

/* ---- HTTP: servers/protocol.py http_consume ---- */
typedef struct cl_http_result {
    size_t consumed; /* data[consumed:] is the rest (meaningless when close) */
    int close;       /* close after sending the output; read nothing more */
    int64_t requests;
} cl_http_result;

/* Appends the responses to out. Returns 0, or -1 when out of memory. */
int cl_http_consume(const char *data, size_t n, size_t max_head, int close_every, cl_buf *out,
                    cl_http_result *result);

/* One read's bytes on a connection whose incomplete input is kept in `in` (the HTTP
 * branch of servers/eventloop.py _read): the answers are appended to out. Returns 0,
 * or -1 when out of memory. */
int cl_http_feed(cl_buf *in, const char *data, size_t got, size_t max_head, int close_every,
                 cl_buf *out, cl_http_result *result);

/* ---- sampling of wait calls: servers/sampling.py (sampling.c) ---- */
typedef struct cl_sampler {
    uint64_t state; /* splitmix64 */
    double log_miss;
} cl_sampler;

uint64_t cl_splitmix64(uint64_t *state); /* advances the state, returns the next output */
void cl_sampler_init(cl_sampler *sampler, uint64_t seed);
int cl_sampler_next_gap(cl_sampler *sampler); /* calls until the next sampled one, >= 1 */
int64_t cl_calibrate_clock_pair(int pairs);   /* median CPU ns of the clock reads, -1: OOM */

/* ---- the loop: servers/eventloop.py EventLoopServer ---- */
typedef struct cl_config {
    const cl_mech *mech;
    int listen_fd;
    int wake_fd;  /* read end of the signal wake-up pipe (signal.set_wakeup_fd) */
    int http;     /* protocol: 1 http, 0 echo */
    int http_close;
    int instrumentation;
    size_t max_queued_bytes;
    size_t max_head_bytes;
    uint64_t sample_seed; /* seed of the sampled wait calls (CallSampler) */
} cl_config;

/* Serves until a SIGTERM or SIGINT byte arrives on wake_fd (or *stop_flag is set and a
 * byte written there), then closes every client connection. The listener and the
 * wake-up pipe stay open: their owner closes them. Returns 0, or -1 with errno set
 * when the loop cannot start or its wait call fails. */
int cl_loop_run(const cl_config *config, cl_stats *stats, const int *stop_flag);

#endif
