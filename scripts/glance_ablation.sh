#!/usr/bin/env bash
# Glance's Table 1 ablation (Chen et al., ECCV 2018), reproduced on GRID: the same Glance training
# (preset cpu, bf16, batch 8, same steps and data) with one part of the method switched off per row,
# for each seed; then one `lipgen evaluate` table per seed on the held-out (test) clips.
#   full        everything on (l_corr + l_pix + l_perc + l_gen, three-stream discriminator)
#   no_corr     without l_corr (and the correlation nets)          use_corr=false
#   no_pix      without l_pix (L1)                                  use_pix=false
#   no_perc     without l_perc (discriminator-feature L2)           use_perc=false
#   two_stream  audio + video discriminator, no third stream       three_stream=false
#   raw_frames  third stream sees raw frames v[t+1], not v[t+1]-v[t] use_frame_diff=false
# A seed sets both the initial weights (config seed) and the data order (--seed).
# Resumable: a finished run (model.safetensors) is skipped, a killed one resumes from its last
# checkpoint, a seed whose report.json exists is not re-evaluated. Runs go one at a time on one thread.
# Usage: [SEEDS="0 1"] [ROWS="full no_corr ..."] [LIMIT=] scripts/glance_ablation.sh [cache] [steps] [runs folder]
#        then python scripts/ablation_table.py docs/eval/ablation/seed* > docs/eval/ablation/table.md
set -euo pipefail
CACHE=${1:-cache/grid}
STEPS=${2:-200}
RUNS=${3:-runs/ablation}
SEEDS=${SEEDS:-0 1}
ROWS=${ROWS:-full no_corr no_pix no_perc two_stream raw_frames}
EVAL_DIR=${EVAL_DIR:-docs/eval/ablation}
LIMIT=${LIMIT:-}  # evaluate at most this many held-out clips (empty: all 43)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

switch() {  # row -> JSON fragment of config overrides
    case $1 in
        full) echo "" ;;
        no_corr) echo '"use_corr": false, ' ;;
        no_pix) echo '"use_pix": false, ' ;;
        no_perc) echo '"use_perc": false, ' ;;
        two_stream) echo '"three_stream": false, ' ;;
        raw_frames) echo '"use_frame_diff": false, ' ;;
        *) echo "unknown row $1 (full no_corr no_pix no_perc two_stream raw_frames)" >&2; exit 2 ;;
    esac
}

for seed in $SEEDS; do
    models=()
    for row in $ROWS; do
        out=$RUNS/seed$seed/$row
        overrides="{$(switch "$row")\"seed\": $seed}"
        if [ ! -f "$out/model.safetensors" ]; then
            resume=(); [ -f "$out/config.json" ] && resume=(--resume)
            echo "$(date -u +%T) train $row seed $seed: $overrides"
            mkdir -p "$out"
            lipgen train --model glance --preset cpu --bf16 --batch-size 8 --cache "$CACHE" --out "$out" \
                --steps "$STEPS" --seed "$seed" --set "$overrides" --ckpt-every 100 --val-every 200 \
                --sample-every 200 "${resume[@]}" >> "$out.log" 2>&1
        fi
        models+=("$out/model.safetensors")
    done
    report=$EVAL_DIR/seed$seed
    if [ ! -f "$report/report.json" ]; then
        echo "$(date -u +%T) evaluate seed $seed"
        lipgen evaluate "${models[@]}" --cache "$CACHE" --out "$report" --split test ${LIMIT:+--limit "$LIMIT"}
    fi
done
echo "$(date -u +%T) done"
