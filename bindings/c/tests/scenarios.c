/*
 * scenarios.c: the C runner of the shared semantic scenarios (bindings/scenarios.txt; the
 * grammar is at the top of that file, the Rust runner is core/tests/scenarios.rs).
 * Usage: scenarios PATH/TO/scenarios.txt
 *
 * Every scenario runs through the C ABI on a fresh breaker driven by a mock clock; each one
 * counts as one check in the final "N passed, N failed" line.
 */
#include <math.h>
#include <stdlib.h>

#include "check.h"

#define MS 1000000LL
#define MAX_WORDS 32
#define MAX_HELD 16

struct run {
    surgewall_mock_clock *clock;
    surgewall_breaker *breaker;
    char held_name[MAX_HELD][32];
    surgewall_permit held[MAX_HELD];
    int nheld;
    surgewall_slo *slo;            /* the `slo` command's tracker, or NULL */
    surgewall_retry_policy *retry; /* the `retry` command's policy, or NULL */
    surgewall_retry_budget *budget;
    surgewall_bulkhead *bulkhead; /* the `bulkhead` command's, or NULL */
    const char *name;
    int line;
    int failed; /* steps that failed in this scenario */
};

static void fail(struct run *r, const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "%s (line %d): ", r->name, r->line);
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    r->failed++;
}

/* The value of KEY=VALUE among words, or NULL; a bare word KEY gives "". */
static const char *opt(char **w, int n, const char *key)
{
    size_t k = strlen(key);
    for (int i = 0; i < n; i++) {
        if (strncmp(w[i], key, k) == 0 && (w[i][k] == '=' || w[i][k] == '\0')) {
            return w[i][k] == '=' ? w[i] + k + 1 : "";
        }
    }
    return NULL;
}

static int64_t ms(const char *v) { return strtoll(v, NULL, 10) * MS; }

static int32_t outcome(struct run *r, const char *s)
{
    if (strcmp(s, "success") == 0) return SURGEWALL_OUTCOME_SUCCESS;
    if (strcmp(s, "failure") == 0) return SURGEWALL_OUTCOME_FAILURE;
    if (strcmp(s, "ignored") == 0) return SURGEWALL_OUTCOME_IGNORED;
    fail(r, "unknown outcome %s%s", s, "");
    return -1;
}

static void expect_status(struct run *r, surgewall_status got, surgewall_status want, const char *what)
{
    if (got != want) {
        fprintf(stderr, "%s (line %d): %s returned %s, wanted %s\n", r->name, r->line, what,
                surgewall_status_str(got), surgewall_status_str(want));
        r->failed++;
    }
}

static void configure(struct run *r, char **w, int n)
{
    surgewall_breaker_config *cfg = NULL;
    const char *v, *v2;
    expect_status(r, surgewall_mock_clock_new(&r->clock), SURGEWALL_OK, "mock_clock_new");
    expect_status(r, surgewall_breaker_config_new(&cfg), SURGEWALL_OK, "config_new");
    expect_status(r, surgewall_breaker_config_set_mock_clock(cfg, r->clock), SURGEWALL_OK, "set_mock_clock");
    if ((v = opt(w, n, "failure_rate")) != NULL)
        surgewall_breaker_config_set_failure_rate(cfg, strtod(v, NULL));
    if (opt(w, n, "no_failure_rate") != NULL)
        surgewall_breaker_config_disable_failure_rate(cfg);
    if ((v = opt(w, n, "slow_rate")) != NULL && (v2 = opt(w, n, "slow_ms")) != NULL)
        surgewall_breaker_config_set_slow_calls(cfg, strtod(v, NULL), ms(v2));
    if ((v = opt(w, n, "consecutive_failures")) != NULL)
        surgewall_breaker_config_set_consecutive_failures(cfg, (uint32_t)strtoul(v, NULL, 10));
    if ((v = opt(w, n, "minimum_calls")) != NULL)
        surgewall_breaker_config_set_minimum_calls(cfg, (uint32_t)strtoul(v, NULL, 10));
    if ((v = opt(w, n, "count_window")) != NULL)
        surgewall_breaker_config_set_count_window(cfg, (uint32_t)strtoul(v, NULL, 10));
    if ((v = opt(w, n, "time_window_ms")) != NULL && (v2 = opt(w, n, "buckets")) != NULL)
        surgewall_breaker_config_set_time_window(cfg, ms(v), (uint32_t)strtoul(v2, NULL, 10));
    if ((v = opt(w, n, "open_for_ms")) != NULL)
        surgewall_breaker_config_set_open_for(cfg, ms(v));
    if ((v = opt(w, n, "backoff")) != NULL && (v2 = opt(w, n, "max_open_ms")) != NULL)
        surgewall_breaker_config_set_open_backoff(cfg, strtod(v, NULL), ms(v2), 0.0);
    if ((v = opt(w, n, "half_open_calls")) != NULL)
        surgewall_breaker_config_set_half_open_calls(cfg, (uint32_t)strtoul(v, NULL, 10));
    if ((v = opt(w, n, "half_open_max_ms")) != NULL)
        surgewall_breaker_config_set_half_open_max_duration(cfg, ms(v));
    surgewall_error *err = NULL;
    surgewall_status s = surgewall_breaker_new((const uint8_t *)"scenario", 8, cfg, &r->breaker, &err);
    if (s != SURGEWALL_OK) {
        fail(r, "scenario config refused: %s: %s", surgewall_error_field(err), surgewall_error_message(err));
        surgewall_error_free(err);
        r->breaker = NULL;
    }
}

