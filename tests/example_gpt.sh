#!/bin/sh
# example_gpt.sh: the gpt program's pipeline in short, on a tiny corpus made
# here (paragraphs of README.md as fortunes, two Tang poems for
# fine-tuning), with a tiny model: tokenize; pretrain 12 steps, and again
# stopped after 5 and resumed, which must give the same losses and the
# same checkpoint bit for bit; a resume with another configuration or
# other options refused, the checkpoint untouched; fine-tune; generate
# twice with one seed (the same text); chat over piped stdin (an empty and
# an over-long prompt answered with a note, the others with replies, the
# context a full window); DPO's stages; damaged tokenizer files and
# checkpoints refused with their names.
# Usage: example_gpt.sh GPT README.md
set -eu
gpt=$1 readme=$2
wrap=${AG_TEST_WRAPPER:-}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# FAIL messages go to the test's own stderr (descriptor 3, at the end of
# the log that meson prints), also from a run whose output the caller sends
# to a file (as dpo's, to dpo.txt)
exec 3>&2
fail() { echo "FAIL: $*" >&3; exit 1; }

# README paragraphs as fortune entries; two poems, 40 times each
awk 'BEGIN { RS = ""; ORS = "\n%\n" } { print }' "$readme" >"$dir/readme"
for i in $(seq 40); do
    printf '《静夜思》\n作者：李白\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n%%\n'
    printf '《春晓》\n作者：孟浩然\n春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多少。\n%%\n'
done >"$dir/poems"

# the program, under AG_TEST_WRAPPER; its report (exit 99) always fails
run() {
    rc=0
    $wrap "$gpt" "$@" || rc=$?
    test "$rc" -ne 99 || fail "a report from $wrap on gpt $*"
    return "$rc"
}
# the runs that must fail, without the wrapper: the program stops at its
# first error and leaves its memory to the system (the library's error
# paths run under the wrapper in its own tests)
run_failing() { "$gpt" "$@"; }
run tokenize --dir "$dir/a" --pretrain "$dir/readme" --finetune "$dir/poems" \
    --vocab 400 >"$dir/tokenize.txt"
cat "$dir/tokenize.txt"
grep -q "BPE: vocabulary" "$dir/tokenize.txt" || fail "no BPE line"
# the poems' characters are whole tokens (--whole-chars, the default) ...
grep -q "fine-tuning text: 100.0% of its" "$dir/tokenize.txt" ||
    fail "the poems' characters are not all one token each"
# ... which needs room in the vocabulary
if run_failing tokenize --dir "$dir/small" --pretrain "$dir/readme" \
    --finetune "$dir/poems" --vocab 300 >/dev/null 2>"$dir/err"; then
    fail "tokenize without room for the poems' characters ran"
fi
grep -q "characters of chars need" "$dir/err" || fail "no error: $(cat "$dir/err")"
for f in vocab.json merges.txt pretrain_train.tok pretrain_val.tok \
         finetune_train.tok finetune_val.tok; do
    test -s "$dir/a/$f" || fail "tokenize wrote no $f"
done
cp -r "$dir/a" "$dir/b"

model="--layers 2 --heads 2 --embd 32 --block 32"
train="--batch 4 --accum 2 --steps 12 --eval-every 4 --eval-batches 2"
run pretrain --dir "$dir/a" $model $train >"$dir/full.txt"
run pretrain --dir "$dir/b" $model $train --stop-after 5 >"$dir/part.txt"
grep -q "^step 5 loss" "$dir/part.txt" && ! grep -q "^step 6 " "$dir/part.txt" ||
    fail "--stop-after 5 did not stop at 5"
run pretrain --dir "$dir/b" $model $train --resume >>"$dir/part.txt"
grep -q "resumed .* at step 5 of 12" "$dir/part.txt" || fail "no resume"
grep "^step" "$dir/full.txt" >"$dir/full.steps"
grep "^step" "$dir/part.txt" >"$dir/part.steps"
test "$(wc -l <"$dir/full.steps")" -eq 12 || fail "not 12 steps"
cmp "$dir/full.steps" "$dir/part.steps" || fail "resumed losses differ"
cmp "$dir/a/pretrain.ckpt/model.safetensors" \
    "$dir/b/pretrain.ckpt/model.safetensors" || fail "resumed model differs"
test -s "$dir/a/pretrain_curve.csv" || fail "no curve"

# a checkpoint of another configuration, other options: refused, untouched
cp "$dir/b/pretrain.ckpt/model.safetensors" "$dir/before"
if run_failing pretrain --dir "$dir/b" --layers 3 $train --resume 2>"$dir/err"; then
    fail "a resume with --layers 3 ran"
fi
grep -q "another configuration: n_layer (--layers) 2 there, 3 asked" \
    "$dir/err" || fail "wrong message: $(cat "$dir/err")"
if run_failing pretrain --dir "$dir/b" $model --batch 8 --steps 12 --resume \
    2>"$dir/err"; then
    fail "a resume with --batch 8 ran"
fi
grep -q "made with batch 4, resumed with 8" "$dir/err" || fail "$(cat "$dir/err")"
cmp "$dir/before" "$dir/b/pretrain.ckpt/model.safetensors" ||
    fail "a refused resume changed the checkpoint"

