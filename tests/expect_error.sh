#!/usr/bin/env bash
# expect_error.sh: a run that must stop with an error, not a crash: the
# command must exit with a status from 1 to 123 (above that are timeout's
# and the shell's codes and signals) and print PATTERN (a grep -E
# expression) on its output or error output.
# Usage: expect_error.sh PATTERN COMMAND [ARG...]
set -u
pattern=$1
shift
output=$("$@" 2>&1)
status=$?
echo "$output"
if [ "$status" -eq 0 ] || [ "$status" -gt 123 ]; then
    echo "expect_error.sh: exit status $status, wanted an error (1-123)" >&2
    exit 1
fi
if ! grep -qE -- "$pattern" <<<"$output"; then
    echo "expect_error.sh: no line matches: $pattern" >&2
    exit 1
fi
echo "expect_error.sh: exit status $status and the expected message"
