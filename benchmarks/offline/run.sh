#!/usr/bin/env bash
# On the GPU machine, in the copied checkout: unpacks what benchmarks/offline/pack.sh packed and runs bench:gpu.
# Arguments go to bench:gpu (default: cuda, webgpu and cpu sidecars; SmolLM2-135M and 1B shapes; LoRA and full).
# Results: RESULTS (default ./bench-gpu-results): bench.txt (table + JSON line), bench-log.txt, cases.jsonl (each
# case as it finishes), gpu.csv (nvidia-smi's memory and utilisation every second). Runs as root for the .debs.
set -u
cd "$(dirname "$0")/../.."
SRC=.offline
RESULTS=${RESULTS:-$PWD/bench-gpu-results}
LIMIT=${BENCH_LIMIT:-1800}
mkdir -p "$RESULTS"
echo "== $(date -u)  $(uname -m)  $(nproc) cores  $(free -g | awk '/Mem/{print $2}') GiB"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
mkdir -p /tmp/tuneforge-bun && xz -dc "$SRC/bun.xz" > /tmp/tuneforge-bun/bun && chmod +x /tmp/tuneforge-bun/bun
[ -d node_modules ] || xz -dc "$SRC/node_modules.tar.xz" | tar -xf -
xz -dc "$SRC/shared/data/tinystories/tiny_stories.txt.xz" > "$SRC/shared/data/tinystories/tiny_stories.txt"
if ! ldconfig -p | grep -q libvulkan.so.1 && command -v dpkg >/dev/null && ls "$SRC"/gl/*.deb >/dev/null 2>&1; then
  for f in "$SRC"/gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json # where some container runtimes mount NVIDIA's driver
[ -f "$ICD" ] && export VK_DRIVER_FILES=$ICD VK_ICD_FILENAMES=$ICD
export PATH=/tmp/tuneforge-bun:$PATH TUNEFORGE_SHARED=$PWD/$SRC/shared
command -v nvidia-smi >/dev/null && { nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv -lms 1000 > "$RESULTS/gpu.csv" 2>&1 & }
[ $# -gt 0 ] || set -- --providers cuda,webgpu,cpu --models smollm,1b
timeout "$LIMIT" bun benchmarks/gpu.ts "$@" --jsonl "$RESULTS/cases.jsonl" > "$RESULTS/bench.txt" 2> "$RESULTS/bench-log.txt"
echo "bench:gpu exit $?"
tail -c 4000 "$RESULTS/bench-log.txt"; echo; cat "$RESULTS/bench.txt"
