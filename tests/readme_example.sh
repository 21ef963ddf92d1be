#!/bin/sh
# readme_example.sh: the first C program in README.md must be exactly
# examples/fit_line.c, so that the page shows code that builds and runs.
# Usage: readme_example.sh README.md examples/fit_line.c
set -eu
awk '/^```c$/ { inside = 1; next } /^```$/ && inside { exit } inside' "$1" |
    diff -u "$2" - && echo "README.md shows $2 as it is"
