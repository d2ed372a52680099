/* The OpenMP teams of the library's parallel regions, sized for the work and made safe for
 * hosts that fork, limit their threads or share their cores (docs/threads.md). */
#ifndef RA_TEAM_H
#define RA_TEAM_H

#include <stdint.h>

/* Threads for one parallel region, called right before it on the thread that runs it: the
 * caller's num_threads (0 = the OpenMP default), capped by the OpenMP thread limit, 4 per
 * processor, one per ~2^20 multiply-adds of work (positions x query heads x 2D) and the
 * number of work items. It is then lowered to what the process can actually start: libgomp
 * exits the process when it cannot create a thread, so threads the calling thread's OpenMP
 * pool does not have yet are first created and joined here, and a team only uses those that
 * could be; and in a child forked while this thread's pool could not be released, the team is
 * 1. Results never depend on it. */
int ra__team_size(int requested, int64_t items, int64_t positions, int64_t heads, int64_t D);
/* The most ra__team_size can return for the same arguments on this thread, with no side
 * effects (it creates no thread and leaves the back-off alone): for sizing scratch ahead. */
int ra__team_cap(int requested, int64_t items, int64_t positions, int64_t heads, int64_t D);

/* Automatic teams (num_threads 0) back off while the cores are busy with other work. Each team
 * thread measures the time it was not running (a late start, then wall minus CPU time over its
 * work); when that exceeds a quarter of the region and 200 us, the calling thread's next
 * automatic calls run on one thread: 1, then 2, 4, ... up to 64 calls while it keeps happening
 * (each calm region halves that length), then the whole team is tried again. Results never
 * depend on it. */
typedef struct ra__team_watch {
    int64_t start_ns; /* region entry, wall clock; -1 when the region is not watched */
    int64_t lost_ns;  /* the most any team thread was not running, ns (atomic max) */
} ra__team_watch;

typedef struct ra__thread_mark {
    int64_t wall_ns, cpu_ns;
} ra__thread_mark;

/* Right before the region: watches it when the team is automatic and has two or more. */
void ra__team_watch_begin(ra__team_watch *w, int requested, int team);
/* In every team thread, around its share of the work. */
ra__thread_mark ra__team_watch_enter(const ra__team_watch *w);
void ra__team_watch_leave(ra__team_watch *w, ra__thread_mark m);
/* Right after the region: feeds the measurement to the calling thread's next team sizes. */
void ra__team_watch_end(const ra__team_watch *w);
/* The decision itself, for tests: lost and region times of the calling thread's last region. */
void ra__team_feedback(int64_t lost_ns, int64_t region_ns);

#endif
