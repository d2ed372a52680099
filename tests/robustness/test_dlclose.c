/* dlopen, a 2-thread call, dlclose, 100 times: a host that loads the library as a plugin must
 * survive unloading it. libgomp's idle workers sleep inside libgomp, so unmapping it under them
 * crashed the process; the library is linked with -z nodelete, so dlclose leaves it (and
 * libgomp) mapped, and the next dlopen finds it. Run as: test_dlclose <path to the .so>. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raggedattn.h"

enum { ROUNDS = 100, B = 2, S = 4096, H = 8, D = 64 };

static float q[B * H * D], k[B * S * H * D], v[B * S * H * D], o[B * H * D], first[B * H * D];
static int32_t lengths[B] = {S, S - 3};

static int one_round(const char *path, int round)
{
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "round %d: dlopen: %s\n", round, dlerror());
        return 1;
    }
    const ra_api *(*get_api)(uint32_t);
    *(void **)&get_api = dlsym(lib, "ra_get_api");
    const ra_api *ra = get_api ? get_api(RA_API_VERSION) : NULL;
    if (!ra) {
        fprintf(stderr, "round %d: no ra_get_api table\n", round);
        return 1;
    }
    const int64_t qs[] = {B, 1, H, D}, ks[] = {B, S, H, D}, ls[] = {B};
    ra_tensor *tq = NULL, *tk = NULL, *tv = NULL, *tl = NULL, *to = NULL;
    ra_options *opts = NULL;
    ra_status s = ra->tensor_wrap(&tq, RA_DTYPE_F32, 4, qs, NULL, q);
    if (!s) s = ra->tensor_wrap(&tk, RA_DTYPE_F32, 4, ks, NULL, k);
    if (!s) s = ra->tensor_wrap(&tv, RA_DTYPE_F32, 4, ks, NULL, v);
    if (!s) s = ra->tensor_wrap(&tl, RA_DTYPE_I32, 1, ls, NULL, lengths);
    if (!s) s = ra->tensor_wrap(&to, RA_DTYPE_F32, 4, qs, NULL, o);
    if (!s) s = ra->options_create(&opts);
    if (!s) s = ra->options_set_num_threads(opts, 2);
    if (!s) s = ra->ragged_gqa(opts, tq, tk, tv, tl, to, NULL, NULL);
    if (s)
        fprintf(stderr, "round %d: %s\n", round, ra->last_error());
    ra->options_destroy(opts);
    ra_tensor *all[] = {tq, tk, tv, tl, to};
    for (int i = 0; i < 5; i++)
        ra->tensor_destroy(all[i]);
    if (dlclose(lib) != 0) {
        fprintf(stderr, "round %d: dlclose: %s\n", round, dlerror());
        return 1;
    }
    return s != RA_OK;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <libraggedattn.so>\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        k[i] = (float)((i * 7) % 13) / 13.0f - 0.5f;
        v[i] = (float)((i * 5) % 11) / 11.0f - 0.5f;
    }
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++)
        q[i] = (float)((i * 3) % 7) / 7.0f - 0.5f;
    for (int round = 0; round < ROUNDS; round++) {
        if (one_round(argv[1], round))
            return 1;
        if (round == 0)
            memcpy(first, o, sizeof o);
        else if (memcmp(first, o, sizeof o) != 0) {
            fprintf(stderr, "round %d: a different result than round 0\n", round);
            return 1;
        }
    }
    printf("%d rounds of dlopen, a 2-thread call and dlclose\n", ROUNDS);
    return 0;
}
