/* io_uring readiness: one multishot IORING_OP_POLL_ADD per descriptor, and one
 * io_uring_enter per loop pass that submits the pass's interest changes and
 * reaps the completions. Built only when liburing is found (setup.py).
 *
 * A multishot poll posts a completion on every wake-up of the socket, never again
 * for data that is already waiting: edge-triggered, like EPOLLET. The kernel
 * refuses a level-triggered multishot poll (IORING_POLL_ADD_LEVEL with
 * IORING_POLL_ADD_MULTI completes with -EINVAL on Linux 6.18 here), so the
 * mechanism is declared edge-triggered and the loop drains until EAGAIN, as for
 * epoll-et: read and write interest are armed once, at registration.
 *
 * Each arming carries a fresh generation in its user_data, (generation << 32) | fd:
 * a completion of a poll that was removed (its descriptor closed, perhaps reused) no
 * longer matches its descriptor's generation and is dropped. modify and del only
 * queue submissions (remove the old poll, arm the new one); the next wait submits
 * them with the same io_uring_enter that waits. A multishot poll the kernel ends
 * (a completion without IORING_CQE_F_MORE, e.g. when the completion queue
 * overflowed) is armed again at once; arming checks readiness, so no wake-up is lost.
 *
 * The same functions back the Python type servers._cloop.UringPoll (module.c).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* This file is compiled only with liburing (setup.py), so its declarations are wanted. */
#ifndef SELECTBENCH_URING
#define SELECTBENCH_URING 1
#endif
#include "cloop.h"

/* Submission slots: one loop pass queues at most a re-arm per event and an add or
 * remove per descriptor it accepts or closes; more than this flushes early. */
#define URING_SQ_ENTRIES 4096
/* Completions waiting to be reaped; beyond it the kernel ends multishot polls
 * (then re-armed) rather than drop a completion. */
#define URING_CQ_ENTRIES 16384
/* Generation 0 marks the bookkeeping submissions (poll removals). */
#define URING_BOOKKEEPING 0

typedef struct uring_slot {
    uint32_t gen; /* 0: not registered */
    int mask;     /* the interest armed (0: registered, nothing armed) */
} uring_slot;

struct cl_uring {
    struct io_uring ring;
    uring_slot *slots; /* indexed by descriptor */
    int nslots;
    uint32_t next_gen;
    int last_error;    /* errno of the last poll that failed */
    unsigned inflight; /* polls armed whose last completion is not reaped yet */
    cl_event fired[CL_MAX_EVENTS];
};

static uint64_t user_data(int fd, uint32_t gen) {
    return ((uint64_t)gen << 32) | (uint32_t)fd;
}

static int grow_slots(cl_uring *u, int fd) {
    if (fd < u->nslots) return 0;
    int n = u->nslots ? u->nslots : 1024;
    while (n <= fd) n *= 2;
    uring_slot *grown = realloc(u->slots, (size_t)n * sizeof *grown);
    if (grown == NULL) return -1;
    memset(grown + u->nslots, 0, (size_t)(n - u->nslots) * sizeof *grown);
    u->slots = grown;
    u->nslots = n;
    return 0;
}

/* A free submission slot; a full queue is submitted first (an extra io_uring_enter). */
static struct io_uring_sqe *next_sqe(cl_uring *u) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (sqe == NULL && io_uring_submit(&u->ring) >= 0) sqe = io_uring_get_sqe(&u->ring);
    if (sqe == NULL) errno = EBUSY;
    return sqe;
}

static int arm(cl_uring *u, int fd) {
    struct io_uring_sqe *sqe = next_sqe(u);
    if (sqe == NULL) return -1;
    io_uring_prep_poll_multishot(sqe, fd, (unsigned)u->slots[fd].mask);
    io_uring_sqe_set_data64(sqe, user_data(fd, u->slots[fd].gen));
    u->inflight++;
    return 0;
}

static int disarm(cl_uring *u, int fd) {
    struct io_uring_sqe *sqe = next_sqe(u);
    if (sqe == NULL) return -1;
    io_uring_prep_poll_remove(sqe, user_data(fd, u->slots[fd].gen));
    io_uring_sqe_set_data64(sqe, user_data(fd, URING_BOOKKEEPING));
    /* Success needs no completion; a failure (the poll had already ended) is dropped. */
    io_uring_sqe_set_flags(sqe, IOSQE_CQE_SKIP_SUCCESS);
    return 0;
}

static uint32_t fresh_gen(cl_uring *u) {
    if (++u->next_gen == URING_BOOKKEEPING) ++u->next_gen;
    return u->next_gen;
}

