/* A dlopen user: the program is not linked against libraggedattn. It loads the installed
 * library with RTLD_NOW | RTLD_LOCAL and checks that
 *   - every symbol of abi/exported-symbols.txt resolves, with its symbol version;
 *   - ra_get_api's table points at exactly those exported functions, member by member;
 *   - a ragged GQA called through the table gives the hand-computed answer;
 *   - the internal symbols named on the command line (ra__*) do not resolve.
 * Usage: ra_dlopen_test LIBRARY EXPORTED_SYMBOLS_TXT INTERNAL_SYMBOL... */
#define _GNU_SOURCE /* dlvsym, RTLD_DEFAULT */
#include <dlfcn.h>
#include <raggedattn.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include "tiny_gqa.h"

typedef const ra_api *(*get_api_fn)(uint32_t);
typedef void (*any_fn)(void);

/* Every member of ra_api after the two sizes; "ra_" + member is the function it must hold. */
#define RA_TABLE(X)                                                                            \
    X(version_number) X(version_string) X(status_string) X(last_error) X(tensor_wrap)          \
    X(tensor_create) X(tensor_destroy) X(tensor_data) X(tensor_dtype) X(tensor_rank)           \
    X(tensor_dim) X(tensor_stride) X(options_create) X(options_destroy)                        \
    X(options_set_block_size) X(options_set_scale) X(options_set_mask_value)                   \
    X(options_set_num_threads) X(options_set_kernel) X(options_set_split_tokens)               \
    X(kernel_resolve) X(kernel_name) X(ragged_mqa) X(ragged_mha) X(ragged_gqa)                 \
    X(reference_mqa) X(reference_mha) X(reference_gqa) X(merge) X(mha_cost_estimate)          \
    X(paged_gqa) X(options_set_softcap) X(options_set_window) X(options_set_sinks)            \
    X(options_set_alibi) X(tensor_wrap_quantized) X(quantize) X(ragged_gqa_multi)            \
    X(paged_gqa_multi)

struct member {
    const char *symbol;
    size_t offset;
};
#define RA_MEMBER(name) {"ra_" #name, offsetof(ra_api, name)},
static const struct member members[] = {RA_TABLE(RA_MEMBER)};
#define N_MEMBERS (sizeof members / sizeof members[0])

/* If this fails, ra_api grew: add the new members to RA_TABLE. */
_Static_assert(sizeof(ra_api) == 2 * sizeof(uint32_t) + N_MEMBERS * sizeof(any_fn),
               "RA_TABLE does not list every member of ra_api");
_Static_assert(sizeof(void *) == sizeof(any_fn), "POSIX: function and data pointers agree");

static int failures;

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    failures++;
}

/* dlsym returns void *; ISO C has no conversion to function pointers, so copy the bytes. */
static get_api_fn to_get_api(void *p)
{
    get_api_fn f;
    memcpy(&f, &p, sizeof f);
    return f;
}

static void *table_entry(const ra_api *api, size_t offset)
{
    void *p;
    memcpy(&p, (const char *)api + offset, sizeof p);
    return p;
}

static const struct member *find_member(const char *symbol)
{
    size_t i;
    for (i = 0; i < N_MEMBERS; i++)
        if (strcmp(members[i].symbol, symbol) == 0) return &members[i];
    return NULL;
}

/* Each line "T ra_name@@VERSION" must resolve (by name and by version); functions other
 * than ra_get_api must be table members, and every member must be listed. */
static void check_exports(void *lib, const char *path)
{
    char line[256], type, name[200];
    unsigned char listed[N_MEMBERS] = {0};
    size_t i, n = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        fail("cannot open %s", path);
        return;
    }
    while (fgets(line, sizeof line, f)) {
        char *at;
        const struct member *mb;
        if (line[0] == '#' || line[0] == '\n') continue;
        if (sscanf(line, " %c %199s", &type, name) != 2) {
            fail("unreadable line in %s: %s", path, line);
            continue;
        }
        if (type == 'A') continue; /* a version node, not a symbol */
        at = strstr(name, "@@");
        if (!at) {
            fail("%s has no default symbol version", name);
            continue;
        }
        *at = '\0';
        n++;
        if (!dlsym(lib, name)) fail("dlsym(%s) failed: %s", name, dlerror());
        if (!dlvsym(lib, name, at + 2)) fail("dlvsym(%s, %s) failed", name, at + 2);
        if (strcmp(name, "ra_get_api") == 0) continue;
        mb = find_member(name);
        if (type != 'T' || !mb)
            fail("exported symbol %s (type %c) is not a member of ra_api", name, type);
        else
            listed[mb - members] = 1;
    }
    fclose(f);
    for (i = 0; i < N_MEMBERS; i++)
        if (!listed[i]) fail("%s is in ra_api but not in %s", members[i].symbol, path);
    if (n == 0) fail("%s lists no symbols", path);
}

