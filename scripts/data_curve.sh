#!/usr/bin/env bash
# How the motion model's hearing of strangers grows with GRID's training data (docs/eval/unseen/README.md,
# "Session 30"): single networks (the shipped recipe, members 1) trained on subsets of the training clips,
# each scored in model space (scripts/voice_probe.py) on the validation clips that scripts/evaluate_unseen.sh
# prepared, and on GRID's held-out clips.
#   all       every training clip (955: s1 908, s4 43, other speakers 4): runs of session 29
#   half      half of each speaker's clips (478)       quarter  a quarter (239)
#   s1only    s1's clips alone (908)                   others47 every clip not s1's (47)   s1_47  47 of s1's
# Usage: scripts/data_curve.sh [CACHE [OUT]] ; then read OUT/*/probe.txt ("mean r", "GRID held-out").
set -euo pipefail
CACHE=${1:-cache/grid28}
OUT=${2:-runs/curve}
mkdir -p "$OUT"
python - "$CACHE" "$OUT" <<'EOF'
import json, random, sys
cache, out = sys.argv[1:]
train = [json.loads(line)["id"] for line in open(f"{cache}/manifest.jsonl") if json.loads(line)["split"] == "train"]
by = {}
for i in train:
    by.setdefault(i.split("/")[0], []).append(i)

def share(f):  # the same share of each speaker's clips
    return sorted(c for spk, ids in sorted(by.items())
                  for c in random.Random(f"{spk}{f}").sample(sorted(ids), max(1, round(len(ids) * f))))

sets = {"s1only": sorted(by["s1"]), "half": share(0.5), "quarter": share(0.25),
        "others47": sorted(c for spk, ids in by.items() if spk != "s1" for c in ids),
        "s1_47": sorted(random.Random("s1_47").sample(sorted(by["s1"]), 47))}
for name, ids in sets.items():
    open(f"{out}/{name}.txt", "w").write("\n".join(ids) + "\n")
EOF
for set_ in s1only half quarter others47 s1_47; do
  for seed in 0 1 2 3; do
    run=$OUT/${set_}_s$seed
    [ -f "$run/probe.txt" ] && continue
    [ -f "$run/checkpoints/step_0003000/model.safetensors" ] ||
      OMP_NUM_THREADS=2 lipgen train --model motion --preset cpu --cache "$CACHE" --out "$run" --steps 3000 \
        --batch-size 32 --workers 1 --val-every 250 --seed $seed --clips "$OUT/$set_.txt" --set '{"members": 1}'
    python scripts/export_model.py "$run"/checkpoints/step_000{2500,2750,3000}/model.safetensors "$run/avg.safetensors"
    python scripts/voice_probe.py "$run/avg.safetensors" --grid "$CACHE" > "$run/probe.tmp" && mv "$run/probe.tmp" "$run/probe.txt"
  done
done
