// A user's C++ program through find_package(RaggedAttn): the C header must be usable from
// C++11 on, under -Wall -Wextra -pedantic -Werror, with handles owned by RAII wrappers.
#include <raggedattn.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <type_traits>

#include "tiny_gqa.h"

static_assert(std::is_standard_layout<ra_api>::value, "ra_api must stay a plain C struct");

namespace {

struct tensor_deleter {
    void operator()(ra_tensor *t) const { ra_tensor_destroy(t); }
};
typedef std::unique_ptr<ra_tensor, tensor_deleter> tensor_ptr;

struct options_deleter {
    void operator()(ra_options *o) const { ra_options_destroy(o); }
};
typedef std::unique_ptr<ra_options, options_deleter> options_ptr;

bool check(ra_status s, const char *what)
{
    if (s == RA_OK) return true;
    std::fprintf(stderr, "%s: %s: %s\n", what, ra_status_string(s), ra_last_error());
    return false;
}

tensor_ptr wrap(ra_dtype dtype, int rank, const int64_t *shape, void *data, const char *name)
{
    ra_tensor *t = nullptr;
    if (!check(ra_tensor_wrap(&t, dtype, rank, shape, nullptr, data), name)) return tensor_ptr();
    return tensor_ptr(t);
}

} // namespace

int main()
{
    const ra_api *api = ra_get_api(RA_API_VERSION);
    if (api == nullptr || api->struct_size < sizeof(ra_api) ||
        api->version_number() != ra_version_number() ||
        std::strcmp(ra_version_string(), RA_VERSION_STRING) != 0) {
        std::fprintf(stderr, "version or API table mismatch (header %s)\n", RA_VERSION_STRING);
        return 1;
    }

    ra_options *raw_opts = nullptr;
    if (!check(ra_options_create(&raw_opts), "ra_options_create")) return 1;
    options_ptr opts(raw_opts);
    // Block size 1 walks the two valid positions in two online-softmax steps.
    if (!check(ra_options_set_block_size(opts.get(), 1), "ra_options_set_block_size")) return 1;

    tiny_buffers b;
    tiny_fill(&b);
    tensor_ptr q = wrap(RA_DTYPE_F32, 4, tiny_q_shape, b.q, "q");
    tensor_ptr k = wrap(RA_DTYPE_F32, 4, tiny_kv_shape, b.k, "k");
    tensor_ptr v = wrap(RA_DTYPE_F32, 4, tiny_kv_shape, b.v, "v");
    tensor_ptr len = wrap(RA_DTYPE_I32, 1, tiny_len_shape, b.lengths, "lengths");
    tensor_ptr o = wrap(RA_DTYPE_F32, 4, tiny_q_shape, b.o, "o");
    tensor_ptr m = wrap(RA_DTYPE_F32, 4, tiny_ml_shape, b.m, "m");
    tensor_ptr l = wrap(RA_DTYPE_F32, 4, tiny_ml_shape, b.l, "l");
    if (!q || !k || !v || !len || !o || !m || !l) return 1;

    if (!check(ra_ragged_gqa(opts.get(), q.get(), k.get(), v.get(), len.get(), o.get(), m.get(),
                             l.get()),
               "ra_ragged_gqa"))
        return 1;
    if (tiny_check(&b) != 0) return 1;

    std::printf("C++%ld consumer: libraggedattn %s agrees with the hand-computed values\n",
                static_cast<long>(__cplusplus), ra_version_string());
    return 0;
}
