/*
 * threads.c: many pthreads hammering one breaker and one bulkhead through the C ABI, with the
 * counts checked afterwards. Usage: threads [ITERATIONS_PER_THREAD]
 *
 * Breaker: worker threads acquire and record (a quarter failures, so the breaker trips,
 * probes and closes again on the real clock) while a chaos thread forces it open, closes and
 * resets it and others read metrics. Afterwards every permit is accounted for:
 * successes + failures + late = recorded, and the rejections match.
 * Keyed breaker: workers call 64 keys (a quarter failures) while a chaos thread sweeps idle
 * keys away (a TTL of 0), forces keys open, resets them and lists them; every permit is
 * accounted for in the same way, and the key cap holds.
 * Bulkhead: workers take slots (try and timed waits); a shared counter proves in-flight never
 * exceeds max_concurrent, and the bulkhead's own count is back to 0 at the end.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "check.h"

#define WORKERS 4
#define MS 1000000LL

static long iterations = 200000;

/* ---------------------------------------------------------------- one breaker */

struct breaker_counts {
    uint64_t acquired, rejected, counted, late, other;
};

static const surgewall_breaker *shared_breaker;
static atomic_int chaos_done;

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *breaker_worker(void *arg)
{
    struct breaker_counts *c = arg;
    uint64_t seed = (uint64_t)(uintptr_t)arg | 1;
    for (long i = 0; i < iterations; i++) {
        surgewall_permit p;
        surgewall_status s = surgewall_breaker_acquire(shared_breaker, &p, NULL);
        if (s == SURGEWALL_REJECTED_OPEN || s == SURGEWALL_REJECTED_HALF_OPEN ||
            s == SURGEWALL_REJECTED_FORCED_OPEN) {
            c->rejected++;
            continue;
        }
        if (s != SURGEWALL_OK) {
            c->other++;
            continue;
        }
        c->acquired++;
        int32_t outcome = (next_rand(&seed) % 4 == 0) ? SURGEWALL_OUTCOME_FAILURE : SURGEWALL_OUTCOME_SUCCESS;
        s = surgewall_breaker_record(shared_breaker, p, outcome);
        if (s == SURGEWALL_OK) {
            c->counted++;
        } else if (s == SURGEWALL_LATE_RESULT) {
            c->late++;
        } else {
            c->other++;
            fprintf(stderr, "record: %s\n", surgewall_status_str(s));
        }
    }
    return NULL;
}

static void *breaker_chaos(void *arg)
{
    (void)arg;
    for (int i = 0; !atomic_load(&chaos_done); i++) {
        switch (i % 4) {
        case 0: surgewall_breaker_force_open(shared_breaker, 1 * MS); break;
        case 1: surgewall_breaker_close(shared_breaker); break;
        case 2: surgewall_breaker_reset(shared_breaker); break;
        default: {
            surgewall_breaker_stats m;
            surgewall_state st;
            surgewall_breaker_metrics(shared_breaker, &m);
            surgewall_breaker_state(shared_breaker, &st);
        }
        }
        sched_yield();
    }
    return NULL;
}

static void test_one_breaker(void)
{
    surgewall_breaker_config *cfg = NULL;
    CHECK_OK(surgewall_breaker_config_new(&cfg));
    CHECK_OK(surgewall_breaker_config_set_precise_clock(cfg));
    CHECK_OK(surgewall_breaker_config_set_failure_rate(cfg, 0.5));
    CHECK_OK(surgewall_breaker_config_set_minimum_calls(cfg, 20));
    CHECK_OK(surgewall_breaker_config_set_count_window(cfg, 20));
    CHECK_OK(surgewall_breaker_config_set_open_for(cfg, 200000)); /* 0.2 ms: trips and recovers often */
    CHECK_OK(surgewall_breaker_config_set_half_open_calls(cfg, 3));
    surgewall_breaker *b = NULL;
    CHECK_OK(surgewall_breaker_new((const uint8_t *)"hammered", 8, cfg, &b, NULL));
    shared_breaker = b;

    pthread_t t[WORKERS], chaos;
    struct breaker_counts counts[WORKERS];
    memset(counts, 0, sizeof counts);
    atomic_store(&chaos_done, 0);
    CHECK(pthread_create(&chaos, NULL, breaker_chaos, NULL) == 0);
    for (int i = 0; i < WORKERS; i++) {
        CHECK(pthread_create(&t[i], NULL, breaker_worker, &counts[i]) == 0);
    }
    for (int i = 0; i < WORKERS; i++) {
        pthread_join(t[i], NULL);
    }
    atomic_store(&chaos_done, 1);
    pthread_join(chaos, NULL);

    struct breaker_counts sum = {0, 0, 0, 0, 0};
    for (int i = 0; i < WORKERS; i++) {
        sum.acquired += counts[i].acquired;
        sum.rejected += counts[i].rejected;
        sum.counted += counts[i].counted;
        sum.late += counts[i].late;
        sum.other += counts[i].other;
    }
    surgewall_breaker_stats m;
    CHECK_OK(surgewall_breaker_metrics(b, &m));
    printf("breaker: %" PRIu64 " admitted (%" PRIu64 " counted, %" PRIu64 " late), %" PRIu64
           " rejected, %" PRIu64 " generations\n",
           sum.acquired, sum.counted, sum.late, sum.rejected, m.generation);
    CHECK_U64(sum.other, 0);
    CHECK_U64(sum.acquired + sum.rejected, (uint64_t)iterations * WORKERS);
    CHECK_U64(sum.counted + sum.late, sum.acquired);
    CHECK_U64(m.successes + m.failures + m.late_results, sum.acquired); /* every permit recorded once */
    CHECK_U64(m.successes + m.failures, sum.counted);
    CHECK_U64(m.late_results, sum.late);
    CHECK_U64(m.rejected_open + m.rejected_half_open, sum.rejected);
    CHECK_U64(m.unexpected_results, 0);
    CHECK_U64(m.ignored, 0);
    CHECK(m.generation > 0); /* it did move through states while being hammered */
    CHECK_OK(surgewall_breaker_free(b));
}

