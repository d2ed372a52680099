/* fork(): a child process must be able to call the library, with as many threads as it asks
 * for, whatever the parent was doing when it forked: after multi-threaded calls (libgomp's
 * thread pool does not survive fork; without the library's fork handler the child hangs in its
 * first parallel region), and while another thread held the lock around the serial OpenBLAS
 * (without the handler the child deadlocks). Each child runs under alarm(), so a hang fails the
 * test instead of stalling it, and must reproduce the parent's results bit for bit. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attn_case.h"

enum { CHILD_SECONDS = 60, CHILD_MISMATCH = 3, CHILD_FAILED_CALL = 4, CHILD_ONE_THREAD = 5 };

/* Large enough that the library really runs 2 threads (one per ~2^20 multiply-adds). */
static void init_case(tc_case *c, tc_fn fn, uint64_t seed)
{
    tc_params p = {.fn = fn, .B = 3, .Hq = 8, .Hkv = 2, .S = 3000, .D = 64, .seed = seed};
    if (tc_fn_is_mha(fn))
        p.Hkv = p.Hq;
    tc_init(c, &p);
}

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static int threads_in_process(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* In the child: runs c with `threads` (and the BLAS kernel when asked) and compares o with
 * want bit for bit. Returns an exit code; no cmocka calls, which are not fork-safe. */
static int child_check(tc_case *c, const float *want, int threads, ra_kernel kernel)
{
    ra_options *opts;
    if (ra_options_create(&opts) != RA_OK || ra_options_set_num_threads(opts, threads) != RA_OK ||
        (kernel != RA_KERNEL_AUTO && ra_options_set_kernel(opts, kernel) != RA_OK))
        return CHILD_FAILED_CALL;
    ra_status (*fn)(const ra_options *, const ra_tensor *, const ra_tensor *, const ra_tensor *,
                    const ra_tensor *, ra_tensor *, ra_tensor *, ra_tensor *) =
        tc_fn_is_ragged(c->p.fn) ? ra_ragged_gqa : ra_reference_mha;
    ra_status s = fn(opts, c->q.t, c->k.t, c->v.t, c->len.t, c->o.t, c->m.t, c->l.t);
    ra_options_destroy(opts);
    if (s != RA_OK)
        return CHILD_FAILED_CALL;
    or_buf_gather_f32(&c->o, c->got_o);
    return memcmp(c->got_o, want, sizeof(float) * (size_t)(c->p.B * c->p.Hq * c->p.D))
               ? CHILD_MISMATCH : 0;
}

static void expect_child_ok(pid_t pid, const char *what)
{
    assert_true(pid >= 0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (WIFSIGNALED(st))
        fail_msg("%s: the child died of signal %d (14 = SIGALRM: it hung)", what, WTERMSIG(st));
    if (WEXITSTATUS(st) != 0)
        fail_msg("%s: the child exited with %d", what, WEXITSTATUS(st));
}

static void test_child_after_multithreaded_calls(void **state)
{
    (void)state;
    tc_case c;
    init_case(&c, TC_RAGGED_GQA, 1);
    const tc_opts two = {.num_threads = 2};
    assert_int_equal(tc_run(&c, &two), RA_OK);
    tc_check(&c, 1e-5, NULL);
    const size_t n = (size_t)(c.p.B * c.p.Hq * c.p.D);
    float *want = malloc(sizeof(float) * n);
    assert_non_null(want);
    memcpy(want, c.got_o, sizeof(float) * n);
    for (int round = 0; round < 3; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            alarm(CHILD_SECONDS);
            int rc = child_check(&c, want, 2, RA_KERNEL_AUTO);
            /* the child's own OpenMP pool: two threads ran, not a fallback to one */
            if (!rc && threads_in_process() < 2)
                rc = CHILD_ONE_THREAD;
            if (!rc)
                rc = child_check(&c, want, 0, RA_KERNEL_AUTO);
            _exit(rc);
        }
        expect_child_ok(pid, "call in a child after 2-thread calls");
        /* and the parent goes on with its own threads */
        assert_int_equal(tc_run(&c, &two), RA_OK);
        assert_memory_equal(c.got_o, want, sizeof(float) * n);
    }
    free(want);
    tc_free(&c);
}

/* ---- a fork while another thread is inside BLAS ------------------------------------------- */

typedef struct busy {
    tc_case *c;
    atomic_int stop;
    atomic_long calls;
} busy;

static void *call_blas_until_stopped(void *arg)
{
    busy *b = arg;
    ra_options *opts;
    if (ra_options_create(&opts) != RA_OK)
        return NULL;
    ra_options_set_num_threads(opts, 1);
    while (!atomic_load(&b->stop)) {
        /* the reference path is GEMMs behind the BLAS lock from start to end */
        ra_reference_mha(opts, b->c->q.t, b->c->k.t, b->c->v.t, b->c->len.t, b->c->o.t, NULL,
                         NULL);
        atomic_fetch_add(&b->calls, 1);
    }
    ra_options_destroy(opts);
    return NULL;
}

static void test_fork_while_blas_is_in_use(void **state)
{
    (void)state;
    tc_case mine, theirs, blas;
    init_case(&mine, TC_REFERENCE_MHA, 2);
    init_case(&theirs, TC_REFERENCE_MHA, 3);
    init_case(&blas, TC_RAGGED_GQA, 4);
    assert_int_equal(tc_run(&mine, NULL), RA_OK);
    tc_check(&mine, 1e-5, NULL);
    const tc_opts blas_opts = {.kernel = RA_KERNEL_BLAS, .num_threads = 2};
    assert_int_equal(tc_run(&blas, &blas_opts), RA_OK);
    tc_check(&blas, 1e-5, NULL);
    const size_t n = (size_t)(mine.p.B * mine.p.Hq * mine.p.D);
    float *want = malloc(sizeof(float) * n), *want_blas = malloc(sizeof(float) * n);
    assert_true(want && want_blas);
    memcpy(want, mine.got_o, sizeof(float) * n);
    memcpy(want_blas, blas.got_o, sizeof(float) * n);

    busy b = {.c = &theirs};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, call_blas_until_stopped, &b), 0);
    while (atomic_load(&b.calls) < 2)
        sleep_ms(1);
    for (int round = 0; round < 20; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            alarm(CHILD_SECONDS);
            int rc = child_check(&mine, want, 1, RA_KERNEL_AUTO);
            if (!rc)
                rc = child_check(&blas, want_blas, 2, RA_KERNEL_BLAS);
            _exit(rc);
        }
        expect_child_ok(pid, "BLAS calls in a child forked during another thread's BLAS call");
        sleep_ms(2);
    }
    atomic_store(&b.stop, 1);
    pthread_join(th, NULL);
    free(want);
    free(want_blas);
    tc_free(&mine);
    tc_free(&theirs);
    tc_free(&blas);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_child_after_multithreaded_calls),
        cmocka_unit_test(test_fork_while_blas_is_in_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
