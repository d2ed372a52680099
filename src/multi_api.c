/* ra_ragged_gqa_multi and ra_paged_gqa_multi: T query positions per sequence with a causal
 * mask, on contiguous and paged caches, with the decode calls' output convention. */
#include "multi.h"
#include "problem.h"

enum { B = RA_R_B, S = RA_R_S, T = RA_R_T, HQ = RA_R_HQ, HKV = RA_R_HKV, D = RA_R_D,
       ONE = RA_R_ONE, NP = RA_R_NP, PS = RA_R_PS };

/* q [B,T,Hq,D], k/v [B,S,Hkv,D], o*l [B,T,Hq,D], m/l [B,T,Hq,1]. */
static const ra__signature sig_ragged_gqa_multi = {
    "ra_ragged_gqa_multi", {4, {B, T, HQ, D}}, {4, {B, S, HKV, D}}, {4, {B, T, HQ, D}},
    {4, {B, T, HQ, ONE}}, false, false, false, true};
/* the same over pools [num_pages,page_size,Hkv,D] and a page table [B,max_pages] */
static const ra__signature sig_paged_gqa_multi = {
    "ra_paged_gqa_multi", {4, {B, T, HQ, D}}, {4, {NP, PS, HKV, D}}, {4, {B, T, HQ, D}},
    {4, {B, T, HQ, ONE}}, false, false, true, true};

ra_status ra_ragged_gqa_multi(const ra_options *opts, const ra_tensor *q, const ra_tensor *k,
                              const ra_tensor *v, const ra_tensor *lengths,
                              const ra_tensor *q_lens, ra_tensor *o, ra_tensor *m, ra_tensor *l)
{
    return ra__bind_and_run(&sig_ragged_gqa_multi, ra__multi, opts, q, k, v, NULL, lengths,
                            q_lens, o, m, l);
}

ra_status ra_paged_gqa_multi(const ra_options *opts, const ra_tensor *q,
                             const ra_tensor *k_pages, const ra_tensor *v_pages,
                             const ra_tensor *page_table, const ra_tensor *lengths,
                             const ra_tensor *q_lens, ra_tensor *o, ra_tensor *m, ra_tensor *l)
{
    return ra__bind_and_run(&sig_paged_gqa_multi, ra__multi, opts, q, k_pages, v_pages,
                            page_table, lengths, q_lens, o, m, l);
}
