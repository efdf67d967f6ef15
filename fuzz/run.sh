#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS (default 60) with the stable
# toolchain, from a copy of its committed seed corpus, and fails on any
# finding. Installs cargo-fuzz when it is missing.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-60}"
targets=(decode recover_image crash_ops)

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# libFuzzer needs nightly-only flags (the sanitizer); RUSTC_BOOTSTRAP lets
# the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
cargo fuzz build

for target in "${targets[@]}"; do
    # A scratch copy: libFuzzer adds what it finds to its corpus directory,
    # and CI must not dirty the checkout.
    corpus=$(mktemp -d)
    cp -r "corpus/$target/." "$corpus/"
    log=$(mktemp)
    # The committed regressions run first: each was a finding once.
    if [ -d "regressions/$target" ]; then
        cargo fuzz run "$target" regressions/"$target"/* >"$log" 2>&1 || {
            cat "$log"
            echo "fuzz $target: a regression input fails again"
            exit 1
        }
    fi
    if ! cargo fuzz run "$target" "$corpus" -- -max_total_time="$seconds" >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz $target: FINDING (input saved under fuzz/artifacts/$target)"
        exit 1
    fi
    runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | grep -Eo '[0-9]+' | tail -n 1)
    echo "fuzz $target: ${runs:-?} executions in ${seconds} s, no findings"
    rm -rf "$corpus" "$log"
done