static const char *state_name(surgewall_state s)
{
    switch (s) {
    case SURGEWALL_STATE_CLOSED: return "closed";
    case SURGEWALL_STATE_OPEN: return "open";
    case SURGEWALL_STATE_HALF_OPEN: return "half_open";
    case SURGEWALL_STATE_FORCED_OPEN: return "forced_open";
    case SURGEWALL_STATE_DISABLED: return "disabled";
    case SURGEWALL_STATE_METRICS_ONLY: return "metrics_only";
    default: return "?";
    }
}

static void expect(struct run *r, char **w, int n)
{
    surgewall_breaker_stats m;
    expect_status(r, surgewall_breaker_metrics(r->breaker, &m), SURGEWALL_OK, "metrics");
    for (int i = 1; i < n; i++) {
        char key[64];
        const char *eq = strchr(w[i], '=');
        if (eq == NULL || (size_t)(eq - w[i]) >= sizeof key) {
            fail(r, "bad expectation %s%s", w[i], "");
            continue;
        }
        memcpy(key, w[i], (size_t)(eq - w[i]));
        key[eq - w[i]] = '\0';
        const char *want = eq + 1;
        char got[64];
        uint64_t v = 0;
        int number = 1;
        if (strcmp(key, "state") == 0) {
            snprintf(got, sizeof got, "%s", state_name(m.state));
            number = 0;
        } else if (strcmp(key, "generation") == 0) v = m.generation;
        else if (strcmp(key, "successes") == 0) v = m.successes;
        else if (strcmp(key, "failures") == 0) v = m.failures;
        else if (strcmp(key, "ignored") == 0) v = m.ignored;
        else if (strcmp(key, "slow") == 0) v = m.slow_calls;
        else if (strcmp(key, "rejected_open") == 0) v = m.rejected_open;
        else if (strcmp(key, "rejected_half_open") == 0) v = m.rejected_half_open;
        else if (strcmp(key, "late") == 0) v = m.late_results;
        else if (strcmp(key, "window_calls") == 0) v = m.window.calls;
        else if (strcmp(key, "window_failures") == 0) v = m.window.failures;
        else if (strcmp(key, "consecutive_opens") == 0) v = m.consecutive_opens;
        else if (strcmp(key, "last_window_calls") == 0) v = m.last_window.calls;
        else if (strcmp(key, "last_window_failures") == 0) v = m.last_window.failures;
        else if (strcmp(key, "minimum_calls") == 0) v = m.minimum_calls;
        else if (strcmp(key, "retry_after_ms") == 0) v = m.retry_after_ns / (uint64_t)MS;
        else if (strcmp(key, "transitions") == 0) {
            for (int from = 0; from < 6; from++)
                for (int to = 0; to < 6; to++) v += m.transitions[from][to];
        } else if (strcmp(key, "failure_rate") == 0 || strcmp(key, "last_failure_rate") == 0) {
            /* A rate: NaN is "absent"; a number is compared within 1e-9. */
            double rate = key[0] == 'f' ? m.window.failure_rate : m.last_window.failure_rate;
            int ok = strcmp(want, "absent") == 0 ? isnan(rate)
                                                  : !isnan(rate) && fabs(rate - atof(want)) < 1e-9;
            if (!ok) {
                fprintf(stderr, "%s (line %d): %s is %g, wanted %s\n", r->name, r->line, key, rate, want);
                r->failed++;
            }
            continue;
        } else {
            fail(r, "unknown metric %s%s", key, "");
            continue;
        }
        if (number) {
            snprintf(got, sizeof got, "%" PRIu64, v);
        }
        if (strcmp(got, want) != 0) {
            fprintf(stderr, "%s (line %d): %s is %s, wanted %s\n", r->name, r->line, key, got, want);
            r->failed++;
        }
    }
}