# fine-tuning with dropout, stopped after 3 and resumed: the same losses
# (the checkpoint keeps the dropout masks' generator)
cp -r "$dir/a" "$dir/c" && cp -r "$dir/a" "$dir/d"
ft="--batch 4 --steps 6 --eval-every 3 --eval-batches 2 --dropout 0.2"
run finetune --dir "$dir/c" $ft >"$dir/ft_full.txt"
run finetune --dir "$dir/d" $ft --stop-after 3 >"$dir/ft_part.txt"
run finetune --dir "$dir/d" $ft --resume >>"$dir/ft_part.txt"
grep "^step" "$dir/ft_full.txt" >"$dir/ft_full.steps"
grep "^step" "$dir/ft_part.txt" >"$dir/ft_part.steps"
test "$(wc -l <"$dir/ft_full.steps")" -eq 6 || fail "finetune: not 6 steps"
cmp "$dir/ft_full.steps" "$dir/ft_part.steps" ||
    fail "fine-tuning with dropout resumed to other losses"

run finetune --dir "$dir/a" --batch 4 --steps 6 --eval-every 3 \
    --eval-batches 2 >"$dir/finetune.txt"
grep -q "finetune: validation loss before" "$dir/finetune.txt" &&
    grep -q "finetune: validation loss after step 6" "$dir/finetune.txt" ||
    fail "finetune: $(cat "$dir/finetune.txt")"

# generation: past the window (32) with the FIFO cache; one seed, one text
gen="--dir $dir/a --prompt 床前 --tokens 80 --seed 7"
run generate $gen >"$dir/g1" 2>"$dir/g1.err"
run generate $gen >"$dir/g2" 2>/dev/null
cmp "$dir/g1" "$dir/g2" || fail "generate is not deterministic for a seed"
grep -q "80 tokens in .* tokens/s" "$dir/g1.err" || fail "$(cat "$dir/g1.err")"
if run_failing generate --dir "$dir/a" --prompt "" 2>"$dir/err"; then
    fail "an empty prompt ran"
fi
grep -q "an empty prompt" "$dir/err" || fail "$(cat "$dir/err")"
long=$(head -c 2000 "$readme" | tr '\n' ' ')
if run_failing generate --dir "$dir/a" --prompt "$long" 2>"$dir/err"; then
    fail "an over-long prompt ran"
fi
grep -q "over the context window of 32" "$dir/err" || fail "$(cat "$dir/err")"

# chat over a pipe: three prompts, an empty one and an over-long one
printf 'hello\n\n%s\nwhat next?\nand then?\n' "$long" |
    run chat --dir "$dir/a" --max-reply 20 --seed 3 >"$dir/chat" 2>"$dir/chat.err"
test "$(grep -c '^\[turn' "$dir/chat.err")" -eq 3 ||
    fail "not 3 replies: $(cat "$dir/chat.err")"
grep -q "(an empty prompt" "$dir/chat" || fail "no note for the empty prompt"
grep -q "over the context window" "$dir/chat" || fail "no note for the long one"
grep -q "turn 3: .* context 32/32" "$dir/chat.err" ||
    fail "the window is not full by turn 3: $(cat "$dir/chat.err")"

# DPO: its stages run, or it says that it found no pair to learn from
if run dpo --dir "$dir/a" --finetune "$dir/poems" --pairs 4 --epochs 1 \
    --batch 2 --eval-samples 4 --tokens 24 --eval-batches 2 \
    >"$dir/dpo.txt" 2>"$dir/dpo.err"; then
    grep -q "dpo: after .* regular poems" "$dir/dpo.txt" || fail "dpo output"
    test -s "$dir/a/dpo.safetensors" || fail "no dpo.safetensors"
else
    grep -q "no pair with one poem preferred" "$dir/dpo.err" ||
        fail "dpo: $(cat "$dir/dpo.err")"
fi
grep -q "dpo: before: validation loss" "$dir/dpo.txt" || fail "no dpo before"
# DPO's training: with --margin 0 every title's best and worst poems make a
# pair, so that two rounds of pairs, steps and the saved model are checked
run dpo --dir "$dir/a" --finetune "$dir/poems" --pairs 3 --epochs 1 \
    --batch 2 --eval-samples 2 --tokens 24 --eval-batches 2 --samples 3 \
    --margin 0 --rounds 2 --nll 0.5 >"$dir/dpo2.txt" 2>"$dir/dpo2.err" ||
    fail "dpo --margin 0: $(cat "$dir/dpo2.err")"
test "$(grep -c "dpo: round [12] of 2: 3 preference pairs" "$dir/dpo2.txt")" \
    -eq 2 || fail "not 2 rounds of 3 pairs: $(cat "$dir/dpo2.txt")"
grep -q "dpo: after 4 steps: validation loss" "$dir/dpo2.txt" ||
    fail "no 4 dpo steps: $(cat "$dir/dpo2.txt")"
run generate --dir "$dir/a" --model "$dir/a/dpo.safetensors" --prompt "a" \
    --tokens 4 --seed 1 >/dev/null 2>"$dir/err" || fail "dpo model: $(cat "$dir/err")"
if run_failing dpo --dir "$dir/a" --margin -1 2>"$dir/err"; then
    fail "a negative margin ran"
fi
grep -q "must not be negative" "$dir/err" || fail "$(cat "$dir/err")"

# damaged files: named, nothing run
head -c 100 "$dir/a/vocab.json" >"$dir/a/v" && mv "$dir/a/v" "$dir/a/vocab.json"
if run_failing generate $gen 2>"$dir/err"; then fail "a truncated vocab.json ran"; fi
grep -q "vocab.json" "$dir/err" || fail "$(cat "$dir/err")"
head -c 1000 "$dir/b/pretrain.ckpt/model.safetensors" >"$dir/cut"
if run_failing generate --dir "$dir/b" --model "$dir/cut" --prompt x 2>"$dir/err"; then
    fail "a truncated checkpoint ran"
fi
grep -q "cut" "$dir/err" || fail "$(cat "$dir/err")"
echo "example_gpt: all stages passed"
