// The public header must compile on its own, as the first include, from C++98 on, and must not
// trip the warnings C++ projects commonly enable (old-style casts, 0 as a null pointer).
#include <raggedattn.h>
#include <raggedattn.h>

typedef const ra_api *(*ra_header_get_api_fn)(uint32_t);

int ra_header_check();
int ra_header_check()
{
    ra_header_get_api_fn f = &ra_get_api;
    ra_api table = ra_api();
    return static_cast<int>(f != NULL) + static_cast<int>(sizeof table) + RA_VERSION_NUMBER +
           RA_API_VERSION + static_cast<int>(RA_OK);
}
