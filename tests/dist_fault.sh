#!/usr/bin/env bash
# dist_fault.sh: a fault that breaks communication between the processes
# of a data parallel job must end the whole job within a bounded time,
# with a message that names the faulty rank; never a hang.
# Usage: dist_fault.sh MPIRUN PROGRAM MODE NP
#   runs PROGRAM --fault MODE (tests/test_dist_faults.c, timeout 1 s) on NP
#   processes and checks, by MODE:
#   hang:  rank 1 stops answering: rank 0 stops about 1 s later with
#          "rank 1 did not answer within 1 s";
#   hang0: rank 0 stops answering: rank 1 stops about 2 s later with
#          "rank 0 did not answer within 2 s";
#   tp:    rank 1's input to a tensor parallel layer is NULL (its forward
#          failed): the others stop at once, with rank 1's error;
#   die:   rank 1 is killed: mpirun ends the job, naming rank 1 and
#          signal 9 (the others may have stopped first, after the
#          timeout, naming rank 1 too).
# The job must end unsuccessfully in under 20 s; its output and the time
# it took are printed.
set -u
mpirun=$1 program=$2 mode=$3 np=$4
start=$(date +%s%N)
output=$(timeout -k 5 60 "$mpirun" --oversubscribe -np "$np" "$program" \
    --fault "$mode" 2>&1)
status=$?
ms=$((($(date +%s%N) - start) / 1000000))
elapsed=$((ms / 1000)).$(printf %03d $((ms % 1000)))
echo "$output"
echo "dist_fault.sh: $mode on $np ranks: exit status $status after $elapsed s"
case $mode in
hang) want="rank 0: stopped after 1.[0-9]* s: ag_ddp_backward: rank 1 did not answer within 1 s" ;;
hang0) want="rank 1: stopped after 2.[0-9]* s: ag_ddp_backward: rank 0 did not answer within 2 s" ;;
tp) want="rank 0: stopped after 0.[0-9]* s: ag_tp_reduce: rank 1: ag_linear: x (4,4) and weight" ;;
die) want="process rank 1 with PID [0-9]* on node .* exited on signal 9" ;;
*) echo "dist_fault.sh: unknown mode $mode" >&2; exit 2 ;;
esac
fail=0
if ! grep -q -- "$want" <<<"$output"; then
    echo "dist_fault.sh: the output lacks: $want" >&2
    fail=1
fi
if [ "$status" -eq 0 ] || [ "$status" -eq 124 ]; then
    echo "dist_fault.sh: the job should fail, and on its own (status $status;" \
        "124: it hung until stopped)" >&2
    fail=1
fi
if [ "$ms" -ge 20000 ]; then
    echo "dist_fault.sh: the job took $elapsed s" >&2
    fail=1
fi
exit $fail
