"""Export the inference parts of a trained model for shipping (the model's declared `parts`), in fp16.

    python scripts/export_model.py runs/glance/model.safetensors src/lipgen/assets/glance.safetensors

Several checkpoints of one run are averaged weight by weight (the motion model ships the mean of its last
three: `runs/motion/checkpoints/step_*/model.safetensors`). With --members N the checkpoints are N runs' in
order (equal groups), each run's averaged, joined as an ensemble of all their networks (a run that trained an
ensemble brings all its members) that predicts their mean:

    python scripts/export_model.py runs/motion_s{0,1,2,3}/checkpoints/step_000{2500,2750,3000}/model.safetensors \
        src/lipgen/assets/motion.safetensors --members 4
"""

import argparse

from lipgen.checkpoint import export

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("checkpoints", nargs="+", help="model file(s) from `lipgen train` (several: averaged)")
parser.add_argument("out", help="where to write the shipped model")
parser.add_argument("--parts", nargs="+", help="top-level modules to keep (default: the model's `parts`)")
parser.add_argument("--members", type=int, default=1, help="the checkpoints are this many runs' (equal groups, "
                    "in order): join all their networks as one ensemble (motion)")
parser.add_argument("--float32", action="store_true", help="keep float32 instead of fp16")
args = parser.parse_args()
path = export(args.checkpoints, args.out, args.parts and tuple(args.parts), half=not args.float32, members=args.members)
print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
