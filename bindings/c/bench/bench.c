/*
 * bench.c: the C guarded call against a bare atomic increment, in one process (budget G4:
 * C guarded call <= Rust guarded call + 2 ns; `make bench` runs the Rust figure beside it).
 *
 *   baseline_fetch_add               atomic_fetch_add (relaxed) on a C11 atomic
 *   surgewall_closed_success         surgewall_breaker_acquire + surgewall_breaker_record
 *   surgewall_closed_success_fast    acquire from the state word (surgewall_breaker_get_fast_path),
 *                                    record through the ABI
 *   surgewall_keyed_breaker          surgewall_keyed_breaker_acquire + _record over 10 000 keys
 *                                    cycled (the Rust `keyed` group's call, through the ABI)
 *
 * The breaker is CLOSED, configured as the Rust bench's (50 %, 20 calls, 60 s / 10 buckets,
 * open 5 s, 3 probes) on the coarse clock, ticked every 500 us by a thread as the agent does.
 * Each figure is the best of several rounds (ns per call).
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "surgewall.h"

#define ROUNDS 7

static atomic_int stop_ticker;
static _Atomic uint64_t counter;

static void *ticker(void *arg)
{
    (void)arg;
    struct timespec half_ms = {0, 500000};
    while (!atomic_load_explicit(&stop_ticker, memory_order_relaxed)) {
        surgewall_clock_tick();
        nanosleep(&half_ms, NULL);
    }
    surgewall_clock_stop_ticking();
    return NULL;
}

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static const surgewall_breaker *breaker;
static surgewall_breaker_fast_path fast;
static int failures;

static void run_baseline(long n)
{
    for (long i = 0; i < n; i++) {
        atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed);
    }
}

static void run_abi(long n)
{
    for (long i = 0; i < n; i++) {
        surgewall_permit p;
        if (surgewall_breaker_acquire(breaker, &p, NULL) != SURGEWALL_OK ||
            surgewall_breaker_record(breaker, p, SURGEWALL_OUTCOME_SUCCESS) != SURGEWALL_OK) {
            failures++;
        }
    }
}

static inline int fast_acquire(surgewall_permit *p)
{
    uint64_t w = __atomic_load_n(fast.state_word, __ATOMIC_ACQUIRE);
    uint64_t state = w & 7;
    if (!fast.times_calls && (state == SURGEWALL_STATE_CLOSED || state == SURGEWALL_STATE_DISABLED ||
                              state == SURGEWALL_STATE_METRICS_ONLY)) {
        p->token = (w >> 24) ^ fast.salt;
        p->start_ns = 0;
        return SURGEWALL_OK;
    }
    return surgewall_breaker_acquire(breaker, p, NULL);
}

static void run_fast(long n)
{
    for (long i = 0; i < n; i++) {
        surgewall_permit p;
        if (fast_acquire(&p) != SURGEWALL_OK ||
            surgewall_breaker_record(breaker, p, SURGEWALL_OUTCOME_SUCCESS) != SURGEWALL_OK) {
            failures++;
        }
    }
}

#define KEYS 10000

static const surgewall_keyed_breaker *keyed;

static void run_keyed(long n)
{
    uint64_t k = 0;
    for (long i = 0; i < n; i++) {
        surgewall_keyed_breaker_permit p;
        k = k + 1 == KEYS ? 0 : k + 1;
        if (surgewall_keyed_breaker_acquire(keyed, k, &p, NULL) != SURGEWALL_OK ||
            surgewall_keyed_breaker_record(keyed, p, SURGEWALL_OUTCOME_SUCCESS) != SURGEWALL_OK) {
            failures++;
        }
    }
}

/* Best ns/call over ROUNDS rounds of n calls (after one warm-up round). */
static double measure(void (*f)(long), long n)
{
    double best = 1e300;
    f(n / 4);
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = now_ns();
        f(n);
        double dt = (now_ns() - t0) / (double)n;
        if (dt < best) best = dt;
    }
    return best;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 20000000L;
    pthread_t tick;
    pthread_create(&tick, NULL, ticker, NULL);
    struct timespec settle = {0, 2000000};
    nanosleep(&settle, NULL);

    surgewall_breaker_config *cfg = NULL;
    surgewall_breaker_config_new(&cfg);
    surgewall_breaker_config_set_failure_rate(cfg, 0.5);
    surgewall_breaker_config_set_minimum_calls(cfg, 20);
    surgewall_breaker_config_set_time_window(cfg, 60LL * 1000000000, 10);
    surgewall_breaker_config_set_open_for(cfg, 5LL * 1000000000);
    surgewall_breaker_config_set_half_open_calls(cfg, 3);
    surgewall_breaker *b = NULL;
    if (surgewall_breaker_new((const uint8_t *)"bench", 5, cfg, &b, NULL) != SURGEWALL_OK ||
        surgewall_breaker_get_fast_path(b, &fast) != SURGEWALL_OK) {
        fprintf(stderr, "bench: cannot build the breaker\n");
        return 1;
    }
    breaker = b;

    /* the same thresholds for every key */
    surgewall_breaker_config_new(&cfg);
    surgewall_breaker_config_set_failure_rate(cfg, 0.5);
    surgewall_breaker_config_set_minimum_calls(cfg, 20);
    surgewall_breaker_config_set_time_window(cfg, 60LL * 1000000000, 10);
    surgewall_breaker_config_set_open_for(cfg, 5LL * 1000000000);
    surgewall_breaker_config_set_half_open_calls(cfg, 3);
    surgewall_keyed_breaker_config *kcfg = NULL;
    surgewall_keyed_breaker *kb = NULL;
    if (surgewall_keyed_breaker_config_new(cfg, &kcfg) != SURGEWALL_OK ||
        surgewall_keyed_breaker_config_set_max_keys(kcfg, 2 * KEYS, false) != SURGEWALL_OK ||
        surgewall_keyed_breaker_new(kcfg, &kb, NULL) != SURGEWALL_OK) {
        fprintf(stderr, "bench: cannot build the keyed breaker\n");
        return 1;
    }
    keyed = kb;

    double base = measure(run_baseline, n);
    double abi = measure(run_abi, n);
    double fp = measure(run_fast, n);
    double kd = measure(run_keyed, n / 4);

    atomic_store(&stop_ticker, 1);
    pthread_join(tick, NULL);
    surgewall_breaker_stats m;
    surgewall_breaker_metrics(b, &m);
    surgewall_breaker_free(b);
    surgewall_keyed_breaker_stats km;
    surgewall_keyed_breaker_metrics(kb, &km);
    surgewall_keyed_breaker_free(kb);
    if (km.keys != KEYS) {
        fprintf(stderr, "bench: %" PRIu64 " keys, wanted %d\n", km.keys, KEYS);
        return 1;
    }
    if (failures != 0 || m.state != SURGEWALL_STATE_CLOSED) {
        fprintf(stderr, "bench: %d calls failed, state %d\n", failures, (int)m.state);
        return 1;
    }
    printf("c/baseline_fetch_add               %7.3f ns/call\n", base);
    printf("c/surgewall_closed_success         %7.3f ns/call  %5.2fx baseline\n", abi, abi / base);
    printf("c/surgewall_closed_success_fast    %7.3f ns/call  %5.2fx baseline\n", fp, fp / base);
    printf("c/surgewall_keyed_breaker          %7.3f ns/call  (10 000 keys; compare keyed/surgewall_keyed_breaker)\n", kd);
    return 0;
}
