#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS (default 60) with the stable
# toolchain, from a copy of its committed seed corpus, and fails on any
# finding. Installs cargo-fuzz when it is missing. Called by .ci/run.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-60}"
targets=(decode recover_image crash_ops)
# One input running longer than this is a finding (a hang), not a stall
# of the whole run: libFuzzer's default is 20 minutes.
input_timeout_s=20

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# libFuzzer needs nightly-only flags (-Zsanitizer=address); RUSTC_BOOTSTRAP
# lets the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
cargo fuzz build

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

for target in "${targets[@]}"; do
    # The committed regressions run first: each was a finding once.
    shopt -s nullglob
    regressions=(regressions/"$target"/*)
    shopt -u nullglob
    log="$scratch/$target.log"
    if [ "${#regressions[@]}" -gt 0 ]; then
        if ! cargo fuzz run "$target" "${regressions[@]}" >"$log" 2>&1; then
            grep -a -A3 "panicked at\|^Running:" "$log" | tail -n 40
            echo "fuzz $target: a regression input fails again"
            exit 1
        fi
    fi
    # A scratch copy: libFuzzer adds what it finds to its corpus directory,
    # and CI must not dirty the checkout.
    corpus="$scratch/corpus-$target"
    mkdir -p "$corpus"
    cp -r "corpus/$target/." "$corpus/"
    if ! cargo fuzz run "$target" "$corpus" -- \
        -max_total_time="$seconds" -timeout="$input_timeout_s" >"$log" 2>&1; then
        # The panic and where libFuzzer saved the input; the input's Debug
        # form follows "Output of `std::fmt::Debug`" in the full log.
        grep -a -A2 "panicked at\|ERROR: libFuzzer\|SUMMARY:" "$log" | head -n 20 || true
        grep -a -A1 "Test unit written\|Reproduce with" "$log" || true
        echo "fuzz $target: FINDING (input saved under fuzz/artifacts/$target)"
        exit 1
    fi
    runs=$(grep -aEo 'Done [0-9]+ runs' "$log" | grep -Eo '[0-9]+' | tail -n 1)
    echo "fuzz $target: ${runs:-?} executions in ${seconds} s, no findings"
done
