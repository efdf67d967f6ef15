#!/usr/bin/env bash
# What segwal costs on a Cortex-M4F: builds the two firmware binaries in
# release for thumbv7em-none-eabihf and prints, for each, .text, .rodata,
# .data, .bss (static RAM = .data + .bss) and a worst-case stack bound, with
# size-report (a host tool of the main workspace: no llvm-size or other
# system tool needed):
# - `minimal`: mount (recovery), append, iterate: the build the 12 KiB
#   .text budget of issue #5 is about;
# - `sensor-log-firmware`: the whole example.
#
# Run from anywhere: bash examples/firmware/size.sh [--enforce]
# With --enforce it exits non-zero when minimal's .text is over the budget.
# CI runs it without: the budget is not met yet (README, "Firmware"), and
# a red CI would stop every other change from landing.
set -euo pipefail
firmware_dir="$(cd "$(dirname "$0")" && pwd)"
repo_dir="$(cd "$firmware_dir/../.." && pwd)"
target=thumbv7em-none-eabihf
text_max_bytes=12288
enforce=0
[ "${1:-}" = "--enforce" ] && enforce=1

rustup target list --installed | grep -qx "$target" || rustup target add "$target"

# The firmware as it ships: the profile and flags of its own workspace.
(cd "$firmware_dir" && cargo build --release --quiet)

# The same firmware with a .stack_sizes section (frame size per function).
# -Z emit-stack-sizes is unstable: RUSTC_BOOTSTRAP=1 lets stable rustc take
# it. RUSTFLAGS replaces the config's rustflags, so -Tlink.x is repeated;
# legacy mangling keeps the names readable. Its own target directory, so
# the shipping build above is not rebuilt each time.
(cd "$firmware_dir" && RUSTC_BOOTSTRAP=1 \
    RUSTFLAGS="-C link-arg=-Tlink.x -Z emit-stack-sizes -Z unstable-options -C symbol-mangling-version=legacy" \
    cargo build --release --quiet --target-dir target/stack-sizes)

cd "$repo_dir"
cargo build --quiet --release -p size-report
status=0
for bin in minimal sensor-log-firmware; do
    printf '\n== %s\n' "$bin"
    text_max=()
    if [ "$bin" = minimal ] && [ "$enforce" = 1 ]; then
        text_max=(--text-max "$text_max_bytes")
    fi
    cargo run --quiet --release -p size-report -- \
        "$firmware_dir/target/$target/release/$bin" "${text_max[@]}" \
        --stack "$firmware_dir/target/stack-sizes/$target/release/$bin" || status=1
done
printf '\n.text budget for minimal: %s bytes%s\n' "$text_max_bytes" \
    "$([ "$enforce" = 1 ] && echo ' (enforced)' || echo ' (reported, not enforced)')"
exit "$status"
