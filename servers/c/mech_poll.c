/* poll(2): no FD_SETSIZE limit, but the kernel still walks the whole array per
 * call. The twin of servers/backends/poll_backend.py. The array stays dense:
 * removing a descriptor moves the last entry into its slot (pos[] maps a
 * descriptor to its slot). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "cloop.h"

typedef struct poll_state {
    struct pollfd *fds;
    int n, cap;
    int *pos; /* pos[fd]: index in fds, or -1 */
    int pos_cap;
    cl_event *fired; /* cap entries */
} poll_state;

static int grow_pos(poll_state *st, int fd) {
    if (fd < st->pos_cap) return 0;
    int cap = st->pos_cap ? st->pos_cap : 1024;
    while (cap <= fd) cap *= 2;
    int *pos = realloc(st->pos, (size_t)cap * sizeof *pos);
    if (pos == NULL) return -1;
    for (int i = st->pos_cap; i < cap; i++) pos[i] = -1;
    st->pos = pos;
    st->pos_cap = cap;
    return 0;
}

static void *poll_create(const cl_mech *mech, int setsize) {
    (void)mech;
    poll_state *st = calloc(1, sizeof *st);
    if (st == NULL) return NULL;
    st->cap = setsize > 16 ? setsize : 16;
    st->fds = malloc((size_t)st->cap * sizeof *st->fds);
    st->fired = malloc((size_t)st->cap * sizeof *st->fired);
    if (st->fds == NULL || st->fired == NULL || grow_pos(st, setsize) < 0) {
        free(st->fds);
        free(st->fired);
        free(st->pos);
        free(st);
        return NULL;
    }
    return st;
}

static int poll_add(void *state, int fd, int mask) {
    poll_state *st = state;
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    if (grow_pos(st, fd) < 0) return -1;
    if (st->pos[fd] >= 0) {
        errno = EEXIST;
        return -1;
    }
    if (st->n == st->cap) {
        int cap = st->cap * 2;
        struct pollfd *fds = realloc(st->fds, (size_t)cap * sizeof *fds);
        if (fds == NULL) return -1;
        st->fds = fds;
        cl_event *fired = realloc(st->fired, (size_t)cap * sizeof *fired);
        if (fired == NULL) return -1;
        st->fired = fired;
        st->cap = cap;
    }
    st->fds[st->n] = (struct pollfd){.fd = fd, .events = (short)mask, .revents = 0};
    st->pos[fd] = st->n++;
    return 0;
}

static int poll_modify(void *state, int fd, int mask) {
    poll_state *st = state;
    if (fd < 0 || fd >= st->pos_cap || st->pos[fd] < 0) {
        errno = ENOENT;
        return -1;
    }
    st->fds[st->pos[fd]].events = (short)mask;
    return 0;
}

static int poll_del(void *state, int fd) {
    poll_state *st = state;
    if (fd < 0 || fd >= st->pos_cap || st->pos[fd] < 0) {
        errno = ENOENT;
        return -1;
    }
    int i = st->pos[fd];
    st->fds[i] = st->fds[--st->n];
    st->pos[st->fds[i].fd] = i;
    st->pos[fd] = -1;
    return 0;
}

static int poll_wait(void *state, cl_event **events) {
    poll_state *st = state;
    int n;
    do {
        n = poll(st->fds, (nfds_t)st->n, -1);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    /* Like CPython's poll.poll(): stop scanning once n ready entries are collected. */
    int k = 0;
    for (int i = 0; i < st->n && k < n; i++)
        if (st->fds[i].revents) st->fired[k++] = (cl_event){st->fds[i].fd, st->fds[i].revents};
    *events = st->fired;
    return k;
}

static void poll_destroy(void *state) {
    poll_state *st = state;
    free(st->fds);
    free(st->fired);
    free(st->pos);
    free(st);
}

static const cl_mech cl_mech_poll = {
    .name = "poll",
    .edge_triggered = 0,
    .fd_limit = 0,
    .create = poll_create,
    .add = poll_add,
    .modify = poll_modify,
    .del = poll_del,
    .wait = poll_wait,
    .destroy = poll_destroy,
};
CL_MECHANISM(cl_mech_poll);
