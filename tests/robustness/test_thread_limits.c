/* When threads cannot be created, a call must still succeed on the threads it can get: libgomp
 * prints "Thread creation failed" and exits the process when pthread_create fails, and the
 * library promises never to exit. Each scenario runs in a child process, which must return the
 * 1-thread result bit for bit and exit normally:
 *   - the address space is capped (RLIMIT_AS) just above what the process uses, so no worker
 *     stack fits (skipped under AddressSanitizer, whose shadow memory needs the whole space);
 *   - OMP_STACKSIZE asks libgomp for worker stacks no machine can map (the child re-executes
 *     this program, since libgomp reads it once at start-up). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attn_case.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

enum { CHILD_SECONDS = 60 };
#define CHILD_MODE_ENV "RA_TEST_THREAD_LIMITS_CHILD"

/* Big enough that the library asks for 4 threads (one per ~2^20 multiply-adds). */
static void init_case(tc_case *c)
{
    tc_params p = {.fn = TC_RAGGED_GQA, .B = 4, .Hq = 8, .Hkv = 2, .S = 2048, .D = 64,
                   .seed = 5};
    tc_init(c, &p);
}

/* 0 when a 4-thread call on c returns RA_OK and the same bits as a 1-thread call; else a
 * code. */
static int run_calls(tc_case *c_)
{
    tc_case c = *c_;
    const size_t n = (size_t)(c.p.B * c.p.Hq * c.p.D);
    float *one = malloc(sizeof(float) * n);
    if (!one)
        return 10;
    const tc_opts o1 = {.num_threads = 1}, o4 = {.num_threads = 4};
    if (tc_run(&c, &o1) != RA_OK)
        return 11;
    memcpy(one, c.got_o, sizeof(float) * n);
    if (tc_run(&c, &o4) != RA_OK)
        return 12;
    int rc = memcmp(one, c.got_o, sizeof(float) * n) ? 13 : 0;
    free(one);
    return rc;
}

static long mapped_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = -1;
    if (f) {
        if (fscanf(f, "%ld", &pages) != 1)
            pages = -1;
        fclose(f);
    }
    return pages < 0 ? -1 : pages * sysconf(_SC_PAGESIZE);
}

/* A child's exit code for "this program cannot re-execute itself": a test under a user-mode
 * emulator (qemu-aarch64 without binfmt_misc), where exec of the target binary fails with
 * ENOEXEC. */
enum { CHILD_CANNOT_EXEC = 31 };

static void expect_child_ok(pid_t pid, const char *what)
{
    assert_true(pid >= 0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (WIFEXITED(st) && WEXITSTATUS(st) == CHILD_CANNOT_EXEC) {
        print_message("%s: skipped, this program cannot re-execute itself here (emulator)\n",
                      what);
        skip();
    }
    if (WIFSIGNALED(st))
        fail_msg("%s: the child died of signal %d", what, WTERMSIG(st));
    if (WEXITSTATUS(st) != 0)
        fail_msg("%s: the child exited with %d (1 is libgomp's exit when it cannot create a "
                 "thread)", what, WEXITSTATUS(st));
}

static void test_address_space_too_small_for_a_stack(void **state)
{
    (void)state;
    if (UNDER_ASAN)
        skip();
    pid_t pid = fork();
    if (pid == 0) {
        alarm(CHILD_SECONDS);
        /* The test data come first, so that the cap leaves room for a call's scratch but not
         * for a worker stack (glibc's default is 8 MiB, or more). */
        tc_case c;
        init_case(&c);
        long now = mapped_bytes();
        if (now < 0)
            _exit(21);
        struct rlimit cap = {(rlim_t)now + (2u << 20), (rlim_t)now + (2u << 20)};
        if (setrlimit(RLIMIT_AS, &cap) != 0)
            _exit(22);
        _exit(run_calls(&c));
    }
    expect_child_ok(pid, "4 threads asked for under RLIMIT_AS");
}

static void test_stacks_too_large_to_map(void **state)
{
    (void)state;
    pid_t pid = fork();
    if (pid == 0) {
        alarm(CHILD_SECONDS);
        setenv(CHILD_MODE_ENV, "1", 1);
        setenv("OMP_STACKSIZE", "1048576M", 1); /* one TiB per worker */
        /* the path, not /proc/self/exe: under an emulator that link names the emulator */
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0)
            _exit(30);
        self[n] = '\0';
        execl(self, "test_thread_limits", (char *)NULL);
        _exit(errno == ENOEXEC ? CHILD_CANNOT_EXEC : 30);
    }
    expect_child_ok(pid, "4 threads asked for with OMP_STACKSIZE=1048576M");
}

int main(void)
{
    if (getenv(CHILD_MODE_ENV)) {
        tc_case c;
        init_case(&c);
        int rc = run_calls(&c);
        tc_free(&c); /* LeakSanitizer checks this process at exit */
        return rc;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_address_space_too_small_for_a_stack),
        cmocka_unit_test(test_stacks_too_large_to_map),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
