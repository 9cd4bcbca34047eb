/* loadgen._cload: the load generator's compiled hot path (issue 21).
 *
 * Python (loadgen.keepalive_c, loadgen.churn_c) keeps connection set-up, ticks,
 * accounting and every rare path; the core runs the per-connection
 * send/receive loop of a keep-alive worker over descriptors Python already
 * connected (core.c), or a churn worker's connect-request-close cycle
 * (churn.c), closed or open loop, with the GIL released, until a deadline. Whatever it cannot
 * decide with certainty (a close, an answer that is not a plain complete
 * keep-alive answer, a descriptor it does not own) it hands back to Python,
 * which runs its own slow path on exactly the bytes the Python loop would
 * have seen.
 */
#ifndef LOADGEN_CLOAD_H
#define LOADGEN_CLOAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* What a reply buffer holds, by the rules of loadgen/protocols.py. */
enum lg_reply {
    LG_INCOMPLETE = 0, /* certainly incomplete: keep reading */
    LG_COMPLETE = 1,   /* certainly one complete answer after which the connection stays open */
    LG_DEFER = 2,      /* anything else (bad, closing, unusual): Python's parser decides */
};

/* protocols.MAX_HEADER_BYTES */
#define LG_MAX_HEADER_BYTES (64 * 1024)

enum lg_reply lg_http_reply(const char *buf, size_t len);
enum lg_reply lg_http_reply_as(const char *buf, size_t len, int closing);
enum lg_reply lg_echo_reply(const char *buf, size_t len, const char *req, size_t reqlen);

/* ---------------------------------------------------------------- schedule */
/* A min-heap of (due, fd): the open loop's intended send times. */
typedef struct {
    int64_t due;
    int fd;
} lg_slot;

typedef struct {
    lg_slot *v;
    size_t n, cap;
} lg_heap;

int lg_heap_push(lg_heap *h, int64_t due, int fd); /* 0, or -1 out of memory */
lg_slot lg_heap_pop(lg_heap *h);                   /* h->n > 0 */
void lg_heap_free(lg_heap *h);

/* What the open loop does next, given the clock (wait_plan). */
enum lg_wait {
    LG_SEND = 0,  /* the next send is due: send it now */
    LG_SLEEP = 1, /* block in epoll for *ns (replies still wake it) */
    LG_SPIN = 2,  /* within spin_ns of the next send: poll without blocking */
    /* (with nap_ns > 0, a sleep that ends within LG_NAP_HORIZON_NS of the spin is
     * a nap of at most nap_ns: see lg_wait_plan) */
    LG_UNTIL = 3, /* the run's deadline has come: return to Python */
};
#define LG_NAP_HORIZON_NS 300000
#define LG_NAP_NS 100000
enum lg_wait lg_wait_plan(int64_t now, int64_t next_due, int64_t until, int64_t spin_ns,
                          int64_t nap_ns, int64_t *ns);
/* Where an open-loop run ends: at its tick, unless the next send is due within room_ns
 * after it; then just after that send (a tick's work would have made it late). */
int64_t lg_tick_end(int64_t until, int64_t room_ns, int64_t next_due);
/* After a reply at t: the connection's next intended send time; *send_now when it is
 * already due (then *lag_ns is t - next, the send lag of sending it at t). */
int64_t lg_next_intended(int64_t intended, int64_t interval, int64_t t, int *send_now,
                         int64_t *lag_ns);

/* ------------------------------------------------------------------- core */
typedef struct {
    char *in;      /* bytes of an answer read so far (partial) */
    size_t in_len, in_cap;
    char *out;     /* the unsent rest of a request (short write) */
    size_t out_len, out_off;
} lg_conn;

typedef struct {
    int64_t *v;
    size_t n, cap;
} lg_vec;

/* An event the core hands to Python. */
typedef struct {
    int fd;
    int err;          /* errno of a failed read or write (0: none) */
    int read;         /* 1: data holds this read (len 0 = EOF); 0: nothing was read */
    int64_t t;        /* the clock when it was read */
    char *partial;    /* the answer's earlier bytes (NULL: none) */
    size_t partial_len;
    char *data;
    size_t data_len;
    char *rest;       /* unsent rest of the request (NULL: none) */
    size_t rest_len;
} lg_handback;

typedef struct {
    /* configuration */
    int epfd;
    int http;         /* 1 http, 0 echo */
    int open_loop;
    const char *req;
    size_t req_len;
    int64_t interval; /* open loop: ns between one connection's sends */
    int64_t spin_ns;  /* open loop: wake this long before a send and spin */
    int64_t poll_ns;  /* closed loop: poll this long before blocking in epoll (0: never) */
    /* open loop: how long past its tick a run may go on to make a send due by then (0:
     * stop at the tick), and the tick itself (set by each run; lg_tick_end) */
    int64_t room_ns, until;
    /* the tick's boundary in lat_c, lat_u and lag: entries from mark_* on came after it */
    int marked;
    size_t mark_c, mark_u, mark_lag;
    /* time spent polling for an event (closed loop) or spinning before a send (open
     * loop), cumulative: waiting, not work */
    int64_t polled_ns;
    /* per-descriptor state owned by the core between runs */
    lg_conn *conns;
    size_t nconns;
    /* latencies gathered since Python last took them (ns) */
    lg_vec lat_c, lat_u, lag;
    lg_heap heap;
    char *rbuf;
    size_t rbuf_len;
} lg_core;

