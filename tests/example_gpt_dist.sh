#!/bin/sh
# example_gpt_dist.sh: the gpt program's data parallel training (--dist) in
# short, on the tiny corpus and model of example_gpt.sh (README.md's
# paragraphs as fortunes): on one process under mpirun, --dist gives the
# losses of a run without it, step for step; on 2 processes pretrain and
# finetune finish, rank 0 alone printing, and write checkpoints that
# generate loads; --dist --resume, and a one-process resume of a 2-process
# checkpoint, are refused, and so is training under mpirun without --dist.
# Usage: example_gpt_dist.sh MPIRUN GPT README.md (MPIRUN: the mpirun
# command, split at spaces, without -np)
set -eu
mpirun=$1 gpt=$2 readme=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

awk 'BEGIN { RS = ""; ORS = "\n%\n" } { print }' "$readme" >"$dir/readme"
"$gpt" tokenize --dir "$dir/a" --pretrain "$dir/readme" \
    --finetune "$dir/readme" --vocab 320 --whole-chars 0 >/dev/null
cp -r "$dir/a" "$dir/one"
cp -r "$dir/a" "$dir/two"

model="--layers 2 --heads 2 --embd 32 --block 32"
train="--batch 4 --accum 2 --steps 12 --eval-every 4 --eval-batches 3"
# one rank: the same run as without --dist
"$gpt" pretrain --dir "$dir/a" $model $train >"$dir/plain.txt"
$mpirun -np 1 "$gpt" pretrain --dist --dir "$dir/one" $model $train \
    >"$dir/one.txt"
grep "^step" "$dir/plain.txt" >"$dir/plain.steps"
grep "^step" "$dir/one.txt" >"$dir/one.steps"
test "$(wc -l <"$dir/plain.steps")" -eq 12 || fail "not 12 steps"
cmp "$dir/plain.steps" "$dir/one.steps" ||
    fail "--dist on one process changed the losses"

# two ranks: one line per step (rank 0's), a checkpoint, a loadable model
$mpirun -np 2 "$gpt" pretrain --dist --dir "$dir/two" $model $train \
    >"$dir/two.txt"
cat "$dir/two.txt"
grep -q "data parallel on 2 processes, a global batch of 8 rows" \
    "$dir/two.txt" || fail "no data parallel line"
test "$(grep -c "^step" "$dir/two.txt")" -eq 12 ||
    fail "not 12 step lines (rank 0's alone)"
grep -q "pretrain: validation loss after step 12" "$dir/two.txt" ||
    fail "no validation loss after step 12"
test -s "$dir/two/pretrain.ckpt/model.safetensors" || fail "no checkpoint"
"$gpt" generate --dir "$dir/two" --prompt "The" --tokens 20 --seed 3 \
    >"$dir/gen.txt" 2>"$dir/gen.err" || fail "generate: $(cat "$dir/gen.err")"
grep -q "20 tokens in" "$dir/gen.err" || fail "$(cat "$dir/gen.err")"
# fine-tuning shares the loop
$mpirun -np 2 "$gpt" finetune --dist --dir "$dir/two" --batch 4 --steps 4 \
    --eval-every 2 --eval-batches 2 >"$dir/fine.txt"
grep -q "finetune: validation loss after step 4" "$dir/fine.txt" ||
    fail "finetune: $(cat "$dir/fine.txt")"

# resumes that cannot continue the same run
if "$gpt" pretrain --dist --resume --dir "$dir/two" $model $train \
    2>"$dir/err"; then
    fail "--dist --resume ran"
fi
grep -q "a data parallel run cannot be resumed" "$dir/err" || fail "$(cat "$dir/err")"
if "$gpt" pretrain --resume --dir "$dir/two" $model $train 2>"$dir/err"; then
    fail "a 2-process checkpoint resumed on one"
fi
grep -q "made with world 2, resumed with 1" "$dir/err" || fail "$(cat "$dir/err")"
# training under mpirun without --dist: every rank would write the files
if $mpirun -np 2 "$gpt" pretrain --dir "$dir/two" $model $train \
    >/dev/null 2>"$dir/err"; then
    fail "pretrain under mpirun without --dist ran"
fi
grep -q "under mpirun with 2 processes but without --dist" "$dir/err" ||
    fail "$(cat "$dir/err")"
echo "ok: data parallel pretrain and finetune on 2 processes"
