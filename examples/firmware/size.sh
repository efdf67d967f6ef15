#!/usr/bin/env bash
# What the sensor-log firmware costs on a Cortex-M4F: builds it in release
# for thumbv7em-none-eabihf and prints .text, .rodata, .data, .bss (static
# RAM = .data + .bss) and a worst-case stack bound, with size-report (a
# host tool of the main workspace: no llvm-size or other system tool
# needed). Exits non-zero when .text is over 12 KiB.
#
# Run from anywhere: bash examples/firmware/size.sh
set -euo pipefail
firmware_dir="$(cd "$(dirname "$0")" && pwd)"
repo_dir="$(cd "$firmware_dir/../.." && pwd)"
target=thumbv7em-none-eabihf
text_max_bytes=12288

rustup target list --installed | grep -qx "$target" || rustup target add "$target"

# The firmware as it ships: the profile and flags of its own workspace.
(cd "$firmware_dir" && cargo build --release --quiet)
elf="$firmware_dir/target/$target/release/sensor-log-firmware"

# The same firmware with a .stack_sizes section (frame size per function).
# -Z emit-stack-sizes is unstable: RUSTC_BOOTSTRAP=1 lets stable rustc take
# it. RUSTFLAGS replaces the config's rustflags, so -Tlink.x is repeated;
# legacy mangling keeps the names readable. Its own target directory, so
# the shipping build above is not rebuilt each time.
(cd "$firmware_dir" && RUSTC_BOOTSTRAP=1 \
    RUSTFLAGS="-C link-arg=-Tlink.x -Z emit-stack-sizes -Z unstable-options -C symbol-mangling-version=legacy" \
    cargo build --release --quiet --target-dir target/stack-sizes)
stack_elf="$firmware_dir/target/stack-sizes/$target/release/sensor-log-firmware"

# Unreachable code, by argument:
# - core::slice::sort::unstable::ipnsort (and the quicksort it recurses
#   in): segwal's Wal::open sorts a heapless::Vec of at most MAX_SEGMENTS
#   (4 here) segments with sort_unstable_by_key, and core's sort_unstable
#   takes insertion sort for 20 elements or fewer, so ipnsort never runs.
cd "$repo_dir"
cargo run --quiet --release -p size-report -- "$elf" \
    --text-max "$text_max_bytes" \
    --stack "$stack_elf" \
    --unreachable core::slice::sort::unstable::ipnsort
