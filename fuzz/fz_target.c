/* libFuzzer entry point: the first byte picks the operation, the rest drives it. */
#include <stddef.h>
#include <stdint.h>

#include "fz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    switch (fz_u8(&in) % 8) {
    case 0:
    case 1:
    case 2:
        fz_op_attention(&in); /* the largest surface gets the most inputs */
        break;
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
