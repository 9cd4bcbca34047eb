/* epoll(7), level- or edge-triggered: the kernel keeps the interest list and
 * returns only ready descriptors. The twin of servers/backends/epoll_backend.py:
 * edge-triggered mode registers read and write interest once with EPOLLET and
 * never calls epoll_ctl again for that descriptor; in exchange the loop reads
 * and writes until EAGAIN. */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "cloop.h"

typedef struct epoll_state {
    int epfd;
    int et;
    struct epoll_event ready[CL_MAX_EVENTS];
    cl_event fired[CL_MAX_EVENTS];
} epoll_state;

static void *epoll_create_state(const cl_mech *mech, int setsize) {
    (void)setsize;
    epoll_state *st = calloc(1, sizeof *st);
    if (st == NULL) return NULL;
    st->et = mech->edge_triggered;
    st->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (st->epfd < 0) {
        int saved = errno;
        free(st);
        errno = saved;
        return NULL;
    }
    return st;
}

static int epoll_add(void *state, int fd, int mask) {
    epoll_state *st = state;
    struct epoll_event ev = {0};
    ev.events = st->et ? (uint32_t)(CL_READ | CL_WRITE) | EPOLLET : (uint32_t)mask;
    ev.data.fd = fd;
    return epoll_ctl(st->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static int epoll_modify(void *state, int fd, int mask) {
    epoll_state *st = state;
    if (st->et) return 0; /* interest is fixed at registration */
    struct epoll_event ev = {0};
    ev.events = (uint32_t)mask;
    ev.data.fd = fd;
    return epoll_ctl(st->epfd, EPOLL_CTL_MOD, fd, &ev);
}

static int epoll_del(void *state, int fd) {
    epoll_state *st = state;
    struct epoll_event ev = {0}; /* kernels before 2.6.9 want a non-NULL pointer */
    return epoll_ctl(st->epfd, EPOLL_CTL_DEL, fd, &ev);
}

static int epoll_wait_events(void *state, cl_event **events) {
    epoll_state *st = state;
    int n;
    do {
        n = epoll_wait(st->epfd, st->ready, CL_MAX_EVENTS, -1);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    for (int i = 0; i < n; i++)
        st->fired[i] = (cl_event){st->ready[i].data.fd, (int)st->ready[i].events};
    *events = st->fired;
    return n;
}

static void epoll_destroy(void *state) {
    epoll_state *st = state;
    close(st->epfd);
    free(st);
}

static const cl_mech cl_mech_epoll = {
    .name = "epoll",
    .edge_triggered = 0,
    .fd_limit = 0,
    .create = epoll_create_state,
    .add = epoll_add,
    .modify = epoll_modify,
    .del = epoll_del,
    .wait = epoll_wait_events,
    .destroy = epoll_destroy,
};
CL_MECHANISM(cl_mech_epoll);

static const cl_mech cl_mech_epoll_et = {
    .name = "epoll-et",
    .edge_triggered = 1,
    .fd_limit = 0,
    .create = epoll_create_state,
    .add = epoll_add,
    .modify = epoll_modify,
    .del = epoll_del,
    .wait = epoll_wait_events,
    .destroy = epoll_destroy,
};
CL_MECHANISM(cl_mech_epoll_et);
