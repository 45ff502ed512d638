#!/usr/bin/env bash
# CRGAN's phoneme-based sample selection, measured: the same CRGAN training (preset cpu, batch 4, same
# steps) on all train clips, on a half picked by `lipgen select` (phoneme histogram matching) and on a
# random half; then the three models in one `lipgen evaluate` table on the held-out clips.
# SEED changes the training seed (data order) and the random half, for a repetition; ARMS picks arms;
# EVAL_OUT is the report folder (default docs/eval/selection/seed$SEED).
# Usage: [SEED=0] [ARMS="all matched random"] scripts/selection_experiment.sh [cache] [steps] [runs folder]
#        then python scripts/selection_table.py docs/eval/selection/seed*
set -euo pipefail
CACHE=${1:-cache/grid}
STEPS=${2:-3000}
SEED=${SEED:-0}
RUNS=${3:-runs/selection}/seed$SEED
FRACTION=${FRACTION:-0.5}
ARMS=${ARMS:-all matched random}
EVAL_OUT=${EVAL_OUT:-docs/eval/selection/seed$SEED}
mkdir -p "$RUNS"
lipgen select --cache "$CACHE" --out "$RUNS/matched.jsonl" --fraction "$FRACTION"
lipgen select --cache "$CACHE" --out "$RUNS/random.jsonl" --fraction "$FRACTION" --method random --seed "$SEED"

export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
train() {  # name [--clips manifest]
    local name=$1; shift
    local resume=(); [ -f "$RUNS/$name/config.json" ] && resume=(--resume)
    lipgen train --model crgan --preset cpu --cache "$CACHE" --out "$RUNS/$name" --steps "$STEPS" \
        --batch-size 4 --bf16 --seed "$SEED" "${resume[@]}" "$@"
}
models=()
for arm in $ARMS; do
    case $arm in
        all) train all ;;
        matched|random) train "$arm" --clips "$RUNS/$arm.jsonl" ;;
        *) echo "unknown arm $arm (all, matched, random)" >&2; exit 2 ;;
    esac
    models+=("$RUNS/$arm/model.safetensors")
done
lipgen evaluate "${models[@]}" --cache "$CACHE" --out "$EVAL_OUT" --split test
