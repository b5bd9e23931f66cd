/*
 * guarded_call.c: a call to a flaky dependency guarded by a surgewall circuit breaker, with
 * a fallback served while the breaker rejects. Copy it and replace fetch_price().
 *
 *   cc -std=c11 guarded_call.c $(pkg-config --cflags surgewall) \
 *      "$(pkg-config --variable=libdir surgewall)/libsurgewall.a" -lpthread -ldl -lm
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <surgewall.h>

/* The dependency: fails 3 times out of 4 (think: a remote service having a bad day). */
static int fetch_price(int request, char *out, size_t cap)
{
    if (request % 4 != 0) {
        return -1;
    }
    snprintf(out, cap, "{\"price\": %d}", 100 + request);
    return 0;
}

/* One guarded call: acquire a permit, make the call, record how it ended. */
static void handle(const surgewall_breaker *breaker, int request)
{
    surgewall_permit permit;
    uint64_t retry_after_ns = 0;
    surgewall_status s = surgewall_breaker_acquire(breaker, &permit, &retry_after_ns);
    if (s != SURGEWALL_OK) {
        /* Rejected (open, half-open full, forced open): serve the fallback, don't call. */
        const uint8_t *body, *content_type;
        size_t body_len, content_type_len;
        surgewall_breaker_fallback(breaker, &body, &body_len, &content_type, &content_type_len);
        printf("request %2d: %s, retry in %" PRIu64 " ms -> fallback %.*s\n", request,
               surgewall_status_str(s), retry_after_ns / 1000000, (int)body_len, (const char *)body);
        return;
    }
    char price[64];
    int rc = fetch_price(request, price, sizeof price);
    /* Exactly one record per permit. A LATE_RESULT status only means the breaker moved on. */
    surgewall_breaker_record(breaker, permit, rc == 0 ? SURGEWALL_OUTCOME_SUCCESS : SURGEWALL_OUTCOME_FAILURE);
    printf("request %2d: %s\n", request, rc == 0 ? price : "dependency failed");
}

int main(void)
{
    /* The header and the library must be the same version. */
    if (surgewall_version_number() != SURGEWALL_VERSION_NUMBER) {
        fprintf(stderr, "surgewall: header %s, library %s\n", SURGEWALL_VERSION_STRING, surgewall_version());
        return 1;
    }

    /* Trip at 50 % failures once 4 calls are in a window of the last 8; stay open 30 s. */
    surgewall_breaker_config *cfg = NULL;
    surgewall_breaker_config_new(&cfg);
    surgewall_breaker_config_set_failure_rate(cfg, 0.5);
    surgewall_breaker_config_set_minimum_calls(cfg, 4);
    surgewall_breaker_config_set_count_window(cfg, 8);
    surgewall_breaker_config_set_open_for(cfg, 30LL * 1000 * 1000 * 1000);
    static const char fallback[] = "{\"price\": null, \"stale\": true}";
    surgewall_breaker_config_set_fallback(cfg, (const uint8_t *)"application/json", 16,
                                          (const uint8_t *)fallback, strlen(fallback));

    /* The constructor consumes the config, whatever happens; errors name the bad field. */
    surgewall_breaker *breaker = NULL;
    surgewall_error *err = NULL;
    const char *name = "prices";
    if (surgewall_breaker_new((const uint8_t *)name, strlen(name), cfg, &breaker, &err) != SURGEWALL_OK) {
        fprintf(stderr, "breaker: %s: %s\n", surgewall_error_field(err), surgewall_error_message(err));
        surgewall_error_free(err);
        return 1;
    }

    for (int request = 0; request < 12; request++) {
        handle(breaker, request);
    }

    surgewall_breaker_stats stats;
    surgewall_breaker_metrics(breaker, &stats);
    printf("state %d, %" PRIu64 " successes, %" PRIu64 " failures, %" PRIu64 " rejected\n",
           (int)stats.state, stats.successes, stats.failures, stats.rejected_open);
    surgewall_breaker_free(breaker);
    return stats.state == SURGEWALL_STATE_OPEN ? 0 : 1;
}