cl_uring *cl_uring_new(void) {
    cl_uring *u = calloc(1, sizeof *u);
    if (u == NULL) return NULL;
    struct io_uring_params p = {0};
    /* SUBMIT_ALL (5.18): one bad submission does not stop the rest; older kernels
     * refuse the flag: retry without it. Not COOP_TASKRUN: a removed poll lets go of
     * its socket in task work, which COOP_TASKRUN leaves pending while the loop sleeps
     * in io_uring_enter, so a closed connection stayed open on the wire until another
     * completion woke the loop (tests/test_c_servers.py's 8 MiB heads: a client waited
     * 20 s for the close in 4 of 50 attacks under CPU load, 2026-12-06). */
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
    p.cq_entries = URING_CQ_ENTRIES;
    int rc = io_uring_queue_init_params(URING_SQ_ENTRIES, &u->ring, &p);
    if (rc == -EINVAL) {
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = URING_CQ_ENTRIES;
        rc = io_uring_queue_init_params(URING_SQ_ENTRIES, &u->ring, &p);
    }
    if (rc < 0) {
        free(u);
        errno = -rc;
        return NULL;
    }
    return u;
}

int cl_uring_add(cl_uring *u, int fd, int mask) {
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    if (grow_slots(u, fd) < 0) {
        errno = ENOMEM;
        return -1;
    }
    if (u->slots[fd].gen != 0) {
        errno = EEXIST;
        return -1;
    }
    u->slots[fd] = (uring_slot){fresh_gen(u), mask};
    if (mask && arm(u, fd) < 0) {
        u->slots[fd] = (uring_slot){0, 0};
        return -1;
    }
    return 0;
}

int cl_uring_modify(cl_uring *u, int fd, int mask) {
    if (fd < 0 || fd >= u->nslots || u->slots[fd].gen == 0) {
        errno = ENOENT;
        return -1;
    }
    if (mask == u->slots[fd].mask) return 0;
    if (u->slots[fd].mask && disarm(u, fd) < 0) return -1;
    u->slots[fd] = (uring_slot){fresh_gen(u), mask};
    return mask ? arm(u, fd) : 0;
}

int cl_uring_del(cl_uring *u, int fd) {
    if (fd < 0 || fd >= u->nslots || u->slots[fd].gen == 0) {
        errno = ENOENT;
        return -1;
    }
    int rc = u->slots[fd].mask ? disarm(u, fd) : 0;
    u->slots[fd] = (uring_slot){0, 0};
    return rc;
}

int cl_uring_wait(cl_uring *u, cl_event **events, int timeout_ms) {
    int rc;
    do {
        if (timeout_ms < 0) {
            /* One io_uring_enter: submit what is queued, wait for one completion. */
            rc = io_uring_submit_and_wait(&u->ring, 1);
        } else {
            struct io_uring_cqe *cqe;
            struct __kernel_timespec ts = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000LL};
            rc = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
            if (rc == -ETIME) rc = 0;
        }
    } while (rc == -EINTR);
    /* EBUSY/EAGAIN: completions are waiting (overflowed); reap them, submit next pass. */
    if (rc < 0 && rc != -EBUSY && rc != -EAGAIN) {
        errno = -rc;
        return -1;
    }
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    int n = 0;
    io_uring_for_each_cqe(&u->ring, head, cqe) {
        if (n == CL_MAX_EVENTS) break; /* the rest waits for the next pass */
        seen++;
        uint64_t data = io_uring_cqe_get_data64(cqe);
        int fd = (int)(uint32_t)data;
        uint32_t gen = (uint32_t)(data >> 32);
        if (gen != URING_BOOKKEEPING && !(cqe->flags & IORING_CQE_F_MORE)) u->inflight--;
        if (gen == URING_BOOKKEEPING || fd >= u->nslots || u->slots[fd].gen != gen) continue;
        if (cqe->res < 0) {
            /* The poll failed and ended: report an error; the loop's read then fails
             * and closes the connection. Not re-armed, so a lasting failure cannot spin. */
            u->slots[fd].mask = 0;
            u->last_error = -cqe->res;
            u->fired[n++] = (cl_event){fd, CL_ERROR};
            continue;
        }
        if (!(cqe->flags & IORING_CQE_F_MORE)) arm(u, fd); /* best effort: see above */
        u->fired[n++] = (cl_event){fd, cqe->res};
    }
    io_uring_cq_advance(&u->ring, seen);
    *events = u->fired;
    return n;
}

/* Removes every poll and waits for their last completions. A poll holds a reference
 * to its file, and the kernel tears a ring down asynchronously: without this, a
 * listener closed right after the loop returns could go on accepting for a while. */
