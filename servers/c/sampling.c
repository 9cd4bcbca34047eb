/* Which wait calls read the thread CPU clock, and what the reading itself costs:
 * the C side of servers/sampling.py.
 *
 * Each call is sampled with probability 1/8, independently; the gaps between
 * sampled calls are geometric and drawn exactly as CallSampler.next_gap() draws
 * them: Python's random.Random(seed).random() (MT19937, seeded by
 * init_by_array with the seed's 32-bit words, 53-bit doubles), then
 * 1 + int(log(1 - u) / log(7/8)). With the same seed the C twin samples the
 * same calls as the Python loop (tests/test_c_protocol.py compares the gaps).
 */
#include <math.h>
#include <stdlib.h>
#include <time.h>

#include "cloop.h"

#define MT_N 624
#define MT_M 397

static void init_genrand(cl_sampler *s, uint32_t seed) {
    s->mt[0] = seed;
    for (int i = 1; i < MT_N; i++)
        s->mt[i] = 1812433253U * (s->mt[i - 1] ^ (s->mt[i - 1] >> 30)) + (uint32_t)i;
    s->mti = MT_N;
}

static void init_by_array(cl_sampler *s, const uint32_t *key, int len) {
    init_genrand(s, 19650218U);
    int i = 1, j = 0;
    for (int k = MT_N > len ? MT_N : len; k; k--) {
        s->mt[i] = (s->mt[i] ^ ((s->mt[i - 1] ^ (s->mt[i - 1] >> 30)) * 1664525U)) + key[j] +
                   (uint32_t)j;
        i++;
        j++;
        if (i >= MT_N) {
            s->mt[0] = s->mt[MT_N - 1];
            i = 1;
        }
        if (j >= len) j = 0;
    }
    for (int k = MT_N - 1; k; k--) {
        s->mt[i] = (s->mt[i] ^ ((s->mt[i - 1] ^ (s->mt[i - 1] >> 30)) * 1566083941U)) -
                   (uint32_t)i;
        i++;
        if (i >= MT_N) {
            s->mt[0] = s->mt[MT_N - 1];
            i = 1;
        }
    }
    s->mt[0] = 0x80000000U;
}

static uint32_t genrand(cl_sampler *s) {
    static const uint32_t mag01[2] = {0U, 0x9908b0dfU};
    uint32_t y;
    if (s->mti >= MT_N) {
        int k;
        for (k = 0; k < MT_N - MT_M; k++) {
            y = (s->mt[k] & 0x80000000U) | (s->mt[k + 1] & 0x7fffffffU);
            s->mt[k] = s->mt[k + MT_M] ^ (y >> 1) ^ mag01[y & 1U];
        }
        for (; k < MT_N - 1; k++) {
            y = (s->mt[k] & 0x80000000U) | (s->mt[k + 1] & 0x7fffffffU);
            s->mt[k] = s->mt[k + (MT_M - MT_N)] ^ (y >> 1) ^ mag01[y & 1U];
        }
        y = (s->mt[MT_N - 1] & 0x80000000U) | (s->mt[0] & 0x7fffffffU);
        s->mt[MT_N - 1] = s->mt[MT_M - 1] ^ (y >> 1) ^ mag01[y & 1U];
        s->mti = 0;
    }
    y = s->mt[s->mti++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680U;
    y ^= (y << 15) & 0xefc60000U;
    y ^= y >> 18;
    return y;
}

void cl_sampler_init(cl_sampler *s, uint64_t seed) {
    /* random.Random(seed): the key is the seed's 32-bit words, least significant
     * first, at least one. */
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    init_by_array(s, key, seed >> 32 ? 2 : 1);
    /* Computed at run time with the same libm as Python's math.log, not folded by
     * the compiler, so every gap is the same double arithmetic as in Python. */
    volatile double miss = 1.0 - 1.0 / 8;
    s->log_miss = log(miss);
}

int cl_sampler_next_gap(cl_sampler *s) {
    uint32_t a = genrand(s) >> 5, b = genrand(s) >> 6;
    double u = (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
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
