#!/usr/bin/env bash
# The in-the-wild evaluation in docs/eval/unseen: models on people lipgen never trained on.
#   videos/:    the first 8 s of every unseen clip: ground truth, static, and per model "from photo" and "dubbing"
#   portraits/: every unseen still image saying the bundled GRID speech (9 s), static and per model
#   framing/:   scripts/framing.py (the default motion model)
# Validation only: the unseen data never enters the repository; the generated videos stay in the work folder,
# which a re-run (or a run with a new model) reuses.
# Usage: [MODELS="motion glance crgan davs"] scripts/evaluate_unseen.sh [unseen folder] [work folder]
set -euo pipefail
UNSEEN=${1:-../shared/data/unseen}
WORK=${2:-cache/unseen}
MODELS=${MODELS:-motion glance crgan davs}
mkdir -p "$WORK"
# the interview clip shows two faces; the presenter (left) speaks. The guest's face is half hidden by his hand
# in the first frame, a weak detection that lipgen drops (under half the best score), so the presenter is face 0
echo '{"visualvoice_interview_two_faces.mp4": 0}' > "$WORK/faces.json"
lipgen evaluate-videos "$UNSEEN/videos" --out docs/eval/unseen/videos --models $MODELS --seconds 8 \
    --manifest "$WORK/faces.json" --work "$WORK/videos"
lipgen evaluate-portraits "$UNSEEN/portraits" --out docs/eval/unseen/portraits --models $MODELS \
    --work "$WORK/portraits"
# framing: 15 portraits tilted, small, large and moving, and the portraits grouped by how far their heads are turned
python scripts/framing.py "$UNSEEN/portraits" --extra src/lipgen/assets/astronaut.png --out docs/eval/unseen/framing \
    --work "$WORK/framing" --yaw-report docs/eval/unseen/portraits/report.csv