static surgewall_permit *held(struct run *r, const char *name, int create)
{
    for (int i = 0; i < r->nheld; i++) {
        if (strcmp(r->held_name[i], name) == 0) {
            return &r->held[i];
        }
    }
    if (!create || r->nheld == MAX_HELD || strlen(name) >= sizeof r->held_name[0]) {
        fail(r, "no held permit %s%s", name, "");
        return NULL;
    }
    snprintf(r->held_name[r->nheld], sizeof r->held_name[0], "%s", name);
    return &r->held[r->nheld++];
}

/* ---- the SLO, retry, budget and threshold commands (issue 17) ---- */

/* Builds an SLO tracker from KEY=VALUE words; NULL (and *err) when refused. */
static surgewall_slo *slo_new(struct run *r, char **w, int n, surgewall_error **err)
{
    surgewall_slo_config *cfg = NULL;
    surgewall_slo *out = NULL;
    const char *v;
    expect_status(r, surgewall_slo_config_new(&cfg), SURGEWALL_OK, "slo_config_new");
    surgewall_slo_config_set_mock_clock(cfg, r->clock);
    if ((v = opt(w, n, "objective")) != NULL) surgewall_slo_config_set_objective(cfg, strtod(v, NULL));
    if ((v = opt(w, n, "window_ms")) != NULL) surgewall_slo_config_set_window(cfg, ms(v));
    for (int fast = 1; fast >= 0; fast--) {
        if ((v = opt(w, n, fast ? "fast" : "slow")) == NULL) continue;
        char *end;
        int64_t lo = strtoll(v, &end, 10) * MS;
        int64_t sh = strtoll(end + 1, &end, 10) * MS;
        double t = strtod(end + 1, NULL);
        if (fast) surgewall_slo_config_set_fast_burn(cfg, lo, sh, t);
        else surgewall_slo_config_set_slow_burn(cfg, lo, sh, t);
    }
    if ((v = opt(w, n, "burn_bucket_ms")) != NULL) surgewall_slo_config_set_burn_bucket(cfg, ms(v));
    if ((v = opt(w, n, "recovery")) != NULL) surgewall_slo_config_set_recovery_factor(cfg, strtod(v, NULL));
    if ((v = opt(w, n, "min_open_ms")) != NULL) surgewall_slo_config_set_min_open(cfg, ms(v));
    if (opt(w, n, "link") != NULL) surgewall_slo_config_set_breaker(cfg, r->breaker);
    if (surgewall_slo_new(cfg, &out, err) != SURGEWALL_OK) return NULL;
    return out;
}

static const char *stop_name(int32_t reason)
{
    switch (reason) {
    case SURGEWALL_STOP_REASON_SUCCEEDED: return "succeeded";
    case SURGEWALL_STOP_REASON_NOT_RETRYABLE: return "not_retryable";
    case SURGEWALL_STOP_REASON_MAX_ATTEMPTS: return "max_attempts";
    case SURGEWALL_STOP_REASON_MAX_ELAPSED: return "max_elapsed";
    case SURGEWALL_STOP_REASON_BUDGET_EXHAUSTED: return "budget_exhausted";
    case SURGEWALL_STOP_REASON_BREAKER_OPEN: return "breaker_open";
    case SURGEWALL_STOP_REASON_RETRY_AFTER_TOO_LONG: return "retry_after_too_long";
    default: return "?";
    }
}

/* A retry policy from the scenario's keys (the rest the library's defaults), or NULL with *err
 * set when the library refuses it. */
