#!/usr/bin/env bash
# The evaluation report in docs/eval: every shipped model on GRID's held-out (test) clips, beside the
# ground truth and the static baseline, with the shipped sync expert; and the expert's own quality.
# Usage: scripts/evaluate_shipped.sh [cache]   (cache from `lipgen preprocess --root ../shared/data/grid`)
set -euo pipefail
CACHE=${1:-cache/grid}
lipgen evaluate glance crgan davs --cache "$CACHE" --out docs/eval --split test
python scripts/syncnet_quality.py --cache "$CACHE" | tee docs/eval/syncnet_quality.txt
