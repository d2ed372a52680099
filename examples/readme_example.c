/* example.c: one decode step of ragged GQA attention, then the normalized output. */
#include <math.h>
#include <stdio.h>
#include <raggedattn.h>

enum { B = 2, S = 8, Hq = 4, Hkv = 2, D = 16 };

int main(void)
{
    /* q [B,1,Hq,D], K/V caches [B,S,Hkv,D] (f32 here; f16 and bf16 caches work the same way
     * with RA_DTYPE_F16 / RA_DTYPE_BF16), lengths [B] (int32), all row-major. */
    static float q_data[B * Hq * D], k_cache[B * S * Hkv * D], v_cache[B * S * Hkv * D];
    static float out[B * Hq * D], denom[B * Hq];
    int32_t lengths[B] = {8, 3}; /* positions at or past lengths[b] are never read */
    for (int i = 0; i < B * Hq * D; i++)
        q_data[i] = sinf(0.1f * (float)i);
    for (int i = 0; i < B * S * Hkv * D; i++) {
        k_cache[i] = cosf(0.07f * (float)i);
        v_cache[i] = sinf(0.03f * (float)i);
    }

    int64_t qs[] = {B, 1, Hq, D}, kvs[] = {B, S, Hkv, D}, ls[] = {B}, mls[] = {B, 1, Hq, 1};
    ra_tensor *q, *k, *v, *len, *o, *l;
    ra_tensor_wrap(&q, RA_DTYPE_F32, 4, qs, NULL, q_data);   /* NULL strides: contiguous */
    ra_tensor_wrap(&k, RA_DTYPE_F32, 4, kvs, NULL, k_cache);
    ra_tensor_wrap(&v, RA_DTYPE_F32, 4, kvs, NULL, v_cache);
    ra_tensor_wrap(&len, RA_DTYPE_I32, 1, ls, NULL, lengths);
    ra_tensor_wrap(&o, RA_DTYPE_F32, 4, qs, NULL, out);       /* receives o * l */
    ra_tensor_wrap(&l, RA_DTYPE_F32, 4, mls, NULL, denom);

    ra_options *opts;
    ra_options_create(&opts);
    ra_options_set_scale(opts, 1.0f / sqrtf((float)D));
    ra_status s = ra_ragged_gqa(opts, q, k, v, len, o, NULL, l);
    if (s == RA_OK) {
        /* out[(b*Hq + h)*D + d] / denom[b*Hq + h] is the attention output. ra_merge of the one
         * part divides it out, here in place (a single part needs no m). */
        const ra_tensor *parts_o[] = {o}, *parts_l[] = {l};
        s = ra_merge(1, parts_o, NULL, parts_l, o, NULL, NULL);
    }
    if (s != RA_OK)
        fprintf(stderr, "attention: %s\n", ra_last_error()); /* names the argument and value */
    else
        printf("b=1 h=3: %.5f %.5f %.5f ...\n", out[7 * D], out[7 * D + 1], out[7 * D + 2]);

    ra_options_destroy(opts);
    ra_tensor *all[] = {q, k, v, len, o, l}; /* wrapping never copies or frees your memory */
    for (int i = 0; i < 6; i++)
        ra_tensor_destroy(all[i]);
    return s == RA_OK ? 0 : 1;
}
