#!/usr/bin/env bash
# One GPU invocation of at most ~9 minutes (issue 21): unpack the carried token files into a fresh home, run
# the benchmark, run the GPU study with a deadline, and pack what came of it into at most 8 files in $OUT,
# also when a step fails or the script is stopped (records are written as runs end).
#
#   bash benchmarks/gpu_pack.sh                  # first, here: the carried home in .gpu-carry/
#   bash benchmarks/gpu_run.sh                   # on the GPU (device tool: carry [".gpu-carry"], timeout_s 600)
#   GPU_TINY=1 GPU_STUDY=... bash benchmarks/gpu_run.sh   # the same on CPU, tiny (tests/test_gpu_script.py)
#
# Parameters (environment; defaults for the H200):
#   OUT             the output folder (the device tool sets it; default: a new temporary folder)
#   GPU_CARRY       the carried folder (.gpu-carry)
#   GPU_STUDY       the study file (jobs/gpu-h200.toml); GPU_PRETRAIN its pretraining corpora (the study's)
#   GPU_WORKERS     study workers sharing the one GPU (4: 16 cores, 4 torch threads each)
#   GPU_BUDGET_S    the whole invocation, seconds (540: 9 minutes; the device call's timeout_s of 600 leaves 60 s)
#   GPU_BENCH_S     the benchmark at most (180); GPU_BENCH_SIZES its sizes (the study's; "none" skips it)
#   GPU_DRAIN_S     no run starts later than this before the budget's end: runs in flight finish (the
#                   longest estimated run is ~25 s), then packing (90)
#   GPU_DEVICE      the study's device (the study file's; GPU_TINY: cpu)
#   GPU_WORK        the work folder: home, study, logs (default: a new temporary folder)
#   GPU_TINY=1      the CI configuration on CPU: device cpu, a bench of 2 steps of ours and the Trainer, and
#                   1 s of ours in 1 and 2 processes
#   PYTHON          the interpreter (python3; on the H200 the one that holds torch)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
START=$(date +%s)
PY=${PYTHON:-python3}
TINY=${GPU_TINY:-0}
CARRY=${GPU_CARRY:-.gpu-carry}
STUDY=${GPU_STUDY:-jobs/gpu-h200.toml}
WORKERS=${GPU_WORKERS:-4}
BUDGET=${GPU_BUDGET_S:-540}
BENCH_S=${GPU_BENCH_S:-180}
DRAIN=${GPU_DRAIN_S:-90}
WORK=${GPU_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/effdata-gpu.XXXXXX")}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/effdata-gpu-out.XXXXXX")}
DEVICE=${GPU_DEVICE:-}
[ "$TINY" = 1 ] && DEVICE=${DEVICE:-cpu}
for n in "$WORKERS" "$BUDGET" "$BENCH_S" "$DRAIN"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || {
    echo "gpu_run.sh: GPU_WORKERS, GPU_BUDGET_S, GPU_BENCH_S and GPU_DRAIN_S must be positive whole numbers, got '$n'" >&2
    exit 2; }
done
[ -f "$STUDY" ] || { echo "gpu_run.sh: no study file $STUDY (GPU_STUDY)" >&2; exit 2; }
mkdir -p "$WORK" "$OUT" || exit 2
export EFFDATA_HOME="$WORK/home" PYTHONUNBUFFERED=1
LOG="$WORK/log.txt"
exec > >(tee -a "$LOG") 2>&1
STATUS=0
CHILD=

elapsed() { echo $(( $(date +%s) - START )); }
say() { echo "[gpu_run $(elapsed)s] $*"; }

fail() { [ "$STATUS" -eq 0 ] && STATUS=$1; return 0; }

# step NAME SECONDS FILE COMMAND...: the command in the background, so that a TERM to this script reaches
# it at once (bash runs a trap only when the foreground command ends); `timeout` stops it and its workers
# (its own process group) when it overruns. FILE (or "-"): also keep the command's output there.
step() {
  local name=$1 limit=$2 file=$3; shift 3
  say "$name: start (at most ${limit}s)"
  if [ "$file" = - ]; then
    timeout --kill-after=10 "$limit" "$@" &
  else
    timeout --kill-after=10 "$limit" "$@" > >(tee -a "$file") &
  fi
  CHILD=$!
  wait "$CHILD"; local rc=$?
  CHILD=
  say "$name: exit $rc"
  [ "$rc" -ne 0 ] && fail "$rc"
  return "$rc"
}

