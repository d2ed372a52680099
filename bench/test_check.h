/* What the bench's unit tests share: a CHECK that counts failures and goes on, and the
 * command-line parser called with a list of arguments. Each test file includes it once. */
#ifndef BENCH_TEST_CHECK_H
#define BENCH_TEST_CHECK_H

#include <stdio.h>

#include "cli.h"

static int failures;

#define CHECK(cond, ...)                                                                    \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                            \
            fprintf(stderr, __VA_ARGS__);                                                   \
            fprintf(stderr, "\n");                                                          \
            failures++;                                                                     \
        }                                                                                   \
    } while (0)

/* bench_parse_args on "raggedattn-bench" followed by args[0 .. argc-1] (at most 15). */
static inline int parse(int argc, const char *const *args, bench_config *cfg)
{
    char *argv[16];
    argv[0] = (char *)"raggedattn-bench";
    for (int i = 0; i < argc; i++)
        argv[i + 1] = (char *)args[i];
    return bench_parse_args(argc + 1, argv, cfg);
}

#endif
