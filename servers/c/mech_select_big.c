/* select(2) past FD_SETSIZE: the same calls as mech_select.c, on descriptor
 * bitmaps allocated on the heap, sized from RLIMIT_NOFILE and grown when a
 * higher descriptor arrives. The 1,024 of c-select is glibc's fd_set type (a
 * fixed array of FD_SETSIZE bits), not the kernel: select(2) reads
 * ceil(nfds / bits-per-long) words from each set and clamps nfds to the
 * process's descriptor table, which RLIMIT_NOFILE bounds (fs/select.c,
 * core_sys_select). So no descriptor this process can open is refused here.
 *
 * The bitmaps have the kernel's layout: descriptor fd is bit fd % WORD_BITS of
 * word fd / WORD_BITS. The bits are set and read with the functions below, never
 * with FD_SET/FD_ISSET: with _FORTIFY_SOURCE those check fd < FD_SETSIZE
 * (__fdelt_chk) and abort the process. Everything else (copying the sets before
 * each call, the per-descriptor scan of the result, readable ones before
 * writable ones) is mech_select.c's, so the two differ only in the set's size. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include "cloop.h"

#define WORD_BITS ((int)(CHAR_BIT * sizeof(unsigned long)))

typedef struct select_big_state {
    unsigned long *readers, *writers; /* the interest sets, copied before each call */
    unsigned long *ready_r, *ready_w;
    int words;                        /* each bitmap holds words * WORD_BITS descriptors */
    int maxfd;                        /* highest fd in either set, -1 if none */
    /* Readable ones, then writable ones. Grown only in select_big_wait: the loop is still
     * reading the last batch from it while it adds descriptors (accept). */
    cl_event *fired;
    size_t fired_cap;
} select_big_state;

static int bit_test(const unsigned long *set, int fd) {
    return (set[fd / WORD_BITS] >> (fd % WORD_BITS)) & 1UL;
}

static void bit_set(unsigned long *set, int fd) {
    set[fd / WORD_BITS] |= 1UL << (fd % WORD_BITS);
}

static void bit_clear(unsigned long *set, int fd) {
    set[fd / WORD_BITS] &= ~(1UL << (fd % WORD_BITS));
}

static int grow_one(unsigned long **set, int words, int old_words) {
    unsigned long *p = realloc(*set, (size_t)words * sizeof *p);
    if (p == NULL) return -1;
    memset(p + old_words, 0, (size_t)(words - old_words) * sizeof *p);
    *set = p;
    return 0;
}

/* Room for descriptors 0 .. fd; a failed step leaves what was grown usable. */
static int select_big_grow(select_big_state *st, int fd) {
    if (fd / WORD_BITS < st->words) return 0;
    if (fd > INT_MAX / 2 - WORD_BITS) {
        errno = EINVAL;
        return -1;
    }
    int words = st->words ? st->words : 1;
    while (words <= fd / WORD_BITS) words *= 2;
    if (grow_one(&st->readers, words, st->words) < 0 ||
        grow_one(&st->writers, words, st->words) < 0 ||
        grow_one(&st->ready_r, words, st->words) < 0 ||
        grow_one(&st->ready_w, words, st->words) < 0)
        return -1; /* st->words unchanged: the larger arrays are used once all succeed */
    st->words = words;
    return 0;
}

static void select_big_destroy(void *state) {
    select_big_state *st = state;
    free(st->readers);
    free(st->writers);
    free(st->ready_r);
    free(st->ready_w);
    free(st->fired);
    free(st);
}

/* setsize: the loop's RLIMIT_NOFILE soft limit, so a run at a fixed limit never grows. */
static void *select_big_create(const cl_mech *mech, int setsize) {
    (void)mech;
    select_big_state *st = calloc(1, sizeof *st);
    if (st == NULL) return NULL;
    st->maxfd = -1;
    if (select_big_grow(st, (setsize > 1 ? setsize : FD_SETSIZE) - 1) < 0) {
        select_big_destroy(st);
        return NULL;
    }
    return st;
}

static int select_big_modify(void *state, int fd, int mask) {
    select_big_state *st = state;
    if (fd < 0) {
        errno = EINVAL;
        return -1;
    }
    if (fd / WORD_BITS >= st->words) {
        if (!(mask & (CL_READ | CL_WRITE))) return 0; /* never set: nothing to clear */
        if (select_big_grow(st, fd) < 0) return -1;
    }
    if (mask & CL_READ) bit_set(st->readers, fd);
    else bit_clear(st->readers, fd);
    if (mask & CL_WRITE) bit_set(st->writers, fd);
    else bit_clear(st->writers, fd);
    if ((mask & (CL_READ | CL_WRITE)) && fd > st->maxfd) st->maxfd = fd;
    while (st->maxfd >= 0 && !bit_test(st->readers, st->maxfd) &&
           !bit_test(st->writers, st->maxfd))
        st->maxfd--;
    return 0;
}

static int select_big_del(void *state, int fd) {
    return select_big_modify(state, fd, 0);
}

static int select_big_wait(void *state, cl_event **events) {
    select_big_state *st = state;
    /* The kernel reads and writes back only the words holding descriptors 0 .. maxfd. */
    size_t bytes = (size_t)(st->maxfd / WORD_BITS + 1) * sizeof(unsigned long);
    size_t slots = 2 * ((size_t)st->maxfd + 1); /* every watched fd ready both ways */
    if (slots > st->fired_cap) {
        cl_event *fired = realloc(st->fired, slots * sizeof *fired);
        if (fired == NULL) return -1;
        st->fired = fired;
        st->fired_cap = slots;
    }
    int n;
    do {
        if (st->maxfd >= 0) {
            memcpy(st->ready_r, st->readers, bytes);
            memcpy(st->ready_w, st->writers, bytes);
        }
        /* fd_set is a struct of one array of longs: the kernel sees only the words. */
        n = select(st->maxfd + 1, (fd_set *)(void *)st->ready_r, (fd_set *)(void *)st->ready_w,
                   NULL, NULL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    int k = 0;
    for (int fd = 0; fd <= st->maxfd; fd++)
        if (bit_test(st->ready_r, fd)) st->fired[k++] = (cl_event){fd, CL_READ};
    for (int fd = 0; fd <= st->maxfd; fd++)
        if (bit_test(st->ready_w, fd)) st->fired[k++] = (cl_event){fd, CL_WRITE};
    *events = st->fired;
    return k;
}

static const cl_mech cl_mech_select_big = {
    .name = "select-big",
    .edge_triggered = 0,
    /* 0: no number refused. accept() never returns a descriptor at or above RLIMIT_NOFILE,
     * and the bitmaps grow to any descriptor below it; c_server reports that limit. */
    .fd_limit = 0,
    .create = select_big_create,
    .add = select_big_modify,
    .modify = select_big_modify,
    .del = select_big_del,
    .wait = select_big_wait,
    .destroy = select_big_destroy,
};
CL_MECHANISM(cl_mech_select_big);
