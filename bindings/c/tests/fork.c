/*
 * fork.c: the library stays usable in a child forked while other threads of the parent were
 * creating and freeing handles (issue 15 item 7). Usage: fork [FORKS]
 *
 * Two threads hammer handle creation and freeing (mock clocks, breaker configs, breakers and
 * clones) while the main thread forks FORKS times. Each child, under a 10 s alarm, creates,
 * uses and frees handles of several types and exits 0; a child that hangs (a handle-table
 * lock held at the fork, as before the library's pthread_atfork handlers) is killed by its
 * alarm and the parent counts the failure. The parent waits for each child before the next
 * fork.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define HAMMERS 2
#define CHILD_SECONDS 10

static atomic_int stop;

static void *hammer(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        surgewall_mock_clock *clock = NULL;
        surgewall_breaker_config *cfg = NULL;
        surgewall_breaker *b = NULL, *b2 = NULL;
        if (surgewall_mock_clock_new(&clock) != SURGEWALL_OK) abort();
        if (surgewall_breaker_config_new(&cfg) != SURGEWALL_OK) abort();
        if (surgewall_breaker_config_set_mock_clock(cfg, clock) != SURGEWALL_OK) abort();
        if (surgewall_breaker_new((const uint8_t *)"hammered", 8, cfg, &b, NULL) != SURGEWALL_OK) abort();
        if (surgewall_breaker_clone(b, &b2) != SURGEWALL_OK) abort();
        if (surgewall_breaker_free(b) != SURGEWALL_OK) abort();
        if (surgewall_breaker_free(b2) != SURGEWALL_OK) abort();
        if (surgewall_mock_clock_free(clock) != SURGEWALL_OK) abort();
    }
    return NULL;
}

/* What a child does: every step must succeed, or the child exits non-zero. */
static int child_work(void)
{
    for (int i = 0; i < 50; i++) {
        surgewall_mock_clock *clock = NULL;
        surgewall_breaker_config *cfg = NULL;
        surgewall_breaker *b = NULL;
        surgewall_bulkhead *bh = NULL;
        surgewall_permit p;
        if (surgewall_mock_clock_new(&clock) != SURGEWALL_OK) return 1;
        if (surgewall_breaker_config_new(&cfg) != SURGEWALL_OK) return 2;
        if (surgewall_breaker_config_set_mock_clock(cfg, clock) != SURGEWALL_OK) return 3;
        if (surgewall_breaker_new((const uint8_t *)"child", 5, cfg, &b, NULL) != SURGEWALL_OK) return 4;
        if (surgewall_breaker_acquire(b, &p, NULL) != SURGEWALL_OK) return 5;
        if (surgewall_breaker_record(b, p, SURGEWALL_OUTCOME_SUCCESS) != SURGEWALL_OK) return 6;
        if (surgewall_bulkhead_new((const uint8_t *)"child", 5, 1, 0, clock, &bh, NULL) != SURGEWALL_OK) return 7;
        if (surgewall_bulkhead_try_acquire(bh) != SURGEWALL_OK) return 8;
        if (surgewall_bulkhead_release(bh) != SURGEWALL_OK) return 9;
        if (surgewall_bulkhead_free(bh) != SURGEWALL_OK) return 10;
        if (surgewall_breaker_free(b) != SURGEWALL_OK) return 11;
        if (surgewall_mock_clock_free(clock) != SURGEWALL_OK) return 12;
    }
    return 0;
}

int main(int argc, char **argv)
{
    long forks = argc > 1 ? strtol(argv[1], NULL, 10) : 200;
    pthread_t t[HAMMERS];
    for (int i = 0; i < HAMMERS; i++) {
        CHECK(pthread_create(&t[i], NULL, hammer, NULL) == 0);
    }
    long ok = 0;
    for (long i = 0; i < forks; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            CHECK(pid >= 0);
            break;
        }
        if (pid == 0) {
            /* A hang is killed by the alarm: the parent sees SIGALRM, not exit 0. */
            alarm(CHILD_SECONDS);
            _exit(child_work());
        }
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            ok++;
        } else if (WIFSIGNALED(status)) {
            fprintf(stderr, "fork %ld: the child was killed by signal %d (%s)\n", i, WTERMSIG(status),
                    WTERMSIG(status) == SIGALRM ? "hung" : "crashed");
        } else {
            fprintf(stderr, "fork %ld: the child failed at step %d\n", i, WEXITSTATUS(status));
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < HAMMERS; i++) {
        pthread_join(t[i], NULL);
    }
    CHECK_U64(ok, forks);
    printf("fork: %ld children forked while 2 threads created and freed handles, %ld ok\n", forks, ok);
    return check_report();
}