static surgewall_retry_policy *retry_new(struct run *r, char **w, int n, surgewall_error **err)
{
    surgewall_retry_config *cfg = NULL;
    surgewall_retry_policy *p = NULL;
    const char *v;
    expect_status(r, surgewall_retry_config_new(&cfg), SURGEWALL_OK, "retry_config_new");
    surgewall_retry_config_set_mock_clock(cfg, r->clock);
    surgewall_retry_config_set_jitter(cfg, SURGEWALL_JITTER_NONE);
    if ((v = opt(w, n, "max_attempts")) != NULL)
        surgewall_retry_config_set_max_attempts(cfg, (uint32_t)strtoul(v, NULL, 10));
    if ((v = opt(w, n, "backoff")) != NULL) {
        const char *a = strchr(v, ':');
        const char *b = a != NULL ? strchr(a + 1, ':') : NULL;
        if (strcmp(v, "none") == 0) surgewall_retry_config_set_backoff_none(cfg);
        else if (a == NULL) fail(r, "bad backoff %s%s", v, "");
        else if (strncmp(v, "constant", 8) == 0) surgewall_retry_config_set_backoff_constant(cfg, ms(a + 1));
        else if (strncmp(v, "linear", 6) == 0 && b != NULL)
            surgewall_retry_config_set_backoff_linear(cfg, ms(a + 1), ms(b + 1));
        else if (strncmp(v, "exponential", 11) == 0 && b != NULL)
            surgewall_retry_config_set_backoff_exponential(cfg, ms(a + 1), strtod(b + 1, NULL));
        else fail(r, "bad backoff %s%s", v, "");
    }
    if ((v = opt(w, n, "max_delay_ms")) != NULL) surgewall_retry_config_set_max_delay(cfg, ms(v));
    if ((v = opt(w, n, "max_elapsed_ms")) != NULL) surgewall_retry_config_set_max_elapsed(cfg, ms(v));
    if ((v = opt(w, n, "max_retry_after_ms")) != NULL) surgewall_retry_config_set_max_retry_after(cfg, ms(v));
    if (surgewall_retry_policy_new(cfg, &p, err) != SURGEWALL_OK) return NULL;
    return p;
}

/* One operation whose every attempt fails retryably: the delays slept and why it stopped. */
static void run_retry(struct run *r, char **w, int n)
{
    const char *ra = opt(w, n, "retry_after_ms");
    const char *want_delays = opt(w, n, "delays");
    const char *want_stop = opt(w, n, "stop");
    surgewall_retry_schedule *s = NULL;
    surgewall_retry_decision d = {0};
    char delays[256] = "";
    if (r->retry == NULL || want_delays == NULL || want_stop == NULL) {
        fail(r, "run_retry needs a retry policy and delays=, stop=%s%s", "", "");
        return;
    }
    /* guarded=true: each attempt goes through the breaker (a rejection is a retryable attempt)
     * and the schedule is breaker-aware */
    const char *guarded = opt(w, n, "guarded");
    surgewall_breaker *b = guarded != NULL && strcmp(guarded, "true") == 0 ? r->breaker : NULL;
    expect_status(r, surgewall_retry_schedule_new(r->retry, &s), SURGEWALL_OK, "schedule_new");
    for (;;) {
        if (b != NULL) {
            surgewall_permit p;
            if (surgewall_breaker_acquire(b, &p, NULL) == SURGEWALL_OK)
                expect_status(r, surgewall_breaker_record(b, p, SURGEWALL_OUTCOME_FAILURE), SURGEWALL_OK,
                              "run_retry: record");
        }
        surgewall_status st = surgewall_retry_schedule_next(s, SURGEWALL_ATTEMPT_OUTCOME_RETRYABLE,
                                                            ra != NULL ? ms(ra) : -1, b, &d);
        expect_status(r, st, SURGEWALL_OK, "schedule_next");
        if (st != SURGEWALL_OK || !d.retry) break;
        size_t len = strlen(delays);
        snprintf(delays + len, sizeof delays - len, "%s%" PRIu64, len ? "," : "", d.delay_ns / (uint64_t)MS);
        /* the policy's mock clock is advanced by the schedule's own sleep (issue 16) */
        uint64_t before = 0, after = 0;
        surgewall_mock_clock_now(r->clock, &before);
        expect_status(r, surgewall_retry_schedule_sleep(s, d.delay_ns), SURGEWALL_OK, "schedule_sleep");
        surgewall_mock_clock_now(r->clock, &after);
        if (after - before != d.delay_ns) fail(r, "schedule_sleep did not move the clock by the delay%s%s", "", "");
    }
    surgewall_retry_schedule_free(s);
    if (strcmp(delays, want_delays) != 0) fail(r, "run_retry: delays %s, wanted %s", delays, want_delays);
    if (strcmp(stop_name(d.stop_reason), want_stop) != 0)
        fail(r, "run_retry: stopped for %s, wanted %s", stop_name(d.stop_reason), want_stop);
}

