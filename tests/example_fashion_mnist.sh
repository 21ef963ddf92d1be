#!/bin/sh
# example_fashion_mnist.sh: runs a Fashion-MNIST example (fashion_mnist or
# fashion_mnist_cnn) end to end on a tiny generated data set: EPOCHS epochs
# (default 2) on TRAIN_COUNT training images (default 600), a saved
# checkpoint and training curve (one row per epoch), then --eval of that
# checkpoint, which must report the accuracy that training reported, also
# from uncompressed copies of the files; and a
# missing data folder, which must fail naming the files it needs. With
# MIN_ACCURACY, the trained accuracy must be above it (a model left at
# chance would reload to the same accuracy whatever it loaded).
# Usage: example_fashion_mnist.sh MAKE_IDX_SET EXAMPLE [EPOCHS [TRAIN_COUNT
#        [MIN_ACCURACY]]]
# AG_TEST_WRAPPER, when set, is a command (split at spaces) to run both
# programs under, such as the Valgrind setup's valgrind; its own reports
# must make the program exit with 99. AG_TEST_EXAMPLE_WRAPPER, when set,
# is one for the example alone (mpirun, for fashion_mnist's data parallel
# run), in place of AG_TEST_WRAPPER.
set -eu
make_set=$1 example=$2 epochs=${3:-2} train_count=${4:-600}
min_accuracy=${5:-}
name=$(basename "$example")
wrap=${AG_TEST_WRAPPER:-}
exwrap=${AG_TEST_EXAMPLE_WRAPPER:-$wrap}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
$wrap "$make_set" "$dir" "$train_count" 100
$exwrap "$example" --data "$dir" --epochs "$epochs" \
    --save "$dir/model.safetensors" --curve "$dir/curve.csv" >"$dir/train.txt"
cat "$dir/train.txt"
# The CNN prints its summary first, with PyTorch's parameter count.
if [ "$name" = fashion_mnist_cnn ] &&
    ! grep -q '^Total params: 421,642$' "$dir/train.txt"; then
    echo "no summary of the CNN with 421,642 parameters" >&2
    exit 1
fi
# The training curve: its header and one row per epoch.
if [ "$(head -n 1 "$dir/curve.csv")" != "epoch,training_loss,test_accuracy_percent" ] ||
    [ "$(wc -l <"$dir/curve.csv")" -ne $((epochs + 1)) ]; then
    cat "$dir/curve.csv" >&2
    echo "the training curve is not one row per epoch" >&2
    exit 1
fi
trained=$(sed -n "s/^$name: test accuracy \\([0-9.]*\\)%.*/\\1/p" "$dir/train.txt")
$exwrap "$example" --data "$dir" --eval "$dir/model.safetensors" >"$dir/eval.txt"
cat "$dir/eval.txt"
evaluated=$(sed -n 's/.*: test accuracy \([0-9.]*\)%$/\1/p' "$dir/eval.txt")
if [ -z "$trained" ] || [ "$trained" != "$evaluated" ]; then
    echo "accuracy after training ($trained) and after reloading ($evaluated) differ" >&2
    exit 1
fi
if [ -n "$min_accuracy" ] &&
    ! awk -v a="$trained" -v m="$min_accuracy" 'BEGIN { exit !(a > m) }'; then
    echo "trained accuracy $trained% is not above $min_accuracy%" >&2
    exit 1
fi
# The same files uncompressed give the same accuracy.
mkdir "$dir/plain"
for f in "$dir"/*.gz; do
    gzip -dc "$f" >"$dir/plain/$(basename "$f" .gz)"
done
$exwrap "$example" --data "$dir/plain" --eval "$dir/model.safetensors" >"$dir/plain.txt"
plain=$(sed -n 's/.*: test accuracy \([0-9.]*\)%$/\1/p' "$dir/plain.txt")
if [ "$plain" != "$trained" ]; then
    echo "uncompressed files give $plain%, not $trained%" >&2
    exit 1
fi
status=0
$exwrap "$example" --data "$dir/missing" >"$dir/out.txt" 2>&1 || status=$?
if [ "$status" -eq 0 ] || [ "$status" -eq 99 ]; then
    cat "$dir/out.txt" >&2
    echo "a missing data folder did not fail as it should (status $status)" >&2
    exit 1
fi
grep -q "must hold train-images-idx3-ubyte" "$dir/out.txt"
echo "ok: trained and reloaded accuracy $trained%"
