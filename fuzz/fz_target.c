/* libFuzzer entry point: the first byte picks the operation, the rest drives it. Values 200..247
 * pick the paged attention; the others keep the operation they picked before it was added (no
 * input of the seed corpus starts with one of those values), so the corpus keeps its meaning.
 * An input that ends in a modifier trailer (fz_split_mods) also sets score modifiers for the
 * attention operations; one with a quantization trailer (fz_split_quant, before the modifier
 * trailer) gets quantized K/V in the attention operations, and runs ra_quantize in place of
 * the other operations. One with a multi-token trailer (fz_split_multi, before the other two)
 * runs the multi-token calls, whatever its first byte. No input made before these trailers
 * ends in one. */
#include <stddef.h>
#include <stdint.h>

#include "fz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    fz_in mods = fz_split_mods(&in);
    fz_in quant = fz_split_quant(&in);
    fz_in multi = fz_split_multi(&in);
    if (multi.p) {
        fz_op_multi(&in, &multi, &mods, &quant);
        return 0;
    }
    const uint8_t op = fz_u8(&in);
    if (op >= 200 && op < 248) {
        fz_op_paged(&in, &mods, &quant);
        return 0;
    }
    if (op % 8 <= 2) {
        fz_op_attention(&in, &mods, &quant); /* the largest surface gets the most inputs */
        return 0;
    }
    if (quant.p) {
        fz_op_quantize(&in);
        return 0;
    }
    switch (op % 8) {
    case 3:
    case 4:
        fz_op_merge(&in);
        break;
    case 5:
        fz_op_cost(&in);
        break;
    case 6:
        fz_op_tensor(&in);
        break;
    default:
        fz_op_options(&in);
        break;
    }
    return 0;
}
