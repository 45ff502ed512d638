#!/usr/bin/env bash
# CRGAN's phoneme-based sample selection, measured: the same CRGAN training (preset cpu, batch 4, same
# seed and steps) on all train clips, on a half picked by `lipgen select` (phoneme histogram matching)
# and on a random half; then the three models in one `lipgen evaluate` table on the held-out clips.
# Usage: scripts/selection_experiment.sh [cache] [steps] [runs folder]   -> docs/eval/selection/
set -euo pipefail
CACHE=${1:-cache/grid}
STEPS=${2:-3000}
RUNS=${3:-runs/selection}
FRACTION=${FRACTION:-0.5}
mkdir -p "$RUNS"
lipgen select --cache "$CACHE" --out "$RUNS/matched.jsonl" --fraction "$FRACTION"
lipgen select --cache "$CACHE" --out "$RUNS/random.jsonl" --fraction "$FRACTION" --method random

export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
train() {  # name [--clips manifest]
    local name=$1; shift
    local resume=(); [ -f "$RUNS/$name/config.json" ] && resume=(--resume)
    lipgen train --model crgan --preset cpu --cache "$CACHE" --out "$RUNS/$name" --steps "$STEPS" \
        --batch-size 4 --bf16 "${resume[@]}" "$@"
}
train all
train matched --clips "$RUNS/matched.jsonl"
train random --clips "$RUNS/random.jsonl"

lipgen evaluate "$RUNS/all/model.safetensors" "$RUNS/matched/model.safetensors" "$RUNS/random/model.safetensors" \
    --cache "$CACHE" --out docs/eval/selection --split test
