#!/bin/sh
# readme_example.sh: each program named must appear in README.md exactly as
# it is, so that the page shows code that builds and runs: the C block whose
# first line begins "/* <file name>:".
# Usage: readme_example.sh README.md examples/fit_line.c [more programs...]
set -eu
readme=$1
shift
for program in "$@"; do
    name=$(basename "$program")
    awk -v head="/* $name:" '
        /^```c$/ { inside = 1; first = 1; next }
        /^```$/ && inside { if (keep) exit; inside = 0; next }
        inside && first { first = 0; keep = index($0, head) == 1 }
        inside && keep' "$readme" | diff -u "$program" - &&
        echo "README.md shows $program as it is"
done