static void check_table(void *lib, const ra_api *api)
{
    size_t i;
    if (api->struct_size != sizeof(ra_api)) fail("struct_size differs from sizeof(ra_api)");
    if (api->abi_version != RA_API_VERSION) fail("abi_version is not RA_API_VERSION");
    for (i = 0; i < N_MEMBERS; i++) {
        void *p = table_entry(api, members[i].offset);
        if (!p || p != dlsym(lib, members[i].symbol))
            fail("table member for %s differs from dlsym(\"%s\")", members[i].symbol,
                 members[i].symbol);
    }
    if (api->version_number() != RA_VERSION_NUMBER ||
        strcmp(api->version_string(), RA_VERSION_STRING) != 0)
        fail("library version %s, header version %s", api->version_string(), RA_VERSION_STRING);
}

/* The tiny problem through the table, and one error path. */
static void check_numbers(const ra_api *api)
{
    enum { Q, K, V, LEN, O, M, L, COUNT };
    static const struct {
        ra_dtype dtype;
        int rank;
        const int64_t *shape;
    } spec[COUNT] = {{RA_DTYPE_F32, 4, tiny_q_shape},  {RA_DTYPE_F32, 4, tiny_kv_shape},
                     {RA_DTYPE_F32, 4, tiny_kv_shape}, {RA_DTYPE_I32, 1, tiny_len_shape},
                     {RA_DTYPE_F32, 4, tiny_q_shape},  {RA_DTYPE_F32, 4, tiny_ml_shape},
                     {RA_DTYPE_F32, 4, tiny_ml_shape}};
    tiny_buffers b;
    void *data[COUNT];
    ra_tensor *t[COUNT] = {NULL};
    ra_status s;
    int i;

    tiny_fill(&b);
    data[Q] = b.q, data[K] = b.k, data[V] = b.v, data[LEN] = b.lengths;
    data[O] = b.o, data[M] = b.m, data[L] = b.l;
    for (i = 0; i < COUNT; i++) {
        s = api->tensor_wrap(&t[i], spec[i].dtype, spec[i].rank, spec[i].shape, NULL, data[i]);
        if (s != RA_OK) fail("tensor_wrap: %s: %s", api->status_string(s), api->last_error());
    }
    if (failures == 0) {
        s = api->ragged_gqa(NULL, t[Q], t[K], t[V], t[LEN], t[O], t[M], t[L]);
        if (s != RA_OK)
            fail("ragged_gqa: %s: %s", api->status_string(s), api->last_error());
        else if (tiny_check(&b) != 0)
            fail("ragged_gqa through the table gave wrong values");

        s = api->ragged_gqa(NULL, NULL, t[K], t[V], t[LEN], t[O], t[M], t[L]);
        if (s != RA_ERR_INVALID_ARGUMENT || api->last_error()[0] == '\0')
            fail("ragged_gqa(q = NULL) gave %s, message \"%s\"", api->status_string(s),
                 api->last_error());
    }
    for (i = 0; i < COUNT; i++) api->tensor_destroy(t[i]);
}

int main(int argc, char **argv)
{
    void *lib, *sym;
    const ra_api *api;
    get_api_fn get_api;
    int i;

    if (argc < 4) {
        fprintf(stderr, "usage: %s LIBRARY EXPORTED_SYMBOLS_TXT INTERNAL_SYMBOL...\n", argv[0]);
        return 2;
    }
    lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "FAIL: dlopen(%s): %s\n", argv[1], dlerror());
        return 1;
    }
    /* RTLD_LOCAL, and this program does not link the library: nothing leaks globally. */
    if (dlsym(RTLD_DEFAULT, "ra_get_api")) fail("ra_get_api is visible globally");

    sym = dlsym(lib, "ra_get_api");
    if (!sym) {
        fprintf(stderr, "FAIL: dlsym(ra_get_api): %s\n", dlerror());
        return 1;
    }
    get_api = to_get_api(sym);
    api = get_api(RA_API_VERSION);
    if (!api) {
        fprintf(stderr, "FAIL: ra_get_api(RA_API_VERSION) returned NULL\n");
        return 1;
    }
    if (get_api(0) != NULL) fail("ra_get_api(0) is not NULL");
    /* a program built against table version 1 still gets its table, and its members */
    if (!get_api(1) || get_api(1)->abi_version != 1 ||
        get_api(1)->ragged_gqa != api->ragged_gqa)
        fail("ra_get_api(1) does not give a version-1 table");
    if (get_api(RA_API_VERSION + 1) != NULL) fail("ra_get_api(RA_API_VERSION + 1) is not NULL");

    check_exports(lib, argv[2]);
    check_table(lib, api);
    check_numbers(api);

    for (i = 3; i < argc; i++) {
        dlerror();
        if (dlsym(lib, argv[i])) fail("internal symbol %s is visible to dlsym", argv[i]);
    }

    if (dlclose(lib) != 0) fail("dlclose: %s", dlerror());
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("dlopen: %zu table members, %d hidden internals checked; ragged GQA correct\n",
           (size_t)N_MEMBERS, argc - 3);
    return 0;
}