finish() {
  trap - EXIT TERM INT
  say "collect into $OUT"
  timeout 120 "$PY" -m effdata.gpu collect --work "$WORK" --out "$OUT" || { echo "gpu_run.sh: collect failed"; fail 1; }
  say "done, exit $STATUS"
  sleep 0.2  # let tee write the last lines
  cp "$LOG" "$OUT/log.txt"
  exit "$STATUS"
}
stopped() {
  say "stopped by a signal"
  [ -n "$CHILD" ] && kill -TERM "$CHILD" 2>/dev/null && wait "$CHILD"
  STATUS=143
  finish
}
trap finish EXIT
trap stopped TERM INT

{
  echo "started $(date -u +%FT%TZ); work $WORK; out $OUT; study $STUDY; workers $WORKERS; budget ${BUDGET}s; tiny $TINY"
  uname -a; nproc
  command -v nvidia-smi >/dev/null && nvidia-smi
  "$PY" -c "import sys, torch; from importlib.metadata import version; print('python', sys.version.split()[0], 'torch', torch.__version__, 'transformers', version('transformers'), 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
  git log -1 --format='commit %H %s' 2>/dev/null
} > "$WORK/env.txt" 2>&1
cat "$WORK/env.txt"

step unpack 120 - "$PY" -m effdata.gpu unpack --carry "$CARRY" || exit

THREADS=$(( $(nproc) / WORKERS )); [ "$THREADS" -ge 1 ] || THREADS=1
STUDY_SIZES='import sys; from effdata.study.study import load_study; print(",".join(load_study(sys.argv[1]).sizes))'
SIZES=${GPU_BENCH_SIZES:-$("$PY" -c "$STUDY_SIZES" "$STUDY")}
BENCH_END=$(( $(date +%s) + BENCH_S ))
left() { echo $(( BENCH_END - $(date +%s) )); }
if [ "$SIZES" != none ] && [ "$TINY" = 1 ]; then
  step bench "$BENCH_S" "$WORK/bench.md" "$PY" -m effdata.bench --device "$DEVICE" --sizes "$SIZES" --batch 4 \
    --steps 2 --rounds 1 --no-compile --no-eager --chars-per-token 3 --threads "$THREADS" --concurrent 1,2 \
    --concurrent-seconds 1 --json "$WORK/bench.json"
elif [ "$SIZES" != none ]; then
  # 1. Every size at the study's batch of 16: ours, the Trainer, a plain loop (eager). 2. The smallest and the
  # largest in 1, 2, 4 and 8 processes at once (how many workers the GPU takes). 3. The largest at the
  # pretraining batch of 128 with the compiled step too (one compile: tens of seconds), if time is left.
  step bench "$(left)" "$WORK/bench.md" "$PY" -m effdata.bench --device "${DEVICE:-cuda}" --sizes "$SIZES" \
    --batch 16 --steps 20 --rounds 3 --no-compile --threads "$THREADS" --json "$WORK/bench.json"
  [ "$(left)" -gt 20 ] && step bench-workers "$(left)" "$WORK/bench.md" "$PY" -m effdata.bench \
    --device "${DEVICE:-cuda}" --sizes "${SIZES%%,*},${SIZES##*,}" --batch 16 --steps 5 --rounds 1 --no-compile \
    --no-trainer --no-eager --threads "$(nproc)" --concurrent 1,2,4,8 --json "$WORK/bench-workers.json"
  [ "$(left)" -gt 20 ] && step bench-pretrain "$(left)" "$WORK/bench.md" "$PY" -m effdata.bench \
    --device "${DEVICE:-cuda}" --sizes "${SIZES##*,}" --batch 128 --steps 10 --rounds 3 --threads "$THREADS" \
    --json "$WORK/bench-pretrain.json"
fi

STOP=$(( BUDGET - DRAIN - $(elapsed) ))
HARD=$(( BUDGET - 20 - $(elapsed) ))
if [ "$STOP" -le 0 ]; then
  say "no time left for the study (budget ${BUDGET}s)"; fail 1; exit
fi
ARGS=(--study "$STUDY" --out "$WORK/study" --workers "$WORKERS" --order size --stop-after "$STOP" --no-analysis)
[ -n "${GPU_PRETRAIN:-}" ] && ARGS+=(--pretrain $GPU_PRETRAIN)
[ -n "$DEVICE" ] && ARGS+=(--device "$DEVICE")
step study "$HARD" - "$PY" -m effdata.run "${ARGS[@]}"
exit
