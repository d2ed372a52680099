/* The public header must compile on its own, as the first include, under strict warnings,
 * and survive being included twice. Compiled (not linked) as C99, C11 and C++. */
#include <raggedattn.h>
#include <raggedattn.h>

typedef const ra_api *(*ra_header_get_api_fn)(uint32_t);

int ra_header_check(void);
int ra_header_check(void)
{
    ra_header_get_api_fn f = ra_get_api;
    ra_api table = {0};
    return (f != 0) + (int)sizeof table + RA_VERSION_NUMBER + RA_API_VERSION + (int)RA_OK;
}