/* The policy's preview: the delays an operation whose every attempt fails would wait. */
static void preview_retry(struct run *r, char **w, int n)
{
    const char *want = opt(w, n, "delays");
    uint64_t d[32];
    size_t len = 0;
    char got[256] = "";
    if (r->retry == NULL || want == NULL) {
        fail(r, "preview_retry needs a retry policy and delays=%s%s", "", "");
        return;
    }
    expect_status(r, surgewall_retry_policy_preview(r->retry, d, 32, &len), SURGEWALL_OK, "preview");
    for (size_t i = 0; i < len; i++) {
        size_t at = strlen(got);
        snprintf(got + at, sizeof got - at, "%s%" PRIu64, at ? "," : "", d[i] / (uint64_t)MS);
    }
    if (strcmp(got, want) != 0) fail(r, "preview_retry: delays %s, wanted %s", got, want);
}

/* The bulkhead's commands; 0 when `cmd` is not one of them. */
static int bulkhead_step(struct run *r, char **w, int n)
{
    const char *cmd = w[0];
    int refused = n >= 3 && strcmp(w[1], "->") == 0; /* bulkhead_take -> full */
    if (strcmp(cmd, "bulkhead") == 0) {
        const char *max = opt(w + 1, n - 1, "max");
        surgewall_bulkhead_free(r->bulkhead);
        r->bulkhead = NULL;
        expect_status(r,
                      surgewall_bulkhead_new((const uint8_t *)"scenario", 8, max ? (uint32_t)strtoul(max, NULL, 10) : 0,
                                             0, r->clock, &r->bulkhead, NULL),
                      SURGEWALL_OK, "bulkhead_new");
        return 1;
    }
    if (strncmp(cmd, "bulkhead_", 9) != 0 && strcmp(cmd, "expect_bulkhead") != 0) return 0;
    if (r->bulkhead == NULL) {
        fail(r, "%s before bulkhead%s", cmd, "");
    } else if (strcmp(cmd, "bulkhead_take") == 0) {
        expect_status(r, surgewall_bulkhead_try_acquire(r->bulkhead),
                      refused ? SURGEWALL_BULKHEAD_FULL : SURGEWALL_OK, "bulkhead_take");
    } else if (strcmp(cmd, "bulkhead_release") == 0) {
        expect_status(r, surgewall_bulkhead_release(r->bulkhead), SURGEWALL_OK, "bulkhead_release");
    } else if (strcmp(cmd, "bulkhead_resize") == 0 && n >= 2) {
        int no = n >= 4 && strcmp(w[3], "refused") == 0;
        expect_status(r, surgewall_bulkhead_set_max_concurrent(r->bulkhead, (uint32_t)strtoul(w[1], NULL, 10), NULL),
                      no ? SURGEWALL_INVALID_ARG : SURGEWALL_OK, "bulkhead_resize");
    } else if (strcmp(cmd, "expect_bulkhead") == 0) {
        surgewall_bulkhead_stats m;
        expect_status(r, surgewall_bulkhead_metrics(r->bulkhead, &m), SURGEWALL_OK, "bulkhead_metrics");
        for (int i = 1; i < n; i++) {
            const char *eq = strchr(w[i], '=');
            uint64_t v;
            if (eq == NULL) {
                fail(r, "bad expectation %s%s", w[i], "");
                continue;
            }
            size_t k = (size_t)(eq - w[i]);
#define KEY(name) (k == strlen(name) && strncmp(w[i], name, k) == 0)
            if (KEY("active")) v = m.active;
            else if (KEY("max_concurrent")) v = m.max_concurrent;
            else if (KEY("accepted")) v = m.accepted;
            else if (KEY("rejected")) v = m.rejected;
            else {
                fail(r, "unknown bulkhead metric %s%s", w[i], "");
                continue;
            }
#undef KEY
            char got[32];
            snprintf(got, sizeof got, "%" PRIu64, v);
            if (strcmp(got, eq + 1) != 0) fail(r, "expect_bulkhead: got %s, wanted %s", got, w[i]);
        }
    } else {
        fail(r, "unknown command %s%s", cmd, "");
    }
    return 1;
}

