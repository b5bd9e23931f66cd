// header_twice.cpp: include/surgewall.h twice in a C++17 translation unit (-Wall -Wextra -Werror -pedantic).
#include "surgewall.h"
#include "surgewall.h" /* a second time: the include guard must hold */

#include <cstddef>
#include <type_traits>

#include "header_layout.inc"

static_assert(std::is_same<std::underlying_type<surgewall_status>::type, int32_t>::value, "int32_t status");
static_assert(std::is_same<std::underlying_type<surgewall_state>::type, int32_t>::value, "int32_t state");
static_assert(std::is_standard_layout<surgewall_permit>::value, "a plain C struct");
static_assert(SURGEWALL_VERSION_NUMBER == SURGEWALL_VERSION_MAJOR * 10000 + SURGEWALL_VERSION_MINOR * 100 + SURGEWALL_VERSION_PATCH, "version macros agree");

extern "C" int header_twice_cpp(size_t *out);
extern "C" int header_twice_cpp(size_t *out)
{
    int i = 0;
    LAYOUT_FACTS(LAYOUT_STORE)
    // the functions are declared extern "C": calling one proves the unmangled name links
    return surgewall_version_number() == SURGEWALL_VERSION_NUMBER ? i : -1;
}
