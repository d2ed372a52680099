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

#endif