static void expect_slo(struct run *r, char **w, int n)
{
    surgewall_slo_stats m;
    expect_status(r, surgewall_slo_metrics(r->slo, &m), SURGEWALL_OK, "slo_metrics");
    for (int i = 1; i < n; i++) {
        const char *eq = strchr(w[i], '=');
        char got[32];
        if (eq == NULL) {
            fail(r, "bad expectation %s%s", w[i], "");
            continue;
        }
        size_t k = (size_t)(eq - w[i]);
#define KEY(name) (k == strlen(name) && strncmp(w[i], name, k) == 0)
        if (KEY("fast_long_calls")) snprintf(got, sizeof got, "%" PRIu64, m.fast.long_calls);
        else if (KEY("fast_short_calls")) snprintf(got, sizeof got, "%" PRIu64, m.fast.short_calls);
        else if (KEY("fast_burning")) snprintf(got, sizeof got, "%s", m.fast.burning ? "true" : "false");
        else if (KEY("slow_burning")) snprintf(got, sizeof got, "%s", m.slow.burning ? "true" : "false");
        else if (KEY("holding_breaker")) snprintf(got, sizeof got, "%s", m.holding_breaker ? "true" : "false");
        else if (KEY("burn_bucket_ms")) snprintf(got, sizeof got, "%" PRIu64, m.burn_bucket_ns / (uint64_t)MS);
        else {
            fail(r, "unknown slo metric %s%s", w[i], "");
            continue;
        }
#undef KEY
        if (strcmp(got, eq + 1) != 0) fail(r, "expect_slo: got %s, wanted %s", got, w[i]);
    }
}

/* A `*_refused` command: `made` (the object, NULL when refused) must be NULL and `err` name
 * `field`; frees `err`. */
static void expect_refused(struct run *r, const char *what, const void *made, surgewall_error *err,
                           const char *field)
{
    if (made != NULL) fail(r, "%s accepted, wanted %s refused", what, field);
    else if (strcmp(surgewall_error_field(err), field) != 0)
        fail(r, "refused naming %s, wanted %s", surgewall_error_field(err), field);
    surgewall_error_free(err);
}

/* The policies' commands; 0 when `cmd` is not one of them. */
static int policy_step(struct run *r, char **w, int n)
{
    const char *cmd = w[0];
    surgewall_error *err = NULL;
    if (bulkhead_step(r, w, n)) {
        return 1;
    } else if (strcmp(cmd, "slo") == 0) {
        surgewall_slo_free(r->slo);
        r->slo = slo_new(r, w + 1, n - 1, &err);
        if (r->slo == NULL) {
            fail(r, "slo refused: %s: %s", surgewall_error_field(err), surgewall_error_message(err));
            surgewall_error_free(err);
        }
    } else if (strcmp(cmd, "slo_refused") == 0 && n >= 2) {
        surgewall_slo *s = slo_new(r, w + 2, n - 2, &err);
        expect_refused(r, "slo", s, err, w[1]);
        surgewall_slo_free(s);
    } else if (strcmp(cmd, "record") == 0 && r->slo != NULL) {
        const char *g = opt(w + 1, n - 1, "good"), *b = opt(w + 1, n - 1, "bad");
        const char *every = opt(w + 1, n - 1, "every_ms");
        long rounds = 1, good = g ? strtol(g, NULL, 10) : 0, bad = b ? strtol(b, NULL, 10) : 0;
        for (int i = 1; i < n; i++) {
            if (w[i][0] == 'x') rounds = strtol(w[i] + 1, NULL, 10);
        }
        for (long i = 0; i < rounds; i++) {
            for (long j = 0; j < good; j++) surgewall_slo_record(r->slo, true);
            for (long j = 0; j < bad; j++) surgewall_slo_record(r->slo, false);
            if (every != NULL) surgewall_mock_clock_advance(r->clock, ms(every));
        }
    } else if (strcmp(cmd, "tick") == 0 && r->slo != NULL) {
        expect_status(r, surgewall_slo_tick(r->slo, NULL), SURGEWALL_OK, "slo_tick");
    } else if (strcmp(cmd, "expect_slo") == 0 && r->slo != NULL) {
        expect_slo(r, w, n);
    } else if (strcmp(cmd, "retry") == 0) {
        surgewall_retry_policy_free(r->retry);
        r->retry = retry_new(r, w + 1, n - 1, &err);
        if (r->retry == NULL) {
            fail(r, "retry refused: %s: %s", surgewall_error_field(err), surgewall_error_message(err));
            surgewall_error_free(err);
        }
    } else if (strcmp(cmd, "retry_refused") == 0 && n >= 2) {
        surgewall_retry_policy *p = retry_new(r, w + 2, n - 2, &err);
        expect_refused(r, "retry", p, err, w[1]);
        surgewall_retry_policy_free(p);
    } else if (strcmp(cmd, "run_retry") == 0) {
        run_retry(r, w + 1, n - 1);
    } else if (strcmp(cmd, "preview_retry") == 0) {
        preview_retry(r, w + 1, n - 1);
    } else if (strcmp(cmd, "budget") == 0) {
        const char *ratio = opt(w + 1, n - 1, "ratio"), *floor = opt(w + 1, n - 1, "floor");
        const char *win = opt(w + 1, n - 1, "window_s");
        surgewall_retry_budget_free(r->budget);
        r->budget = NULL;
        expect_status(r,
                      surgewall_retry_budget_new(ratio ? strtod(ratio, NULL) : 0, floor ? strtod(floor, NULL) : 0,
                                                 win ? (uint32_t)strtoul(win, NULL, 10) : 0, r->clock,
                                                 &r->budget, &err),
                      SURGEWALL_OK, "retry_budget_new");
        surgewall_error_free(err);
    } else if (strcmp(cmd, "try_retry") == 0 && n >= 2 && r->budget != NULL) {
        long asks = strtol(w[1] + 1, NULL, 10), granted = 0;
        const char *want = opt(w + 2, n - 2, "granted");
        for (long i = 0; i < asks; i++) {
            granted += surgewall_retry_budget_try_retry(r->budget) == SURGEWALL_OK;
        }
        char got[32];
        snprintf(got, sizeof got, "%ld", granted);
        if (want == NULL || strcmp(got, want) != 0) fail(r, "try_retry: %s granted, wanted %s", got, want ? want : "?");
    } else if (strcmp(cmd, "threshold_refused") == 0 && n >= 2) {
        const char *t = opt(w + 2, n - 2, "target"), *lo = opt(w + 2, n - 2, "min");
        const char *hi = opt(w + 2, n - 2, "max"), *st = opt(w + 2, n - 2, "step");
        surgewall_threshold_adjuster *a = NULL;
        surgewall_threshold_adjuster_new(r->breaker, t ? strtod(t, NULL) : 0, lo ? strtod(lo, NULL) : 0,
                                         hi ? strtod(hi, NULL) : 0, st ? strtod(st, NULL) : 0, 0, &a, &err);
        expect_refused(r, "threshold", a, err, w[1]);
        surgewall_threshold_adjuster_free(a);
    } else {
        return 0;
    }
    return 1;
}

