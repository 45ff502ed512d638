#!/usr/bin/env bash
# Reproduce every model lipgen ships (src/lipgen/assets/*.safetensors) from the GRID corpus.
# These are the exact commands used; on the 2-core CPU machine they ran side by side, one torch
# thread each (OMP_NUM_THREADS=1); DAVS was trained later, beside two other jobs. Glance, CRGAN and the
# sync expert were trained on a cache made before preprocessing forced-aligned untimed clips (then only
# s1 had word timings), so a fresh run differs slightly for them (CRGAN's lip reader also sees s4's words).
# Since session 28 preprocessing reads a face narrower than lipgen.face.LANDMARK_SIDE between pixels (GRID's inner-lip
# gaps: correlation 0.975 with dlib's whole pixels, 17% less frame-to-frame jitter). The motion model was trained on a
# cache made so (session 28); the other models here on landmarks read in whole pixels, so a fresh run differs slightly.
# Usage: scripts/train_shipped_models.sh ../shared/data/grid
set -euo pipefail
GRID=${1:-../shared/data/grid}
CACHE=cache/grid
lipgen preprocess --corpus grid --root "$GRID" --cache $CACHE --workers 2

export OMP_NUM_THREADS=1
lipgen train --model glance --preset cpu --cache $CACHE --out runs/glance_cpu --steps 4500 --batch-size 8 --bf16 &
lipgen train --model syncnet --preset cpu --cache $CACHE --out runs/syncnet --steps 2600 --batch-size 32 --bf16 &
lipgen train --model davs --preset cpu --cache $CACHE --out runs/davs_cpu --steps 5000 --batch-size 8 --bf16 &
lipgen train --model crgan --preset cpu --cache $CACHE --out runs/crgan_cpu --steps 4000 --batch-size 4 --bf16 &
wait
# the any-face path: the motion model (Whisper front end since session 5; stronger dropout since session 7,
# +-7 frames of context since session 9, an ensemble of 4 networks (the cpu preset's members) since session 11,
# shipped as the mean of its last three checkpoints), its log-mel twin and the landmark sync expert, fp32
# (they read the clips' waveforms from the corpus paths in the cache: run from the folder preprocessing ran in)
lipgen train --model motion --preset cpu --cache $CACHE --out runs/motion --steps 3000 --batch-size 32 --workers 1 --val-every 250 &
# the log-mel motion model (causal features; the session-3 default; `lipgen stream` ran it until session 26)
lipgen train --model motion --preset mel --cache $CACHE --out runs/motion_mel --steps 3000 --batch-size 32 --workers 1 --val-every 250 &
lipgen train --model lmsync --preset cpu --cache $CACHE --out runs/lmsync --steps 3000 --batch-size 32 --workers 1 --val-every 250 &
wait

python scripts/export_model.py runs/glance_cpu/model.safetensors src/lipgen/assets/glance.safetensors
python scripts/export_model.py runs/crgan_cpu/model.safetensors src/lipgen/assets/crgan.safetensors
python scripts/export_model.py runs/davs_cpu/model.safetensors src/lipgen/assets/davs.safetensors
python scripts/export_model.py runs/syncnet/model.safetensors src/lipgen/assets/syncnet.safetensors
python scripts/export_model.py runs/motion/checkpoints/step_000{2500,2750,3000}/model.safetensors src/lipgen/assets/motion.safetensors
python scripts/export_model.py runs/motion_mel/model.safetensors src/lipgen/assets/motion_mel.safetensors
cp runs/lmsync/model.safetensors src/lipgen/assets/lmsync.safetensors  # fp32, whole (0.9 MB)
