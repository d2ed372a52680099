/* Team sizes for the library's OpenMP regions, and the three ways libgomp can take a host down
 * with it (docs/threads.md):
 *   - fork: a child inherits the forking thread's thread pool but not its threads, and hangs in
 *     its first parallel region. A fork handler releases that pool before the fork; where it
 *     cannot, the child's forking thread runs its calls on one thread.
 *   - thread creation: libgomp exits the process when pthread_create fails (RLIMIT_AS, a cgroup
 *     pids limit). Threads the pool lacks are created and joined here first, and a team only
 *     counts on those that could be.
 * Automatic teams also back off while other work keeps their cores busy (team.h).
 * The pool is per calling thread: a region of n threads leaves n - 1 workers behind, and a
 * smaller team of two or more releases the surplus. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, CLOCK_MONOTONIC under -std=c11 */
#include <omp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "team.h"

/* Workers this thread's OpenMP pool holds after the library's last region on it. */
static _Thread_local int pool_workers;
/* Set before a fork that could not release this thread's pool; read by the child. */
static _Thread_local bool pool_kept_at_fork;
/* In a forked child: this thread's pool refers to threads that do not exist. */
static _Thread_local bool pool_lost;

/* Automatic calls left to run on one thread, and the length of the last such run. */
static _Thread_local int backoff_left, backoff_len;

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

int ra__team_cap(int requested, int64_t items, int64_t positions, int64_t heads, int64_t D)
{
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
    return n > 1 ? (int)n : 1;
}

int ra__team_size(int requested, int64_t items, int64_t positions, int64_t heads, int64_t D)
{
    pthread_once(&init_once, init_team);
    const int n = ra__team_cap(requested, items, positions, heads, D);
    /* Nested in another parallel region, OpenMP runs the region on one thread anyway. */
    if (n <= 1 || pool_lost || omp_get_level() > 0)
        return 1;
    if (requested == 0 && backoff_left > 0) {
        backoff_left--;
        return 1;
    }
    int team = n;
    if (team - 1 > pool_workers)
        team = pool_workers + 1 + try_create_threads(team - 1 - pool_workers);
    if (team > 1)
        pool_workers = team - 1;
    return team;
}

static int64_t clock_ns(clockid_t id)
{
    struct timespec t;
    if (clock_gettime(id, &t) != 0)
        return 0;
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

void ra__team_watch_begin(ra__team_watch *w, int requested, int team)
{
    w->start_ns = requested == 0 && team > 1 ? clock_ns(CLOCK_MONOTONIC) : -1;
    w->lost_ns = 0;
}

ra__thread_mark ra__team_watch_enter(const ra__team_watch *w)
{
    ra__thread_mark m = {0, 0};
    if (w->start_ns >= 0) {
        m.wall_ns = clock_ns(CLOCK_MONOTONIC);
        m.cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    }
    return m;
}

void ra__team_watch_leave(ra__team_watch *w, ra__thread_mark m)
{
    if (w->start_ns < 0)
        return;
    int64_t wall = clock_ns(CLOCK_MONOTONIC) - m.wall_ns;
    int64_t cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID) - m.cpu_ns;
    /* The work never blocks: wall time it did not run was taken by other work. */
    int64_t lost = (m.wall_ns - w->start_ns) + (wall > cpu ? wall - cpu : 0);
    int64_t seen = __atomic_load_n(&w->lost_ns, __ATOMIC_RELAXED);
    while (lost > seen &&
           !__atomic_compare_exchange_n(&w->lost_ns, &seen, lost, false, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
        ;
}

void ra__team_watch_end(const ra__team_watch *w)
{
    if (w->start_ns >= 0)
        ra__team_feedback(w->lost_ns, clock_ns(CLOCK_MONOTONIC) - w->start_ns);
}

void ra__team_feedback(int64_t lost_ns, int64_t region_ns)
{
    enum { MAX_BACKOFF = 64 };
    const int64_t floor_ns = 200000;
    if (lost_ns > floor_ns && lost_ns * 4 > region_ns) {
        backoff_len = backoff_len ? (backoff_len < MAX_BACKOFF ? 2 * backoff_len : MAX_BACKOFF)
                                  : 1;
        backoff_left = backoff_len;
    } else { /* a calm region shortens the next backoff: busy spells tend to last */
        backoff_len /= 2;
    }
}
