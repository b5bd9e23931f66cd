#!/bin/sh
# compare.sh C_OUTPUT RUST_OUTPUT: prints the G4 comparison (C guarded call <= Rust + 2 ns)
# from bench.c's lines and criterion's (middle estimate of `time: [lo mid hi]`).
set -eu
c=$1
rust=$2
rust_ns() {
    awk -v want="guarded_call/$1" '
        $1 == want { found = 1 }
        found && /time:/ {
            sub(/.*time: *\[/, ""); v = $3; u = $4
            if (u == "ps") v /= 1000; else if (u == "µs" || u == "us") v *= 1000; else if (u == "ms") v *= 1000000
            print v; exit
        }' "$rust"
}
c_ns() { awk -v want="c/$1" '$1 == want { print $2; exit }' "$c"; }
rb=$(rust_ns baseline_fetch_add)
rs=$(rust_ns surgewall_closed_success)
cb=$(c_ns baseline_fetch_add)
cs=$(c_ns surgewall_closed_success)
cf=$(c_ns surgewall_closed_success_fast)
if [ -z "$rb" ] || [ -z "$rs" ] || [ -z "$cb" ] || [ -z "$cs" ]; then
    echo "compare: missing figures (rust: '$rb' '$rs', c: '$cb' '$cs')" >&2
    exit 1
fi
awk -v rb="$rb" -v rs="$rs" -v cb="$cb" -v cs="$cs" -v cf="$cf" 'BEGIN {
    printf "\n== G4: C guarded call <= Rust guarded call + 2 ns (one run, this machine)\n"
    printf "  Rust  baseline %.3f ns   guarded call %.3f ns  (%.2fx)\n", rb, rs, rs / rb
    printf "  C     baseline %.3f ns   guarded call %.3f ns  (%.2fx)   fast path %.3f ns  (%.2fx)\n", cb, cs, cs / cb, cf, cf / cb
    printf "  C - Rust: ABI %+.3f ns, fast path %+.3f ns  -> G4 %s (fast path %s)\n", cs - rs, cf - rs, (cs - rs <= 2) ? "met" : "MISSED", (cf - rs <= 2) ? "met" : "missed"
}'
