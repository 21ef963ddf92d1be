#!/bin/sh
# example_fashion_mnist.sh: runs the Fashion-MNIST example end to end on a
# tiny generated data set: two epochs, a saved checkpoint, then --eval of
# that checkpoint, which must report the accuracy that training reported;
# and a missing data folder, which must fail with the install hint.
# Usage: example_fashion_mnist.sh MAKE_IDX_SET FASHION_MNIST
set -eu
make_set=$1 example=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$make_set" "$dir"
"$example" --data "$dir" --epochs 2 --save "$dir/model.safetensors" \
    >"$dir/train.txt"
cat "$dir/train.txt"
trained=$(sed -n 's/^fashion_mnist: test accuracy \([0-9.]*\)%.*/\1/p' "$dir/train.txt")
"$example" --data "$dir" --eval "$dir/model.safetensors" >"$dir/eval.txt"
cat "$dir/eval.txt"
evaluated=$(sed -n 's/.*: test accuracy \([0-9.]*\)%$/\1/p' "$dir/eval.txt")
if [ -z "$trained" ] || [ "$trained" != "$evaluated" ]; then
    echo "accuracy after training ($trained) and after reloading ($evaluated) differ" >&2
    exit 1
fi
if "$example" --data "$dir/missing" >"$dir/out.txt" 2>&1; then
    echo "a missing data folder did not fail" >&2
    exit 1
fi
grep -q "apt-get install dataset-fashion-mnist" "$dir/out.txt"
echo "ok: trained and reloaded accuracy $trained%"
