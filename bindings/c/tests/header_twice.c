/* header_twice.c: include/surgewall.h twice in a C11 translation unit (-Wall -Wextra -Werror -pedantic). */
#include "surgewall.h"
#include "surgewall.h" /* a second time: the include guard must hold */

#include <stddef.h>

#include "header_layout.inc"

_Static_assert(sizeof(surgewall_status) == 4, "surgewall_status is an int32_t");
_Static_assert(SURGEWALL_OK == 0, "SURGEWALL_OK is 0");
_Static_assert(SURGEWALL_VERSION_NUMBER == SURGEWALL_VERSION_MAJOR * 10000 + SURGEWALL_VERSION_MINOR * 100 + SURGEWALL_VERSION_PATCH, "version macros agree");

/* Fills out[] with this unit's view of the layout; returns how many facts. */
int header_twice_c(size_t *out);
int header_twice_c(size_t *out)
{
    int i = 0;
    LAYOUT_FACTS(LAYOUT_STORE)
    return i;
}
