/* Paged K/V caches for the harness: the pool layouts, page-table modes and builders that the
 * paged operation (fz_paged.c) and the multi-token one (fz_multi.c) share. */
#ifndef RA_FZ_PAGED_H
#define RA_FZ_PAGED_H

#include "fz_attn.h"

/* The roles of the attention operation, the page table after them, then the scales of
 * quantized pools. */
enum { P_TABLE = A_N, P_N, P_KS = P_N, P_VS, P_ALL };

/* How the pools are laid out. */
enum {
    POOL_NHD,      /* two pools [NP][PS][Hkv][D] */
    POOL_HND,      /* two pools stored [NP][Hkv][PS][D], passed as strided views */
    POOL_ONE_NHD,  /* one buffer [NP][2][PS][Hkv][D], K and V two views of it */
    POOL_ONE_HND,  /* one buffer [NP][2][Hkv][PS][D] */
    POOL_MIXED,    /* K NHD, V HND */
    POOL_PADDED,   /* NHD with gaps between rows and between pages */
    POOL_FUZZED,   /* fz_choose_layout for each: permuted, padded, broadcast, small strides */
    POOL_SAME,     /* K and V are the same view */
    POOL_N
};

/* How the page table fills the used slots. */
enum { PAGES_SHUFFLED, PAGES_IN_ORDER, PAGES_REPEATED, PAGES_SHARED_PREFIX, PAGES_N };

typedef struct fz_paged {
    fz_attn a; /* tensors at A_Q .. A_L, the table at P_TABLE; a.S = max_pages * page_size */
    int64_t NP, PS, MP;
    int layout, pages_mode;
} fz_paged;

int64_t fz_ceil_div(int64_t a, int64_t b);
/* A length chosen by one byte: mostly valid, sometimes S, 0, or out of range. */
int32_t fz_pick_length(uint8_t x, int64_t S);
/* The lengths the tensor will hold once every entry is written in order (a broadcast or
 * overlapping layout keeps the last value written to each element). */
void fz_final_lengths(const fz_tensor *len, const int32_t *wrote, int64_t n, int32_t *out);
/* Element strides of the pool views for the layouts that fix them; the byte offset of V in
 * K's buffer for the one-buffer layouts. */
void fz_paged_pool_layout(fz_paged *pg, fz_in *in);
/* Writes lengths (len_wrote for the first B) and the page table, then fills the pools (every
 * row poison or background first, then each valid position's row; codes in quantized pools,
 * then their scales from the quantization bytes qs), q, and now and then a special value. */
void fz_paged_fill(fz_in *in, fz_in *qs, fz_paged *pg, const int32_t *len_wrote);

#endif
