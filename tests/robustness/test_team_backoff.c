/* Automatic teams (num_threads 0) back off to one thread while the cores are busy with other
 * work (src/team.h): the rule, fed with chosen measurements, and the measurement itself, fed
 * with a thread that sleeps instead of running. Each scenario runs on a new thread, since the
 * state is per calling thread. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <omp.h>
#include <pthread.h>
#include <time.h>

#include "team.h"

/* Work big enough for any team (one thread per ~2^20 multiply-adds). */
static int team(int requested)
{
    return ra__team_size(requested, 1000, INT64_C(1) << 20, 32, 128);
}

static int full_team;

static const int64_t MS = 1000000;

static void run_on_new_thread(void *(*fn)(void *))
{
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fn, NULL), 0);
    pthread_join(th, NULL);
}

static int results[200], n_results;

static void record(int t)
{
    if (n_results < 200)
        results[n_results++] = t;
}

/* ---- the rule ------------------------------------------------------------------------------ */

static void *rule_scenario(void *arg)
{
    (void)arg;
    record(team(0)); /* [0] full */
    ra__team_feedback(1 * MS, 2 * MS); /* lost half the region: back off 1 call */
    record(team(0)); /* [1] 1 */
    record(team(0)); /* [2] full again */
    ra__team_feedback(1 * MS, 2 * MS); /* again: 2 calls */
    record(team(0));
    record(team(0)); /* [3], [4] 1 */
    record(team(2)); /* [5] an explicit count is never lowered */
    record(team(0)); /* [6] full */
    for (int i = 0; i < 10; i++) { /* 4, 8, ..., capped at 64 */
        ra__team_feedback(1 * MS, 2 * MS);
        while (team(0) == 1)
            ;
    }
    ra__team_feedback(1 * MS, 2 * MS);
    int ones = 0;
    while (team(0) == 1)
        ones++;
    record(ones); /* [7] 64 */
    for (int i = 0; i < 6; i++) /* calm regions halve the length: 64 -> 1 */
        ra__team_feedback(100000, 2 * MS);
    ra__team_feedback(1 * MS, 2 * MS); /* 1 * 2 */
    ones = 0;
    while (team(0) == 1)
        ones++;
    record(ones); /* [8] 2 */
    ra__team_feedback(100000, 2 * MS); /* 2 -> 1 */
    ra__team_feedback(100000, 2 * MS); /* 1 -> 0 */
    ra__team_feedback(1 * MS, 2 * MS);
    record(team(0)); /* [9] 1 */
    record(team(0)); /* [10] full */
    ra__team_feedback(150000, 300000); /* half the region, but under 200 us: not contended */
    record(team(0)); /* [11] full */
    ra__team_feedback(1 * MS, 5 * MS); /* a fifth of the region: not contended */
    record(team(0)); /* [12] full */
    return NULL;
}

static void test_backoff_rule(void **state)
{
    (void)state;
    full_team = team(0);
    if (full_team < 2)
        skip(); /* one processor, or OMP_NUM_THREADS=1: nothing to back off from */
    n_results = 0;
    run_on_new_thread(rule_scenario);
    assert_int_equal(n_results, 13);
    const int want[13] = {full_team, 1, full_team, 1, 1, team(2), full_team, 64, 2, 1,
                          full_team, full_team, full_team};
    for (int i = 0; i < 13; i++)
        if (results[i] != want[i])
            fail_msg("step %d: team %d, expected %d", i, results[i], want[i]);
}

/* ---- the measurement ------------------------------------------------------------------- */

static void *sleeping_team_thread(void *arg)
{
    (void)arg;
    record(team(0)); /* full */
    ra__team_watch w;
    ra__team_watch_begin(&w, 0, 2);
    ra__thread_mark m = ra__team_watch_enter(&w);
    struct timespec t = {0, 3 * MS};
    nanosleep(&t, NULL); /* 3 ms of not running, out of a region of about 3 ms */
    ra__team_watch_leave(&w, m);
    ra__team_watch_end(&w);
    record(team(0)); /* 1 */
    ra__team_watch_begin(&w, 2, 2); /* explicit teams are not watched */
    m = ra__team_watch_enter(&w);
    nanosleep(&t, NULL);
    ra__team_watch_leave(&w, m);
    ra__team_watch_end(&w);
    record(team(0)); /* full: the backoff of 1 was used, and nothing new was fed */
    return NULL;
}

static void test_measured_lost_time(void **state)
{
    (void)state;
    full_team = team(0);
    if (full_team < 2)
        skip();
    n_results = 0;
    run_on_new_thread(sleeping_team_thread);
    assert_int_equal(n_results, 3);
    assert_int_equal(results[0], full_team);
    assert_int_equal(results[1], 1);
    assert_int_equal(results[2], full_team);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_rule),
        cmocka_unit_test(test_measured_lost_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
