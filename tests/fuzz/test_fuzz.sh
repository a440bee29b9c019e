#!/usr/bin/env bash
# test_fuzz.sh - make test's fuzz smoke: committed crash reproducers replay clean, and a short
# run of each libFuzzer harness from its committed seed corpus finds nothing (tests/fuzz/run.sh).
exec bash "$(dirname "$0")/run.sh" smoke
