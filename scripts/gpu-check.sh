#!/usr/bin/env bash
# The prepared GPU check: the whole runner matrix on CUDA for cnn, mlp, resnet20, transformer and lstm, then the
# timing modes, CUDA graphs and the inference scenarios, then the markdown report. Sized for about 10 minutes on one
# modern GPU before the per-step, cuda-graphs, latency and throughput steps were added; with them it has not run on a
# GPU yet (each step has its own timeout, so a slow one cannot eat the rest). Everything lands in OUTDIR:
#
#   OUTDIR/env.txt, nvidia-smi.txt      the machine (fwbench env; the driver's own view)
#   OUTDIR/cuda-tests.txt               the CUDA-only unit tests (they skip elsewhere)
#   OUTDIR/cuda-fp32.json               every installed runner x {cnn, mlp} on cuda, fp32, TF32 off
#   OUTDIR/cuda-resnet20.json           every installed runner x resnet20 on cuda, fp32 (parity incl. batch norm)
#   OUTDIR/cuda-sequence.json           every installed runner x {transformer, lstm} on cuda, fp32; each cell's
#                                       settings record the attention and LSTM kernels it used (SDPA backend,
#                                       cuDNN or not); no time-to-target (--no-target) to fit the time limit
#   OUTDIR/cuda-seq-length.json         the seq-length probe on transformer (retraces at lengths 32, 48, 64)
#   OUTDIR/cuda-bf16.json               torch x {cnn, mlp} on cuda in bf16 autocast (--quick)
#   OUTDIR/cuda-per-step.json          every installed runner x {cnn, mlp} on cuda with --timing per-step: against
#                                       cuda-fp32.json (windowed, the cuda default) it gives each cell's sync cost
#   OUTDIR/cuda-graphs.json             torch-compile x {cnn, mlp} with --cuda-graphs (mode="reduce-overhead")
#   OUTDIR/cuda-latency.json            every runner (deployed runtimes included) x cnn, latency at batch 1
#                                       (--quick bounds: >= 50 requests); NVML energy per request
#   OUTDIR/cuda-throughput.json         every runner x {cnn, mlp}, throughput at batch 1, 16, 64, 256 (--quick)
#   OUTDIR/report/report.md (+ plots)   fwbench report of both files; MFU table included
#   OUTDIR/summary.txt                  exit codes and wall times of each step
#
# Usage: scripts/gpu-check.sh OUTDIR     (run from anywhere; uses the fwbench on PATH)
# Exit status: 0 when every step succeeded, 1 when a step failed or a cell did not run (see summary.txt),
# 2 on a usage error. No step is skipped because an earlier one failed.
set -u -o pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
out=$1
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd)
summary="$out/summary.txt"
: > "$summary"
status=0

step() {  # step NAME COMMAND...: run it, log exit code and wall time, never stop the script
    local name=$1; shift
    local t0=$SECONDS
    "$@"
    local rc=$?
    printf '%-12s exit %-3s %4ss  %s\n' "$name" "$rc" "$((SECONDS - t0))" "$*" | tee -a "$summary"
    [ "$rc" -eq 0 ] || status=1
}

# Timing budget per cell, shorter than the workloads' defaults (max 15 s) so that 16+ cells fit in the
# time limit: copies of cnn/mlp/resnet20 with max 4 s of timed steps (at least 1 s), found first by name.
wl="$out/workloads"
mkdir -p "$wl"
for w in cnn mlp resnet20 transformer lstm; do
    sed -e 's/^min_seconds = .*/min_seconds = 1.0/' -e 's/^max_seconds = .*/max_seconds = 4.0/' \
        -e 's/^max_steps = .*/max_steps = 1000/' "$repo/fwbench/workloads/$w.toml" > "$wl/$w.toml"
done
export FWBENCH_WORKLOADS="$wl"

echo "git $(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)" >> "$summary"
step env sh -c "fwbench env > '$out/env.txt' 2>&1"
step nvidia-smi sh -c "nvidia-smi > '$out/nvidia-smi.txt' 2>&1"
step cuda-tests sh -c "cd '$repo' && timeout 90 python -m pytest -q -rs -k cuda tests/test_devices.py tests/test_precision.py > '$out/cuda-tests.txt' 2>&1"
step fp32 timeout 300 fwbench run --framework all --device cuda -w cnn -w mlp --timeout 150 \
    --out "$out/cuda-fp32.json" --force
step resnet20 timeout 200 fwbench run --framework all --device cuda -w resnet20 --timeout 90 \
    --out "$out/cuda-resnet20.json" --force
step sequence timeout 240 fwbench run --framework all --device cuda -w transformer -w lstm --no-target \
    --timeout 90 --out "$out/cuda-sequence.json" --force
step seq-length timeout 120 fwbench probe -p seq-length --device cuda -w transformer --timeout 60 \
    --out "$out/cuda-seq-length.json" --force
step bf16 timeout 60 fwbench run --framework torch --device cuda -w cnn -w mlp --precision bf16 --quick \
    --timeout 60 --out "$out/cuda-bf16.json" --force
step per-step timeout 300 fwbench run --framework all --device cuda -w cnn -w mlp --timing per-step --timeout 150 \
    --out "$out/cuda-per-step.json" --force
step cuda-graphs timeout 120 fwbench run -r torch-compile --device cuda -w cnn -w mlp --cuda-graphs --timeout 100 \
    --out "$out/cuda-graphs.json" --force
step latency timeout 240 fwbench run --framework all --device cuda -w cnn --scenario latency --quick \
    --timeout 120 --out "$out/cuda-latency.json" --force
step throughput timeout 420 fwbench run --framework all --device cuda -w cnn -w mlp --scenario throughput \
    -b 1 -b 16 -b 64 -b 256 --quick --timeout 120 --out "$out/cuda-throughput.json" --force
files=()
for f in "$out/cuda-fp32.json" "$out/cuda-resnet20.json" "$out/cuda-sequence.json" "$out/cuda-seq-length.json" \
         "$out/cuda-bf16.json" "$out/cuda-per-step.json" "$out/cuda-graphs.json" "$out/cuda-latency.json" \
         "$out/cuda-throughput.json"; do [ -f "$f" ] && files+=("$f"); done
if [ ${#files[@]} -gt 0 ]; then
    step report fwbench report "${files[@]}" --format markdown --out-dir "$out/report"
else
    echo "report       no results file to report on" | tee -a "$summary"
    status=1
fi
echo "total        ${SECONDS}s" | tee -a "$summary"
exit $status
