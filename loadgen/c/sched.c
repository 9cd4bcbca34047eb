/* The open loop's schedule: intended send times in a min-heap, and what to do next.
 *
 * Pure functions of the clock values they are given, so tests drive them with a
 * fake clock (loadgen._cload.wait_plan / next_intended, tests/test_loadgen_core.py).
 */
#include <stdlib.h>

#include "cload.h"

int lg_heap_push(lg_heap *h, int64_t due, int fd) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        lg_slot *v = realloc(h->v, cap * sizeof *v);
        if (v == NULL) return -1;
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->v[parent].due <= due) break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = (lg_slot){due, fd};
    return 0;
}

lg_slot lg_heap_pop(lg_heap *h) {
    lg_slot top = h->v[0];
    lg_slot last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->n) break;
        if (child + 1 < h->n && h->v[child + 1].due < h->v[child].due) child++;
        if (last.due <= h->v[child].due) break;
        h->v[i] = h->v[child];
        i = child;
    }
    if (h->n > 0) h->v[i] = last;
    return top;
}

void lg_heap_free(lg_heap *h) {
    free(h->v);
    *h = (lg_heap){0};
}

enum lg_wait lg_wait_plan(int64_t now, int64_t next_due, int64_t until, int64_t spin_ns,
                          int64_t nap_ns, int64_t *ns) {
    *ns = 0;
    if (next_due <= now && next_due < until) return LG_SEND;
    if (now >= until) return LG_UNTIL;
    int64_t wake = next_due < until ? next_due : until;
    /* Only a send needs precision; the deadline (a tick) is met by a plain sleep. */
    int64_t margin = next_due < until ? spin_ns : 0;
    int64_t left = wake - margin - now;
    if (left <= 0) return LG_SPIN;
    /* Before a send: one long sleep to LG_NAP_HORIZON_NS before the spin, then naps of
     * at most nap_ns (the measurement is in core.c). A deadline needs no precision. */
    if (margin == 0 || nap_ns <= 0 || left <= nap_ns) *ns = left;
    else if (left > LG_NAP_HORIZON_NS) *ns = left - LG_NAP_HORIZON_NS;
    else *ns = nap_ns;
    return LG_SLEEP;
}

int64_t lg_tick_end(int64_t until, int64_t room_ns, int64_t next_due) {
    /* A send due before the tick is made before it anyway; one due later than the room
     * waits for the next run (INT64_MAX, no send pending, is never within the room). */
    if (room_ns <= 0 || next_due < until || next_due - until >= room_ns) return until;
    return next_due + 1;
}

int64_t lg_next_intended(int64_t intended, int64_t interval, int64_t t, int *send_now,
                         int64_t *lag_ns) {
    int64_t next = intended + interval;
    *send_now = next <= t;
    *lag_ns = *send_now ? t - next : 0;
    return next;
}

