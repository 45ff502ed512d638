"""Glance's Table 1 ablation on people lipgen never trained on: the rows of scripts/glance_ablation.sh (one
checkpoint per row and seed, named ROW_sSEED) through `lipgen evaluate-videos`, as a table per mode (from
photo, dubbing, voice only) with the paired per-clip difference of each row against the full model.

    mkdir -p runs/ablation/unseen
    for s in 0 1; do for r in full no_corr no_pix no_perc two_stream raw_frames; do
        ln -sf ../seed$s/$r/model.safetensors runs/ablation/unseen/${r}_s$s.safetensors; done; done
    lipgen evaluate-videos ../shared/data/unseen/videos --out docs/eval/ablation/unseen \\
        --models runs/ablation/unseen/*.safetensors --seconds 8 --manifest cache/unseen/faces.json --work cache/unseen/videos
    python scripts/ablation_unseen_table.py docs/eval/ablation/unseen/report.csv > docs/eval/ablation/unseen/table.md

Verdicts as in scripts/ablation_table.py: beyond 2 standard errors over the (seed, clip) pairs and the same sign
in every seed, else "=" (no measurable difference).
"""

import argparse
import csv
import re
from collections import defaultdict

import numpy as np

from ablation_table import ROWS, paired, verdict
from lipgen.evaluation.wild import COLUMNS

KEYS = ["opening_corr", "lmd_vs_static", "opening_ratio", "wild_conf", "cpbd_vs_real"]
MODES = ["from photo", "dubbing", "voice only"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", help="report.csv of lipgen evaluate-videos over the ablation checkpoints")
    args = parser.parse_args()
    per_clip = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))  # mode -> run -> key -> {(seed, clip): v}
    references = defaultdict(list)
    with open(args.report) as f:
        for r in csv.DictReader(f):
            if r["reason"]:
                continue
            m = re.fullmatch(r".*\((\w+)_s(\d+)\)", r["row"])
            for k in KEYS:
                if r.get(k) in (None, "", "nan"):
                    continue
                if m:
                    per_clip[r["mode"]][m[1]][k][(m[2], r["input"])] = float(r[k])
                else:
                    references[(r["row"], r["mode"], k)].append(float(r[k]))
    seeds = sorted({s for runs in per_clip.values() for keys in runs.values() for d in keys.values() for s, _ in d})
    clips = len({c for runs in per_clip.values() for keys in runs.values() for d in keys.values() for _, c in d})
    head = " | ".join(COLUMNS[k][0] + (" ↓" if COLUMNS[k][1] == "lower" else " ↑") for k in KEYS)
    print(f"# Glance Table 1 ablation on the unseen videos: seeds {', '.join(seeds)}, {clips} clips, first 8 s")
    for mode in MODES:
        if mode not in per_clip:
            continue
        runs = per_clip[mode]
        print(f"\n## {mode}\n\nMeans over (seed, clip); below, row minus full model paired by (seed, clip): mean ± "
              "standard error, verdict, per-seed means in brackets.\n")
        print(f"| row | {head} |\n|---|" + "---|" * len(KEYS))
        for ref in ("ground truth", "static"):
            if any(references[(ref, "reference", k)] for k in KEYS):
                print(f"| {ref} | " + " | ".join(f"{np.mean(references[(ref, 'reference', k)]):.3f}"
                                                 if references[(ref, "reference", k)] else "-" for k in KEYS) + " |")
        for run, name in ROWS.items():
            cells = []
            for k in KEYS:
                d = runs[run][k]
                cells.append(f"{np.mean(list(d.values())):.3f}" if d else "-")
            print(f"| {name} | " + " | ".join(cells) + " |")
        print(f"\n| row minus full | {head} |\n|---|" + "---|" * len(KEYS))
        for run, name in list(ROWS.items())[1:]:
            cells = []
            for k in KEYS:
                if len(set(runs["full"][k]) & set(runs[run][k])) < 2:
                    cells.append("-")
                    continue
                mean, se, _, by_seed = paired(runs, run, k, seeds)
                cells.append(f"{mean:+.3f} ± {se:.3f} {verdict(k, mean, se, by_seed, COLUMNS)} "
                             f"({', '.join(f'{x:+.3f}' for x in by_seed)})")
            print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