static void cancel_all(cl_uring *u) {
    for (int fd = 0; fd < u->nslots; fd++) {
        if (u->slots[fd].gen && u->slots[fd].mask) disarm(u, fd);
        u->slots[fd] = (uring_slot){0, 0};
    }
    /* Bounded (100 x 10 ms): a kernel that never completes them must not hang a stop. */
    for (int tries = 0; u->inflight > 0 && tries < 100; tries++) {
        struct __kernel_timespec ts = {0, 10 * 1000000LL};
        struct io_uring_cqe *cqe;
        int rc = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
        if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN) return;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&u->ring, head, cqe) {
            seen++;
            uint32_t gen = (uint32_t)(io_uring_cqe_get_data64(cqe) >> 32);
            if (gen != URING_BOOKKEEPING && !(cqe->flags & IORING_CQE_F_MORE)) u->inflight--;
        }
        io_uring_cq_advance(&u->ring, seen);
    }
}

void cl_uring_free(cl_uring *u) {
    cancel_all(u);
    io_uring_queue_exit(&u->ring);
    free(u->slots);
    free(u);
}

const char *cl_uring_library(void) {
    /* The soname's link target names the version (liburing.so.2 -> liburing.so.2.3):
     * liburing 2.3 has no version call of its own. */
    static char path[PATH_MAX];
    Dl_info info;
    if (!dladdr((void *)io_uring_queue_init_params, &info) || info.dli_fname == NULL)
        return "unknown";
    const char *name = realpath(info.dli_fname, path) ? path : info.dli_fname;
    const char *slash = strrchr(name, '/');
    return slash ? slash + 1 : name;
}

int cl_uring_probe(char *why, size_t len) {
    cl_uring *u = cl_uring_new();
    if (u == NULL) {
        int err = errno;
        snprintf(why, len, "io_uring_setup failed: %s (errno %d)", strerror(err), err);
        return err;
    }
    int fds[2], err = 0;
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
        err = errno;
        snprintf(why, len, "pipe2 failed: %s", strerror(err));
        cl_uring_free(u);
        return err;
    }
    cl_event *events;
    int n = -1;
    if (write(fds[1], "x", 1) == 1 && cl_uring_add(u, fds[0], CL_READ) == 0)
        n = cl_uring_wait(u, &events, 1000);
    if (n < 0) {
        err = errno;
        snprintf(why, len, "multishot IORING_OP_POLL_ADD failed: %s", strerror(err));
    } else if (u->last_error) {
        err = u->last_error;
        snprintf(why, len, "multishot IORING_OP_POLL_ADD failed: %s (Linux 5.13+ needed)",
                 strerror(err));
    } else if (n != 1 || events[0].fd != fds[0] || !(events[0].mask & CL_READ)) {
        err = ENOTSUP;
        snprintf(why, len, "multishot IORING_OP_POLL_ADD did not report a readable pipe");
    }
    cl_uring_free(u);
    close(fds[0]);
    close(fds[1]);
    return err;
}

/* ---- the loop's adapter: edge-triggered, interest fixed at registration ---- */

static void *uring_poll_create(const cl_mech *mech, int setsize) {
    (void)mech;
    cl_uring *u = cl_uring_new();
    if (u != NULL && grow_slots(u, setsize - 1) < 0) {
        cl_uring_free(u);
        errno = ENOMEM;
        return NULL;
    }
    return u;
}

static int uring_poll_add(void *state, int fd, int mask) {
    (void)mask; /* edge-triggered: read and write, once (mech_epoll.c does the same) */
    return cl_uring_add(state, fd, CL_READ | CL_WRITE);
}

static int uring_poll_modify(void *state, int fd, int mask) {
    /* The loop changes only the listener's interest (pausing accept when out of
     * descriptors); resuming arms read and write again, like registration. */
    return cl_uring_modify(state, fd, mask ? CL_READ | CL_WRITE : 0);
}

static int uring_poll_del(void *state, int fd) {
    return cl_uring_del(state, fd);
}

static int uring_poll_wait(void *state, cl_event **events) {
    return cl_uring_wait(state, events, -1);
}

static void uring_poll_destroy(void *state) {
    cl_uring_free(state);
}

static const cl_mech cl_mech_uring_poll = {
    .name = "uring-poll",
    .edge_triggered = 1,
    .fd_limit = 0,
    .create = uring_poll_create,
    .add = uring_poll_add,
    .modify = uring_poll_modify,
    .del = uring_poll_del,
    .wait = uring_poll_wait,
    .destroy = uring_poll_destroy,
};

CL_MECHANISM(cl_mech_uring_poll);
