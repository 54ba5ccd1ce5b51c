#!/usr/bin/env bash
# Here, before a GPU invocation: build (or validate) the GPU study's corpora, tokenizer and token files under
# $EFFDATA_HOME and put them, with the corpus keys they were built under, into the git-ignored .gpu-carry/
# (one xz archive and its manifest) that the device tool carries beside the code:
#
#   bash benchmarks/gpu_pack.sh                  # jobs/gpu-h200.toml, its pretraining corpora
#   GPU_STUDY=jobs/other.toml GPU_PRETRAIN="text text+code" bash benchmarks/gpu_pack.sh
#
# Then on the GPU: bash benchmarks/gpu_run.sh (device tool: carry [".gpu-carry"]). The archive must stay
# under 48 MiB (`--max-mib`): 64 MiB travel in all, the code included.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
ARGS=(--study "${GPU_STUDY:-jobs/gpu-h200.toml}" --carry "${GPU_CARRY:-.gpu-carry}")
[ -n "${GPU_PRETRAIN:-}" ] && ARGS+=(--pretrain $GPU_PRETRAIN)
exec "$PY" -m effdata.gpu pack "${ARGS[@]}" "$@"
