#!/bin/sh
# example_fashion_mnist.sh: runs the Fashion-MNIST example end to end on a
# tiny generated data set: two epochs, a saved checkpoint, then --eval of
# that checkpoint, which must report the accuracy that training reported,
# also from uncompressed copies of the files; and a missing data folder,
# which must fail naming the files it needs.
# Usage: example_fashion_mnist.sh MAKE_IDX_SET FASHION_MNIST
# AG_TEST_WRAPPER, when set, is a command (split at spaces) to run both
# programs under, such as the Valgrind setup's valgrind; its own reports
# must make the program exit with 99.
set -eu
make_set=$1 example=$2
wrap=${AG_TEST_WRAPPER:-}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
$wrap "$make_set" "$dir"
$wrap "$example" --data "$dir" --epochs 2 --save "$dir/model.safetensors" \
    >"$dir/train.txt"
cat "$dir/train.txt"
trained=$(sed -n 's/^fashion_mnist: test accuracy \([0-9.]*\)%.*/\1/p' "$dir/train.txt")
$wrap "$example" --data "$dir" --eval "$dir/model.safetensors" >"$dir/eval.txt"
cat "$dir/eval.txt"
evaluated=$(sed -n 's/.*: test accuracy \([0-9.]*\)%$/\1/p' "$dir/eval.txt")
if [ -z "$trained" ] || [ "$trained" != "$evaluated" ]; then
    echo "accuracy after training ($trained) and after reloading ($evaluated) differ" >&2
    exit 1
fi
# The same files uncompressed give the same accuracy.
mkdir "$dir/plain"
for f in "$dir"/*.gz; do
    gzip -dc "$f" >"$dir/plain/$(basename "$f" .gz)"
done
$wrap "$example" --data "$dir/plain" --eval "$dir/model.safetensors" >"$dir/plain.txt"
plain=$(sed -n 's/.*: test accuracy \([0-9.]*\)%$/\1/p' "$dir/plain.txt")
if [ "$plain" != "$trained" ]; then
    echo "uncompressed files give $plain%, not $trained%" >&2
    exit 1
fi
status=0
$wrap "$example" --data "$dir/missing" >"$dir/out.txt" 2>&1 || status=$?
if [ "$status" -eq 0 ] || [ "$status" -eq 99 ]; then
    cat "$dir/out.txt" >&2
    echo "a missing data folder did not fail as it should (status $status)" >&2
    exit 1
fi
grep -q "must hold train-images-idx3-ubyte" "$dir/out.txt"
echo "ok: trained and reloaded accuracy $trained%"