/* ---------------------------------------------------------------- one keyed breaker */

#define KEYS 64
#define MAX_KEYS 48

struct keyed_counts {
    uint64_t acquired, rejected, full, counted, failures, late, other;
};

static const surgewall_keyed_breaker *shared_keyed;

static void *keyed_worker(void *arg)
{
    struct keyed_counts *c = arg;
    uint64_t seed = (uint64_t)(uintptr_t)arg | 1;
    for (long i = 0; i < iterations; i++) {
        surgewall_keyed_breaker_permit p;
        uint64_t key = next_rand(&seed) % KEYS;
        surgewall_status s = surgewall_keyed_breaker_acquire(shared_keyed, key, &p, NULL);
        if (s == SURGEWALL_REJECTED_OPEN || s == SURGEWALL_REJECTED_HALF_OPEN ||
            s == SURGEWALL_REJECTED_FORCED_OPEN) {
            c->rejected++;
            continue;
        }
        if (s == SURGEWALL_REGISTRY_FULL) {
            c->full++;
            continue;
        }
        if (s != SURGEWALL_OK) {
            c->other++;
            continue;
        }
        c->acquired++;
        int failed = next_rand(&seed) % 4 == 0;
        s = surgewall_keyed_breaker_record(shared_keyed, p,
                                           failed ? SURGEWALL_OUTCOME_FAILURE : SURGEWALL_OUTCOME_SUCCESS);
        if (s == SURGEWALL_OK) {
            c->counted++;
            c->failures += (uint64_t)failed;
        } else if (s == SURGEWALL_LATE_RESULT) {
            c->late++;
        } else {
            c->other++;
            fprintf(stderr, "keyed record: %s\n", surgewall_status_str(s));
        }
    }
    return NULL;
}

static void count_key(void *user, uint64_t key, const surgewall_keyed_breaker_key_stats *s)
{
    (void)s;
    if (key < KEYS) {
        (*(uint64_t *)user)++;
    }
}

struct keyed_chaos_counts { uint64_t swept, refused; };

static void *keyed_chaos(void *arg)
{
    struct keyed_chaos_counts *c = arg;
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; !atomic_load(&chaos_done); i++) {
        uint64_t key = next_rand(&seed) % KEYS, n = 0;
        surgewall_status s = SURGEWALL_OK;
        switch (i % 5) {
        case 0: s = surgewall_keyed_breaker_force_open(shared_keyed, key, 1 * MS); break;
        case 1: s = surgewall_keyed_breaker_reset(shared_keyed, key); break;
        case 2:
            CHECK_OK(surgewall_keyed_breaker_sweep(shared_keyed, &n));
            c->swept += n;
            break;
        case 3: CHECK_OK(surgewall_keyed_breaker_for_each(shared_keyed, count_key, &n)); break;
        default: {
            surgewall_keyed_breaker_stats m;
            CHECK_OK(surgewall_keyed_breaker_metrics(shared_keyed, &m));
            CHECK(m.keys <= MAX_KEYS);
        }
        }
        if (s == SURGEWALL_REGISTRY_FULL) {
            c->refused++; /* a new key beyond the cap */
        } else {
            CHECK_OK(s);
        }
        sched_yield();
    }
    return NULL;
}

