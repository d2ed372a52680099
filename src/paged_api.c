/* ra_paged_gqa: the ragged decode engine over a paged KV cache (a pool of pages and a page
 * table per sequence), with ra_ragged_gqa's shapes for q and the outputs. */
#include "decode.h"
#include "problem.h"

enum { B = RA_R_B, HQ = RA_R_HQ, HKV = RA_R_HKV, D = RA_R_D, ONE = RA_R_ONE, NP = RA_R_NP,
       PS = RA_R_PS };

/* q [B,1,Hq,D], pools [num_pages,page_size,Hkv,D], o*l [B,1,Hq,D], m/l [B,1,Hq,1]. */
static const ra__signature sig_paged_gqa = {
    "ra_paged_gqa", {4, {B, ONE, HQ, D}}, {4, {NP, PS, HKV, D}}, {4, {B, ONE, HQ, D}},
    {4, {B, ONE, HQ, ONE}}, false, false, true, false};

ra_status ra_paged_gqa(const ra_options *opts, const ra_tensor *q, const ra_tensor *k_pages,
                       const ra_tensor *v_pages, const ra_tensor *page_table,
                       const ra_tensor *lengths, ra_tensor *o, ra_tensor *m, ra_tensor *l)
{
    return ra__bind_and_run(&sig_paged_gqa, ra__decode, opts, q, k_pages, v_pages, page_table,
                            lengths, NULL, o, m, l);
}
