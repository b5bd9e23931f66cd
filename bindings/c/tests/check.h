/*
 * check.h: the few assertions the C suites share. Every suite ends with check_report(),
 * which prints the line CI reads ("N passed, N failed") and gives the exit code.
 */
#ifndef SURGEWALL_C_TESTS_CHECK_H
#define SURGEWALL_C_TESTS_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "surgewall.h"

static int check_passed_;
static int check_failed_;

static inline void check_(int ok, const char *what, const char *file, int line)
{
    if (ok) {
        check_passed_++;
    } else {
        check_failed_++;
        fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, what);
    }
}

static inline void check_status_(int32_t got, int32_t want, const char *expr, const char *file, int line)
{
    if (got == want) {
        check_passed_++;
    } else {
        check_failed_++;
        fprintf(stderr, "%s:%d: FAILED: %s\n    returned %" PRId32 " (%s), wanted %" PRId32 " (%s)\n",
                file, line, expr, got, surgewall_status_str(got), want, surgewall_status_str(want));
    }
}

static inline void check_u64_(uint64_t got, uint64_t want, const char *expr, const char *file, int line)
{
    if (got == want) {
        check_passed_++;
    } else {
        check_failed_++;
        fprintf(stderr, "%s:%d: FAILED: %s == %" PRIu64 ", wanted %" PRIu64 "\n", file, line, expr,
                got, want);
    }
}

static inline void check_str_(const char *got, const char *want, const char *expr, const char *file,
                       int line)
{
    if (got != NULL && strcmp(got, want) == 0) {
        check_passed_++;
    } else {
        check_failed_++;
        fprintf(stderr, "%s:%d: FAILED: %s == \"%s\", wanted \"%s\"\n", file, line, expr,
                got ? got : "(null)", want);
    }
}

/* CHECK(cond): a boolean. */
#define CHECK(cond) check_(!!(cond), #cond, __FILE__, __LINE__)
/* CHECK_STATUS(call, SURGEWALL_...): the status a call returns. */
#define CHECK_STATUS(call, want) check_status_((int32_t)(call), (int32_t)(want), #call, __FILE__, __LINE__)
#define CHECK_OK(call) CHECK_STATUS(call, SURGEWALL_OK)
/* CHECK_U64(value, wanted): an integer, printed on failure. */
#define CHECK_U64(v, want) check_u64_((uint64_t)(v), (uint64_t)(want), #v, __FILE__, __LINE__)
#define CHECK_STR(s, want) check_str_((s), (want), #s, __FILE__, __LINE__)

/* A permit's token is `generation ^ salt`: the generation in the low 40 bits, the breaker's
 * salt (top 24 bits only, never zero) above them (surgewall_breaker_fast_path). */
#define GENERATION_BITS ((UINT64_C(1) << 40) - 1)
#define PERMIT_GENERATION(p) ((p).token & GENERATION_BITS)
#define PERMIT_SALT(p) ((p).token & ~GENERATION_BITS)

/* Prints the final line CI reads and returns the process exit code. */
static inline int check_report(void)
{
    printf("%d passed, %d failed\n", check_passed_, check_failed_);
    fflush(stdout);
    return check_failed_ == 0 ? 0 : 1;
}

#endif /* SURGEWALL_C_TESTS_CHECK_H */