static void test_one_keyed_breaker(void)
{
    surgewall_breaker_config *tmpl = NULL;
    CHECK_OK(surgewall_breaker_config_new(&tmpl));
    CHECK_OK(surgewall_breaker_config_set_precise_clock(tmpl));
    CHECK_OK(surgewall_breaker_config_set_failure_rate(tmpl, 0.5));
    CHECK_OK(surgewall_breaker_config_set_minimum_calls(tmpl, 8));
    CHECK_OK(surgewall_breaker_config_set_count_window(tmpl, 16));
    CHECK_OK(surgewall_breaker_config_set_consecutive_failures(tmpl, 3));
    CHECK_OK(surgewall_breaker_config_set_open_for(tmpl, 200000)); /* 0.2 ms */
    CHECK_OK(surgewall_breaker_config_set_half_open_calls(tmpl, 2));
    surgewall_keyed_breaker_config *cfg = NULL;
    CHECK_OK(surgewall_keyed_breaker_config_new(tmpl, &cfg));
    CHECK_OK(surgewall_keyed_breaker_config_set_max_keys(cfg, MAX_KEYS, false));
    CHECK_OK(surgewall_keyed_breaker_config_set_idle_ttl(cfg, 0));
    surgewall_keyed_breaker *kb = NULL;
    CHECK_OK(surgewall_keyed_breaker_new(cfg, &kb, NULL));
    shared_keyed = kb;

    pthread_t t[WORKERS], chaos;
    struct keyed_counts counts[WORKERS];
    memset(counts, 0, sizeof counts);
    struct keyed_chaos_counts chaotic = {0, 0};
    atomic_store(&chaos_done, 0);
    CHECK(pthread_create(&chaos, NULL, keyed_chaos, &chaotic) == 0);
    for (int i = 0; i < WORKERS; i++) {
        CHECK(pthread_create(&t[i], NULL, keyed_worker, &counts[i]) == 0);
    }
    for (int i = 0; i < WORKERS; i++) {
        pthread_join(t[i], NULL);
    }
    atomic_store(&chaos_done, 1);
    pthread_join(chaos, NULL);

    struct keyed_counts sum = {0, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < WORKERS; i++) {
        sum.acquired += counts[i].acquired;
        sum.rejected += counts[i].rejected;
        sum.full += counts[i].full;
        sum.counted += counts[i].counted;
        sum.failures += counts[i].failures;
        sum.late += counts[i].late;
        sum.other += counts[i].other;
    }
    surgewall_keyed_breaker_stats m;
    CHECK_OK(surgewall_keyed_breaker_metrics(kb, &m));
    printf("keyed breaker: %" PRIu64 " admitted (%" PRIu64 " counted, %" PRIu64 " late), %" PRIu64
           " rejected, %" PRIu64 " refused at the cap, %" PRIu64 " keys evicted\n",
           sum.acquired, sum.counted, sum.late, sum.rejected, sum.full, m.evicted);
    CHECK_U64(sum.other, 0);
    CHECK_U64(sum.acquired + sum.rejected + sum.full, (uint64_t)iterations * WORKERS);
    CHECK_U64(sum.counted + sum.late, sum.acquired); /* every permit recorded once */
    CHECK_U64(m.late_results, sum.late);
    CHECK_U64(m.failures, sum.failures);
    CHECK_U64(m.rejected_open + m.rejected_half_open, sum.rejected);
    CHECK_U64(m.refused_keys, sum.full + chaotic.refused);
    CHECK_U64(m.unexpected_results, 0);
    CHECK_U64(m.evicted, chaotic.swept);
    CHECK_U64(m.created, m.keys + m.evicted);
    CHECK(m.keys <= MAX_KEYS);
    CHECK_OK(surgewall_keyed_breaker_free(kb));
}

/* ---------------------------------------------------------------- one bulkhead */

#define MAX_CONCURRENT 3

static const surgewall_bulkhead *shared_bulkhead;
static atomic_long in_flight;
static atomic_long max_seen;

struct bulkhead_counts {
    uint64_t admitted, full, timeout, other;
};

static void *bulkhead_worker(void *arg)
{
    struct bulkhead_counts *c = arg;
    long n = iterations / 4;
    for (long i = 0; i < n; i++) {
        /* every third call waits (up to 1 ms), the others try */
        surgewall_status s = (i % 3 == 0) ? surgewall_bulkhead_acquire(shared_bulkhead, 1 * MS)
                                          : surgewall_bulkhead_try_acquire(shared_bulkhead);
        if (s == SURGEWALL_BULKHEAD_FULL) {
            c->full++;
            continue;
        }
        if (s == SURGEWALL_TIMEOUT) {
            c->timeout++;
            continue;
        }
        if (s != SURGEWALL_OK) {
            c->other++;
            continue;
        }
        c->admitted++;
        long now = atomic_fetch_add(&in_flight, 1) + 1;
        long seen = atomic_load(&max_seen);
        while (now > seen && !atomic_compare_exchange_weak(&max_seen, &seen, now)) {
        }
        if (i % 7 == 0) {
            sched_yield(); /* hold the slot a little */
        }
        atomic_fetch_sub(&in_flight, 1);
        if (surgewall_bulkhead_release(shared_bulkhead) != SURGEWALL_OK) {
            c->other++;
        }
    }
    return NULL;
}

