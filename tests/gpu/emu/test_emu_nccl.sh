#!/usr/bin/env bash
# The NCCL shim on 2 ranks (tests/gpu/emu/test_emu_nccl.c): every call
# against host-computed values; a consumer not ordered after a receive reads
# stale bytes; and each misuse stops the job with its "EMU FAIL:" message.
# usage: test_emu_nccl.sh PROGRAM MPIEXEC [NP_FLAG]
set -u
prog=$1 mpiexec=${2:-mpirun} npflag=${3:--n}
mpi=("$mpiexec" $npflag 2 --oversubscribe --bind-to none "$prog")
fail() { echo "FAIL: $*"; exit 1; }
"${mpi[@]}" ok || fail "the calls against host values"
"${mpi[@]}" nowait || fail "a read not ordered after the receive saw the received bytes"
while IFS='|' read -r mode msg; do
    out=$(EMU_NCCL_TIMEOUT_S=20 "${mpi[@]}" "$mode" 2>&1 </dev/null) && fail "$mode: the job succeeded"
    grep -qF "EMU FAIL: $msg" <<<"$out" || { echo "$out" | tail -5; fail "$mode: no 'EMU FAIL: $msg'"; }
    echo "$mode: caught ($(grep -m1 -o 'EMU FAIL: .*' <<<"$out"))"
done <<'LIST'
count|rank 1: ncclRecv of 12 x float32 from rank 0 (its message 0), but rank 0 sent ncclSend of 10 x float32
type|rank 1: ncclRecv of 10 x int32 from rank 0 (its message 0), but rank 0 sent ncclSend of 10 x float32
order|rank 1: collective 0 is ncclBroadcast of 1000 x float32
group_end|ncclGroupEnd without ncclGroupStart
group_open|the host waits for the device inside ncclGroupStart / ncclGroupEnd
host_buffer|ncclAllReduce: the send buffer (4000 bytes) is not inside one device allocation
overlap|ncclAllReduce: send and receive buffers overlap, not in NCCL's in-place form
destroyed|ncclAllReduce on a communicator after ncclCommDestroy
LIST
echo "test_emu_nccl: the NCCL shim's calls, ordering and checks"
