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

extern const cl_mech cl_mech_select;
extern const cl_mech cl_mech_poll;
extern const cl_mech cl_mech_epoll;
extern const cl_mech cl_mech_epoll_et;
const cl_mech *cl_mech_find(const char *name);

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
