/* Team sizes for the library's OpenMP regions, and the three ways libgomp can take a host down
 * with it (docs/threads.md):
 *   - fork: a child inherits the forking thread's thread pool but not its threads, and hangs in
 *     its first parallel region. A fork handler releases that pool before the fork; where it
 *     cannot, the child's forking thread runs its calls on one thread.
 *   - thread creation: libgomp exits the process when pthread_create fails (RLIMIT_AS, a cgroup
 *     pids limit). Threads the pool lacks are created and joined here first, and a team only
 *     counts on those that could be.
 * The pool is per calling thread: a region of n threads leaves n - 1 workers behind, and a
 * smaller team of two or more releases the surplus. */
#include <omp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "team.h"

/* Workers this thread's OpenMP pool holds after the library's last region on it. */
static _Thread_local int pool_workers;
/* Set before a fork that could not release this thread's pool; read by the child. */
static _Thread_local bool pool_kept_at_fork;
/* In a forked child: this thread's pool refers to threads that do not exist. */
static _Thread_local bool pool_lost;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static size_t worker_stack; /* bytes libgomp gives a worker's stack; 0 = the pthread default */

static void release_pool_before_fork(void)
{
    /* Inside a parallel region the pool is in use and cannot be released. */
    pool_kept_at_fork = omp_get_level() > 0 || omp_pause_resource_all(omp_pause_soft) != 0;
    if (!pool_kept_at_fork)
        pool_workers = 0;
}

static void mark_pool_in_child(void)
{
    if (pool_kept_at_fork)
        pool_lost = true;
}

/* OMP_STACKSIZE's syntax as libgomp reads it: a number with an optional B, K, M or G suffix,
 * K when none; 0 when unset or malformed (libgomp then keeps the default too). */
static size_t parse_stacksize(const char *s)
{
    if (!s)
        return 0;
    char *end;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s < '0' || *s > '9')
        return 0;
    unsigned long long n = strtoull(s, &end, 10);
    while (*end == ' ' || *end == '\t')
        end++;
    int shift = 10;
    switch (*end) {
    case 'b': case 'B': shift = 0; end++; break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: break;
    }
    while (*end == ' ' || *end == '\t')
        end++;
    if (*end != '\0' || n > (~(unsigned long long)0 >> shift))
        return 0;
    return (size_t)(n << shift);
}

static void init_team(void)
{
    size_t s = parse_stacksize(getenv("OMP_STACKSIZE"));
    worker_stack = s ? s : parse_stacksize(getenv("GOMP_STACKSIZE"));
    pthread_atfork(release_pool_before_fork, NULL, mark_pool_in_child);
}

static void *exit_at_once(void *arg)
{
    return arg;
}

/* Creates up to n threads with a worker's stack, all alive at once as libgomp's would be, and
 * joins them; returns how many could be created. Their stacks stay in glibc's cache for
 * libgomp to take. */
static int try_create_threads(int n)
{
    pthread_t *ids = malloc(sizeof(pthread_t) * (size_t)n);
    if (!ids)
        return 0;
    pthread_attr_t attr;
    int made = 0;
    if (pthread_attr_init(&attr) == 0) {
        if (worker_stack == 0 || pthread_attr_setstacksize(&attr, worker_stack) == 0)
            while (made < n && pthread_create(&ids[made], &attr, exit_at_once, NULL) == 0)
                made++;
        pthread_attr_destroy(&attr);
    }
    for (int i = 0; i < made; i++)
        pthread_join(ids[i], NULL);
    free(ids);
    return made;
}

int ra__team_size(int requested, int64_t items, int64_t positions, int64_t heads, int64_t D)
{
    pthread_once(&init_once, init_team);
    int64_t n = requested > 0 ? requested : omp_get_max_threads();
    /* Never more than OpenMP allows or than a few per processor. */
    int64_t limit = omp_get_thread_limit(), procs = 4 * (int64_t)omp_get_num_procs();
    n = n < limit ? n : limit;
    n = n < procs ? n : procs;
    /* A thread costs microseconds to wake and join: one per ~2^20 multiply-adds of work. */
    int64_t fmas;
    if (__builtin_mul_overflow(positions, heads, &fmas) ||
        __builtin_mul_overflow(fmas, 2 * D, &fmas))
        fmas = INT64_MAX;
    int64_t useful = 1 + fmas / (1 << 20);
    n = n < useful ? n : useful;
    n = n < items ? n : items;
    /* Nested in another parallel region, OpenMP runs the region on one thread anyway. */
    if (n <= 1 || pool_lost || omp_get_level() > 0)
        return 1;
    int team = (int)n;
    if (team - 1 > pool_workers)
        team = pool_workers + 1 + try_create_threads(team - 1 - pool_workers);
    if (team > 1)
        pool_workers = team - 1;
    return team;
}