static void step(struct run *r, char **w, int n)
{
    const surgewall_breaker *b = r->breaker;
    const char *cmd = w[0];
    surgewall_permit p;
    uint64_t ra = 0;
    surgewall_status s;
    if (policy_step(r, w, n)) {
        return;
    } else if (strcmp(cmd, "call") == 0 && n >= 2) {
        int32_t o = outcome(r, w[1]);
        long times = 1;
        for (int i = 2; i < n; i++) {
            if (w[i][0] == 'x') times = strtol(w[i] + 1, NULL, 10);
        }
        const char *d = opt(w + 2, n - 2, "ms");
        for (long i = 0; i < times; i++) {
            s = surgewall_breaker_acquire(b, &p, &ra);
            if (s != SURGEWALL_OK) {
                fail(r, "call: rejected: %s%s", surgewall_status_str(s), "");
                return;
            }
            s = d != NULL ? surgewall_breaker_record_timed(b, p, o, ms(d)) : surgewall_breaker_record(b, p, o);
            /* as in the Rust runner, a call's result is not checked; usage errors are */
            if (s >= 100 && s < 200) {
                fail(r, "call: record: %s%s", surgewall_status_str(s), "");
            }
        }
    } else if (strcmp(cmd, "reject") == 0 && n >= 2) {
        s = surgewall_breaker_acquire(b, &p, &ra);
        surgewall_status want = strcmp(w[1], "open") == 0        ? SURGEWALL_REJECTED_OPEN
                                : strcmp(w[1], "half_open") == 0 ? SURGEWALL_REJECTED_HALF_OPEN
                                : strcmp(w[1], "forced_open") == 0 ? SURGEWALL_REJECTED_FORCED_OPEN
                                                                   : -1;
        expect_status(r, s, want, "reject: acquire");
        if (s == SURGEWALL_OK) {
            surgewall_breaker_release(b, p);
        }
        const char *v = opt(w + 2, n - 2, "retry_after_ms");
        if (v != NULL && s == want && ra != (uint64_t)ms(v)) {
            char got[32];
            snprintf(got, sizeof got, "%" PRIu64, ra);
            fail(r, "reject: retry_after %s ns, wanted %s ms", got, v);
        }
    } else if (strcmp(cmd, "hold") == 0 && n >= 2) {
        surgewall_permit *h = held(r, w[1], 1);
        s = surgewall_breaker_acquire(b, &p, &ra);
        expect_status(r, s, SURGEWALL_OK, "hold: acquire");
        if (h != NULL) *h = p;
    } else if (strcmp(cmd, "release") == 0 && n >= 3) {
        surgewall_permit *h = held(r, w[1], 0);
        const char *result = n >= 5 ? w[4] : "counted";
        surgewall_status want = strcmp(result, "counted") == 0      ? SURGEWALL_OK
                                : strcmp(result, "late") == 0       ? SURGEWALL_LATE_RESULT
                                : strcmp(result, "unexpected") == 0 ? SURGEWALL_UNEXPECTED_RESULT
                                                                    : -1;
        if (h != NULL) {
            expect_status(r, surgewall_breaker_record(b, *h, outcome(r, w[2])), want, "release: record");
        }
    } else if (strcmp(cmd, "advance") == 0 && n >= 2) {
        expect_status(r, surgewall_mock_clock_advance(r->clock, ms(w[1])), SURGEWALL_OK, "advance");
    } else if (strcmp(cmd, "force_open") == 0) {
        expect_status(r, surgewall_breaker_force_open(b, n >= 2 ? ms(w[1]) : -1), SURGEWALL_OK, "force_open");
    } else if (strcmp(cmd, "reset") == 0) {
        expect_status(r, surgewall_breaker_reset(b), SURGEWALL_OK, "reset");
    } else if (strcmp(cmd, "disable") == 0) {
        expect_status(r, surgewall_breaker_disable(b), SURGEWALL_OK, "disable");
    } else if (strcmp(cmd, "metrics_only") == 0) {
        expect_status(r, surgewall_breaker_metrics_only(b), SURGEWALL_OK, "metrics_only");
    } else if (strcmp(cmd, "close") == 0) {
        expect_status(r, surgewall_breaker_close(b), SURGEWALL_OK, "close");
    } else if (strcmp(cmd, "open") == 0) {
        expect_status(r, surgewall_breaker_open(b), SURGEWALL_OK, "open");
    } else if (strcmp(cmd, "half_open") == 0) {
        int refused = n >= 3 && strcmp(w[2], "refused") == 0;
        expect_status(r, surgewall_breaker_half_open(b),
                      refused ? SURGEWALL_INVALID_TRANSITION : SURGEWALL_OK, "half_open");
    } else if (strcmp(cmd, "expect") == 0) {
        expect(r, w, n);
    } else {
        fail(r, "unknown command %s%s", cmd, "");
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s bindings/scenarios.txt\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (f == NULL) {
        perror(argv[1]);
        return 2;
    }
    char line[1024];
    char name[256] = "(none)";
    struct run r;
    memset(&r, 0, sizeof r);
    r.name = name;
    int in_scenario = 0, ran = 0;
    for (int lineno = 1; fgets(line, sizeof line, f) != NULL; lineno++) {
        char *hash = strchr(line, '#');
        if (hash != NULL) *hash = '\0';
        char *w[MAX_WORDS];
        int n = 0;
        for (char *tok = strtok(line, " \t\r\n"); tok != NULL && n < MAX_WORDS; tok = strtok(NULL, " \t\r\n")) {
            w[n++] = tok;
        }
        if (n == 0) continue;
        r.line = lineno;
        if (strcmp(w[0], "scenario") == 0 && n >= 2) {
            snprintf(name, sizeof name, "%s", w[1]);
            memset(&r, 0, sizeof r);
            r.name = name;
            r.line = lineno;
            in_scenario = 1;
        } else if (strcmp(w[0], "config") == 0 && in_scenario) {
            configure(&r, w + 1, n - 1);
        } else if (strcmp(w[0], "end") == 0 && in_scenario) {
            check_(r.failed == 0, name, argv[1], lineno);
            printf("%s %s\n", r.failed == 0 ? "ok    " : "FAILED", name);
            surgewall_slo_free(r.slo);
            surgewall_retry_policy_free(r.retry);
            surgewall_retry_budget_free(r.budget);
            surgewall_bulkhead_free(r.bulkhead);
            surgewall_breaker_free(r.breaker);
            surgewall_mock_clock_free(r.clock);
            in_scenario = 0;
            ran++;
        } else if (in_scenario && r.breaker != NULL) {
            step(&r, w, n);
        } else if (in_scenario) {
            r.failed++; /* a step without a breaker: the config was missing or refused */
        } else {
            fprintf(stderr, "line %d: %s outside a scenario\n", lineno, w[0]);
            check_(0, "command outside a scenario", argv[1], lineno);
        }
    }
    fclose(f);
    CHECK(!in_scenario); /* the last scenario was closed */
    CHECK(ran >= 15);    /* as the Rust runner: the file was really read */
    return check_report();
}
