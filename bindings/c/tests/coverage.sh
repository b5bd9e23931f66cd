#!/bin/sh
# coverage.sh HEADER SUITE...: every function HEADER declares must be called in each SUITE.
# Prints the line CI reads ("N passed, N failed"); fails when the header grew a function a
# suite does not exercise yet.
set -eu
header=$1
shift
funcs=$(sed -n 's/^[A-Za-z_][A-Za-z0-9_ *]*[ *]\(surgewall_[a-z0-9_]*\)(.*/\1/p' "$header" | sort -u)
passed=0
failed=0
for suite in "$@"; do
    for f in $funcs; do
        if grep -q "\\b$f(" "$suite"; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
            echo "$suite: never calls $f" >&2
        fi
    done
done
echo "coverage: $(echo "$funcs" | wc -w) functions in $(basename "$header")"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
