/* select(2): the kernel scans every descriptor in the sets on every call.
 * The twin of servers/backends/select_backend.py. The sets are bitmaps of
 * FD_SETSIZE bits, so a descriptor numbered FD_SETSIZE or more cannot be
 * watched: add/modify refuse it (EINVAL) and the loop closes such
 * connections right after accept (fd_limit). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include "cloop.h"

typedef struct select_state {
    fd_set readers, writers; /* the interest sets, copied before each call */
    fd_set ready_r, ready_w;
    int maxfd;                             /* highest fd in either set, -1 if none */
    cl_event fired[2 * FD_SETSIZE];        /* readable ones, then writable ones */
} select_state;

static void *select_create(const cl_mech *mech, int setsize) {
    (void)mech;
    (void)setsize;
    select_state *st = calloc(1, sizeof *st);
    if (st == NULL) return NULL;
    FD_ZERO(&st->readers);
    FD_ZERO(&st->writers);
    st->maxfd = -1;
    return st;
}

static int select_modify(void *state, int fd, int mask) {
    select_state *st = state;
    if (fd < 0 || fd >= FD_SETSIZE) {
        errno = EINVAL;
        return -1;
    }
    if (mask & CL_READ) FD_SET(fd, &st->readers);
    else FD_CLR(fd, &st->readers);
    if (mask & CL_WRITE) FD_SET(fd, &st->writers);
    else FD_CLR(fd, &st->writers);
    if ((mask & (CL_READ | CL_WRITE)) && fd > st->maxfd) st->maxfd = fd;
    while (st->maxfd >= 0 && !FD_ISSET(st->maxfd, &st->readers) &&
           !FD_ISSET(st->maxfd, &st->writers))
        st->maxfd--;
    return 0;
}

static int select_del(void *state, int fd) {
    return select_modify(state, fd, 0);
}

static int select_wait(void *state, cl_event **events) {
    select_state *st = state;
    int n;
    do {
        st->ready_r = st->readers;
        st->ready_w = st->writers;
        n = select(st->maxfd + 1, &st->ready_r, &st->ready_w, NULL, NULL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    /* select_backend.py: [(fd, READ) for readable] + [(fd, WRITE) for writable]; a
     * descriptor ready both ways is two events, as there. */
    int k = 0;
    for (int fd = 0; fd <= st->maxfd; fd++)
        if (FD_ISSET(fd, &st->ready_r)) st->fired[k++] = (cl_event){fd, CL_READ};
    for (int fd = 0; fd <= st->maxfd; fd++)
        if (FD_ISSET(fd, &st->ready_w)) st->fired[k++] = (cl_event){fd, CL_WRITE};
    *events = st->fired;
    return k;
}

static void select_destroy(void *state) {
    free(state);
}

static const cl_mech cl_mech_select = {
    .name = "select",
    .edge_triggered = 0,
    .fd_limit = FD_SETSIZE,
    .create = select_create,
    .add = select_modify,
    .modify = select_modify,
    .del = select_del,
    .wait = select_wait,
    .destroy = select_destroy,
};
CL_MECHANISM(cl_mech_select);
