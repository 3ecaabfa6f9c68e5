#!/usr/bin/env bash
# README command 1: install the Debian dependencies (as root), build stretch,
# and run the CPU demo curriculum (schedules/demo-cpu.yaml): a small model
# trained at 128 tokens and extended to 1024 and 4096 with YaRN, with passkey
# accuracy printed before and after the extension. Extra arguments go to
# `stretch train` (e.g. --resume never).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)"
exec build/stretch train schedules/demo-cpu.yaml "$@"