/* The Python-owned arrays a run works on (indexed by descriptor). */
typedef struct {
    const unsigned char *alive;
    size_t nalive;
    int64_t *sent;
    int64_t *intended;
    size_t nstate;
} lg_state;

#define LG_MAX_EVENTS 256

typedef struct {
    lg_handback hb[LG_MAX_EVENTS];
    size_t nhb;
    uint64_t completed;
    int status; /* 0 ok; else an errno from epoll or out of memory (ENOMEM) */
} lg_run_out;

int lg_core_init(lg_core *c);
void lg_core_free(lg_core *c);
void lg_core_forget(lg_core *c, int fd);
int lg_core_set_partial(lg_core *c, int fd, const char *p, size_t n);
int lg_core_set_out(lg_core *c, int fd, const char *p, size_t n);
/* Run until `until` (CLOCK_MONOTONIC ns), `max_completed` answers (0: no bound), or an
 * event for Python; no Python API inside (the GIL is released around it). */
void lg_core_run(lg_core *c, lg_state *s, int64_t until, uint64_t max_completed,
                 lg_run_out *out);
void lg_run_out_free(lg_run_out *out);
int64_t lg_now(void);
int lg_vec_push(lg_vec *v, int64_t x);
struct epoll_event;
/* epoll_pwait2 for up to ns (whole ms, rounded down, where it is missing); EINTR is 0. */
int lg_wait_events(int epfd, struct epoll_event *ev, int64_t ns);

/* ------------------------------------------------------------------ churn */
/* A new connection per request (loadgen.churn's loop): connect, send, read one answer,
 * close; the next at once (closed loop) or at the slot's next intended time (open). */
enum lg_phase { LG_CONNECTING = 0, LG_SENDING = 1, LG_WAITING = 2 };

typedef struct {
    int active;
    int phase;
    int slot;
    int64_t start_ns; /* connect started: latency origin (closed loop; uncorrected) */
    int64_t sent_ns;  /* connected and request written from here */
    char *in;
    size_t in_len, in_cap;
    size_t out_off; /* request bytes written */
} lg_churn_conn;

/* What a churn run hands to Python. */
enum lg_churn_kind {
    LG_CONNECT_FAILED = 0, /* slot, err: no connection (closed, or none made) */
    LG_FAILED = 1,         /* slot, what, err (0: EOF before a complete answer): closed */
    LG_ADOPT = 2,          /* fd and its state, data: Python owns the connection now */
    LG_FOREIGN = 3,        /* fd, events: a descriptor of Python's */
};

typedef struct {
    int kind, slot, fd, err, phase;
    const char *what;
    uint32_t events;
    int64_t t, start_ns, sent_ns;
    char *data;
    size_t data_len, out_off;
} lg_churn_ev;

typedef struct {
    lg_churn_ev *v;
    size_t n, cap;
    uint64_t completed;
    int status;
} lg_churn_out;

typedef struct {
    int epfd, http, open_loop, family;
    const char *req;
    size_t req_len;
    int64_t interval, spin_ns;
    struct sockaddr_storage target;
    socklen_t target_len;
    struct sockaddr_storage *sources; /* bound before each connect (port 0), in turn */
    socklen_t *source_len;
    size_t nsources, source_i;
    lg_churn_conn *conns;
    size_t nconns, inflight;
    lg_heap heap;             /* (due, slot) */
    int *starts;              /* slots to start at the next run, at once */
    size_t nstarts, starts_cap;
    lg_vec lat_c, lat_u, lag;
    uint64_t opened;          /* handshakes completed */
    char *rbuf;
    size_t rbuf_len;
} lg_churn;

int lg_churn_init(lg_churn *c);
void lg_churn_free(lg_churn *c); /* closes the connections it still owns */
int lg_churn_queue_start(lg_churn *c, int slot);
void lg_churn_run(lg_churn *c, int64_t *intended, size_t nintended, int64_t until,
                  lg_churn_out *out);
/* Close the connections past their connect or request timeout, as events. */
void lg_churn_expire(lg_churn *c, int64_t now, int64_t connect_limit, int64_t request_limit,
                     lg_churn_out *out);
/* Every connection the core owns, as LG_ADOPT events (for the drain). */
void lg_churn_export(lg_churn *c, lg_churn_out *out);
void lg_churn_out_free(lg_churn_out *out);

#endif
