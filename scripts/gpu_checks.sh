#!/usr/bin/env bash
# Every CUDA check of the project in one prepared run, for a machine with a GPU:
#   1. the GPU benchmark grids (alone on the card, so nothing else disturbs their timings):
#      cross-entropy, then linear cross-entropy (LM head + loss),
#   2. the training-equivalence experiment on CUDA,
#   3. the property suite against the `cuda` target,
#   4. the conformance report for the `cuda` target.
# Everything lands in one archive, $OUT/gpu_results.tar.gz, plus a log and a summary.
#
# Usage (from the repository root; no install needed):  OUT=/some/dir bash scripts/gpu_checks.sh
# Where the tree has no .git, set LOSSPROOFS_GIT_COMMIT so the results name their commit.
# Time limits per step keep the whole run under about 9 minutes.
set -u
OUT=${OUT:-results/gpu}
WORK=$(mktemp -d)
mkdir -p "$OUT"
export PYTHONPATH=. PYTHONUNBUFFERED=1 MPLBACKEND=Agg
log() { echo "[$(date -u +%H:%M:%S)] $*"; }

{
  log "machine"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv
  python3 -c "import torch, sys; print('python', sys.version.split()[0], '| torch', torch.__version__, '| cuda', torch.version.cuda, '|', torch.cuda.get_device_name(0))"
  echo "commit: ${LOSSPROOFS_GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}"

  log "0/4 probes"
  timeout 60 python3 scripts/cuda_probes.py

  log "1/4 benchmark grid"
  # Each point in >= 3 worker processes (CUDA events); no repeat beyond the third after
  # BENCH_CAP_S seconds. Other processes on the GPU are recorded (NVML, else device memory) and
  # flag the run as contended. REPRO=1 runs the grid twice and reports their agreement.
  timeout "${BENCH_S:-300}" python3 -m benchmarks.cross_entropy --device cuda --no-progress \
    --time-cap "${BENCH_CAP_S:-150}" ${REPRO:+--reproducibility} \
    --out "$WORK/benchmarks_cuda"; echo "benchmark exit $?"

  log "1b/4 linear cross-entropy benchmark (skips itself without F.linear_cross_entropy)"
  # torch < 2.13 has no F.linear_cross_entropy: the script exits 2 and says so. Liger-Kernel is
  # timed where it is importable (a wheel can travel with the tree: PYTHONPATH or pip --no-index).
  timeout "${LINEAR_S:-240}" python3 -m benchmarks.linear_cross_entropy --device cuda \
    --no-progress --time-cap "${LINEAR_CAP_S:-150}" --out "$WORK/linear_cross_entropy_cuda"
  echo "linear benchmark exit $?"

  log "2/4 training equivalence"
  timeout "${TRAIN_S:-60}" python3 -m benchmarks.training_equivalence --device cuda \
    --out "$WORK/training_equivalence_cuda"; echo "training exit $?"

  log "3/4 property suite, target cuda"
  LOSSPROOFS_PROFILE=${PROFILE:-ci} timeout "${SUITE_S:-120}" python3 -m pytest -q -n 8 \
    -p no:cacheprovider --target cuda -rfEX --junitxml="$WORK/pytest_cuda.xml" \
    lossproofs/suite/test_forward.py lossproofs/suite/test_gradients.py \
    lossproofs/suite/test_second_order.py lossproofs/suite/test_identities.py \
    lossproofs/suite/test_errors.py lossproofs/suite/test_special_values.py \
    lossproofs/suite/test_tutorial_claim.py lossproofs/suite/test_divergences.py \
    lossproofs/suite/test_large.py lossproofs/suite/test_linear_cross_entropy.py \
    lossproofs/suite/test_linear_torch_paths.py \
    2>&1 | tee "$WORK/pytest_cuda.log" | tail -60
  echo "suite exit ${PIPESTATUS[0]}"

  log "4/4 conformance report, target cuda"
  timeout "${REPORT_S:-50}" python3 -m lossproofs report --target cuda --cases "${REPORT_CASES:-12}" \
    --out "$WORK/conformance_cuda"; echo "report exit $?"
  log "done"
} 2>&1 | tee "$WORK/gpu_checks.log"

tar czf "$OUT/gpu_results.tar.gz" -C "$WORK" .
cp "$WORK/gpu_checks.log" "$OUT/gpu_checks.log"
ls -la "$OUT"
