/* The seed's six functions: each is its signature (shapes and output convention) bound to one
 * of two engines: the ragged decode core or the literal reference transcription. */
#include "decode.h"
#include "problem.h"
#include "reference.h"

enum { B = RA_R_B, S = RA_R_S, HQ = RA_R_HQ, HKV = RA_R_HKV, D = RA_R_D, ONE = RA_R_ONE };

/* ragged_mqa: q [B,H,D], k/v [B,S,D], normalized o [B,H,D], m/l [B,H]. */
static const ra__signature sig_ragged_mqa = {
    "ra_ragged_mqa", {3, {B, HQ, D}}, {3, {B, S, D}}, {3, {B, HQ, D}}, {2, {B, HQ}}, false, true,
    false, false};
/* ragged_mha: q [B,1,H,D], k/v [B,S,H,D], o*l [B,1,H,D], m/l [B,1,H,1]. */
static const ra__signature sig_ragged_mha = {
    "ra_ragged_mha", {4, {B, ONE, HQ, D}}, {4, {B, S, HKV, D}}, {4, {B, ONE, HQ, D}},
    {4, {B, ONE, HQ, ONE}}, true, false, false, false};
/* ragged_gqa: q [B,1,Hq,D], k/v [B,S,Hkv,D], o*l [B,1,Hq,D], m/l [B,1,Hq,1]. */
static const ra__signature sig_ragged_gqa = {
    "ra_ragged_gqa", {4, {B, ONE, HQ, D}}, {4, {B, S, HKV, D}}, {4, {B, ONE, HQ, D}},
    {4, {B, ONE, HQ, ONE}}, false, false, false, false};
/* reference_mqa: q [B,H,D], k/v [B,S,D], normalized o [B,H,D], m/l [B,H,1]. */
static const ra__signature sig_reference_mqa = {
    "ra_reference_mqa", {3, {B, HQ, D}}, {3, {B, S, D}}, {3, {B, HQ, D}}, {3, {B, HQ, ONE}},
    false, true, false, false};
/* reference_mha: q [B,1,H,D], k/v [B,S,H,D], normalized o [B,1,H,D], m/l [B,1,H,1]. */
static const ra__signature sig_reference_mha = {
    "ra_reference_mha", {4, {B, ONE, HQ, D}}, {4, {B, S, HKV, D}}, {4, {B, ONE, HQ, D}},
    {4, {B, ONE, HQ, ONE}}, true, true, false, false};
/* reference_gqa: q [B,Hq,D], k/v [B,Hkv,S,D], normalized o [B,1,Hq,D], m/l [B,1,Hq,1]. */
static const ra__signature sig_reference_gqa = {
    "ra_reference_gqa", {3, {B, HQ, D}}, {4, {B, HKV, S, D}}, {4, {B, ONE, HQ, D}},
    {4, {B, ONE, HQ, ONE}}, false, true, false, false};

#define RA__SEED_FUNCTION(fn, sig, engine)                                                      \
    ra_status fn(const ra_options *opts, const ra_tensor *q, const ra_tensor *k,                \
                 const ra_tensor *v, const ra_tensor *lengths, ra_tensor *o, ra_tensor *m,      \
                 ra_tensor *l)                                                                  \
    {                                                                                           \
        return ra__bind_and_run(&sig, engine, opts, q, k, v, NULL, lengths, NULL, o, m, l);     \
    }

RA__SEED_FUNCTION(ra_ragged_mqa, sig_ragged_mqa, ra__decode)
RA__SEED_FUNCTION(ra_ragged_mha, sig_ragged_mha, ra__decode)
RA__SEED_FUNCTION(ra_ragged_gqa, sig_ragged_gqa, ra__decode)
RA__SEED_FUNCTION(ra_reference_mqa, sig_reference_mqa, ra__reference)
RA__SEED_FUNCTION(ra_reference_mha, sig_reference_mha, ra__reference)
RA__SEED_FUNCTION(ra_reference_gqa, sig_reference_gqa, ra__reference)
