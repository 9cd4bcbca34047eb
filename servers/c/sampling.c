/* Which wait calls read the thread CPU clock, and what the reading itself costs:
 * the C side of servers/sampling.py.
 *
 * Each call is sampled with probability 1/8, independently; the gaps between
 * sampled calls are geometric and drawn exactly as CallSampler.next_gap() draws
 * them: splitmix64 from the seed (servers/sampling.py says why that generator),
 * the top 53 bits of each output as a double u in [0, 1), then
 * 1 + int(log(1 - u) / log(7/8)). With the same seed the C twin samples the same
 * calls as the Python loop (tests/test_c_protocol.py compares the gaps).
 */
#include <math.h>
#include <stdlib.h>
#include <time.h>

#include "cloop.h"

/* sampling.py splitmix64 */
uint64_t cl_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void cl_sampler_init(cl_sampler *s, uint64_t seed) {
    s->state = seed;
    /* Computed at run time with the same libm as Python's math.log, not folded by
     * the compiler, so every gap is the same double arithmetic as in Python. */
    volatile double miss = 1.0 - 1.0 / 8;
    s->log_miss = log(miss);
}

int cl_sampler_next_gap(cl_sampler *s) {
    double u = (double)(cl_splitmix64(&s->state) >> 11) * (1.0 / 9007199254740992.0);
    return 1 + (int)(log(1.0 - u) / s->log_miss);
}

static int64_t thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* sampling.py calibrate_clock_pair: the sampled branch's clock reads (loop.c) with
 * nothing in between, `pairs` times; the median, as statistics.median then int(). */
int64_t cl_calibrate_clock_pair(int pairs) {
    if (pairs < 1) return 0;
    int64_t *costs = malloc((size_t)pairs * sizeof *costs);
    if (costs == NULL) return -1;
    for (int i = 0; i < pairs; i++) {
        int64_t c0 = thread_cpu_ns();
        volatile int64_t t0 = mono_ns();
        volatile int64_t t1 = mono_ns();
        (void)t0;
        (void)t1;
        costs[i] = thread_cpu_ns() - c0;
    }
    qsort(costs, (size_t)pairs, sizeof *costs, cmp_i64);
    int64_t median = pairs % 2 ? costs[pairs / 2]
                               : (int64_t)((costs[pairs / 2 - 1] + costs[pairs / 2]) / 2.0);
    free(costs);
    return median;
}
