/* header_main.c: runs the header units (C11 and C++17, header included once and twice) and
 * checks that they agree on every size and offset, and that the header's version macros
 * match the library it is linked with. Compiled as C++ so that it links the C++ units. */
#include <stddef.h>
#include <stdio.h>

#include "surgewall.h"
#include "header_layout.inc"

extern "C" {
int header_once_c(size_t *out);
int header_twice_c(size_t *out);
int header_once_cpp(size_t *out);
int header_twice_cpp(size_t *out);
}

int main()
{
    int (*units[])(size_t *) = {header_once_c, header_twice_c, header_once_cpp, header_twice_cpp};
    const char *names[] = {"C11 once", "C11 twice", "C++17 once", "C++17 twice"};
    size_t facts[4][LAYOUT_COUNT];
    int passed = 0, failed = 0;
    for (int u = 0; u < 4; u++) {
        if (units[u](facts[u]) == LAYOUT_COUNT) {
            passed++;
        } else {
            failed++;
            fprintf(stderr, "FAILED: %s reported a wrong number of facts\n", names[u]);
        }
    }
    for (int u = 1; u < 4; u++) {
        for (int f = 0; f < LAYOUT_COUNT; f++) {
            if (facts[u][f] == facts[0][f]) {
                passed++;
            } else {
                failed++;
                fprintf(stderr, "FAILED: layout fact %d: %s says %zu, C11 says %zu\n", f, names[u],
                        facts[u][f], facts[0][f]);
            }
        }
    }
    if (surgewall_version_number() == SURGEWALL_VERSION_NUMBER) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAILED: header %d, library %u\n", SURGEWALL_VERSION_NUMBER, surgewall_version_number());
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