static void test_one_bulkhead(void)
{
    surgewall_bulkhead *bh = NULL;
    CHECK_OK(surgewall_bulkhead_new((const uint8_t *)"pool", 4, MAX_CONCURRENT, 1 * MS, NULL, &bh, NULL));
    shared_bulkhead = bh;
    atomic_store(&in_flight, 0);
    atomic_store(&max_seen, 0);
    pthread_t t[WORKERS];
    struct bulkhead_counts counts[WORKERS];
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < WORKERS; i++) {
        CHECK(pthread_create(&t[i], NULL, bulkhead_worker, &counts[i]) == 0);
    }
    for (int i = 0; i < WORKERS; i++) {
        pthread_join(t[i], NULL);
    }
    struct bulkhead_counts sum = {0, 0, 0, 0};
    for (int i = 0; i < WORKERS; i++) {
        sum.admitted += counts[i].admitted;
        sum.full += counts[i].full;
        sum.timeout += counts[i].timeout;
        sum.other += counts[i].other;
    }
    surgewall_bulkhead_stats m;
    CHECK_OK(surgewall_bulkhead_metrics(bh, &m));
    printf("bulkhead: %" PRIu64 " admitted, %" PRIu64 " full, %" PRIu64 " timed out, max %ld in flight\n",
           sum.admitted, sum.full, sum.timeout, atomic_load(&max_seen));
    CHECK_U64(sum.other, 0);
    CHECK_U64(sum.admitted + sum.full + sum.timeout, (uint64_t)(iterations / 4) * WORKERS);
    CHECK(atomic_load(&max_seen) <= MAX_CONCURRENT);
    CHECK(atomic_load(&max_seen) >= 1);
    CHECK_U64(m.active, 0);
    CHECK_U64(m.waiting, 0);
    CHECK_U64(m.max_concurrent, MAX_CONCURRENT);
    CHECK_U64(m.accepted, sum.admitted);
    CHECK_U64(m.rejected, sum.full);
    CHECK_U64(m.timed_out, sum.timeout);
    CHECK_U64(m.unexpected_releases, 0);
    CHECK_OK(surgewall_bulkhead_free(bh));
}

/* ---------------------------------------------------------------- handles across threads */

static void *clone_and_free(void *arg)
{
    const surgewall_breaker *b = arg;
    int bad = 0;
    for (int i = 0; i < 2000; i++) {
        surgewall_breaker *c = NULL;
        bad |= surgewall_breaker_clone(b, &c) != SURGEWALL_OK;
        surgewall_permit p;
        if (surgewall_breaker_acquire(c, &p, NULL) == SURGEWALL_OK) {
            bad |= surgewall_breaker_record(b, p, SURGEWALL_OUTCOME_SUCCESS) != SURGEWALL_OK;
        }
        bad |= surgewall_breaker_free(c) != SURGEWALL_OK;
        bad |= surgewall_breaker_free(c) != SURGEWALL_INVALID_HANDLE;
    }
    return (void *)(uintptr_t)bad;
}

static void test_handles_across_threads(void)
{
    /* the handle tables under concurrent create/free: every clone is distinct and freed once */
    surgewall_breaker_config *cfg = NULL;
    CHECK_OK(surgewall_breaker_config_new(&cfg));
    surgewall_breaker *b = NULL;
    CHECK_OK(surgewall_breaker_new((const uint8_t *)"cloned", 6, cfg, &b, NULL));
    pthread_t t[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        CHECK(pthread_create(&t[i], NULL, clone_and_free, b) == 0);
    }
    for (int i = 0; i < WORKERS; i++) {
        void *bad = NULL;
        pthread_join(t[i], &bad);
        CHECK(bad == NULL);
    }
    surgewall_breaker_stats m;
    CHECK_OK(surgewall_breaker_metrics(b, &m));
    CHECK_U64(m.successes, 2000 * WORKERS);
    CHECK_OK(surgewall_breaker_free(b));
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        iterations = strtol(argv[1], NULL, 10);
        if (iterations < 4) {
            iterations = 4;
        }
    }
    test_one_breaker();
    test_one_keyed_breaker();
    test_one_bulkhead();
    test_handles_across_threads();
    return check_report();
}
