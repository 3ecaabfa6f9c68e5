#!/bin/sh
# Register / spill table of the attention kernels for one GPU architecture
# (default sm_90), from ptxas -v; no GPU needed. Static shared memory only
# (the tiles are dynamic: see each .cu's header comment).
#   scripts/ptxas-attn.sh [sm_90|sm_80|sm_86] [kernels/cuda dir] [extra nvcc flags...]
set -e
arch=${1:-sm_90}
here=$(cd "$(dirname "$0")/.." && pwd)
src=${2:-$here/kernels/cuda}
[ $# -ge 2 ] && shift 2 || shift $#
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in cu_attn_docs cu_attn_fwd cu_attn_bwd cu_attn_f32; do
    nvcc -arch="$arch" -O3 -std=c++17 --expt-relaxed-constexpr -Xptxas -v "$@" -c "$src/$f.cu" \
        -I"$src" -I"$here/kernels/cpu" -I"$here/common" -o "$tmp/$f.o" 2>>"$tmp/log"
done
awk '
/Compiling entry function/ { name = $0; sub(/.*function .?/, "", name); sub(/.? for .*/, "", name) }
/bytes stack frame/ { frame = $1; ss = $5; sl = $9 }
/Used [0-9]+ registers/ {
    match($0, /Used [0-9]+ registers/); regs = substr($0, RSTART + 5, RLENGTH - 15)
    smem = 0; if (match($0, /[0-9]+ bytes smem/)) smem = substr($0, RSTART, RLENGTH - 11)
    print name "|" regs "|" ss "|" sl "|" frame "|" smem
}' "$tmp/log" | c++filt | sed 's/^void //; s/([^|]*)|/|/' | sort |
    awk -F'|' 'BEGIN { printf "%-38s %5s %9s %8s %6s %5s\n", "kernel", "regs", "spill-st", "spill-ld", "stack", "smem" }
               { printf "%-38s %5s %9s %8s %6s %5s\n", $1, $2, $3, $4, $5, $6 }'
