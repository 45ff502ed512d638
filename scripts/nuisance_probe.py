"""Would projecting out the directions in which voices and rooms differ help a linear map carry to strangers?
Ridge regression from the motion model's Whisper features (each frame's two rows averaged, +-3 frames) to GRID's
inner-lip gap, fitted on GRID's training clips in all their encoded versions (the clean one and five augmented, as
the network trains), with the top-k directions of a nuisance scatter removed from the 384 encoder features first
(nuisance attribute projection, as in speaker verification): "channel" (each augmented version's utterance mean
minus its clean one's: rooms, microphones, codecs, noise), "speaker" (the means of GRID's six speakers: s1, s4 and
the four clips of others) and "utterance" (the clean utterances' means). Scored by the correlation with GRID's
held-out clips and with the validation clips' real mouth opening (ungated). Deterministic. Session 22's experiment
(docs/eval/unseen/README.md, "Session 22").

    python scripts/nuisance_probe.py [--cache cache/grid] [--work cache/unseen/videos]
"""

from pathlib import Path

import numpy as np
import torch

from lipgen import speech
from lipgen.data.motion import MotionDataset
from lipgen.evaluation.wild import mouth_opening
from layer_probe import CONTEXT, probe_arguments, shipped_gap, with_context  # as session 14's probe

WIDTH = 2 * CONTEXT + 1
E, F = speech.N_ENCODER, speech.N_FEATURES  # the encoder's features; with the loudness row (never projected)
PENALTIES = (0.03, 0.1, 0.3, 1.0)  # ridge, on standardised features


def per_frame(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, np.float32)
    n = len(rows) // speech.ROWS_PER_FRAME
    return rows[:n * speech.ROWS_PER_FRAME].reshape(n, speech.ROWS_PER_FRAME, -1).mean(1)


def top(scatter: np.ndarray, k: int) -> np.ndarray:
    return np.linalg.eigh(scatter)[1][:, ::-1][:, :k]


def main():
    args = probe_arguments(__doc__)
    gap_of = shipped_gap()

    def gap(motion):
        return gap_of(torch.from_numpy(np.asarray(motion, np.float32)[None]))[0].numpy()

    clips = MotionDataset(args.cache, "train", augment=True, speech="whisper", progress=True).clips
    train = [[(per_frame(f), gap(m)) for f, m, _ in c["versions"]] for c in clips]
    speaker = [c["id"] if c["id"].startswith("multi") else c["id"].split("/")[0] for c in clips]
    test = [(per_frame(c["versions"][0][0]), gap(c["versions"][0][1])) for c in
            MotionDataset(args.cache, "test", augment=False, speech="whisper", versions=1).clips]
    wild = []
    for clip in sorted(p.parent for p in Path(args.work).glob("*/clip.landmarks.npy")):
        landmarks = np.load(clip / "clip.landmarks.npy")
        wild.append((per_frame(speech.features(np.load(clip / "audio.npy"), len(landmarks))),
                     mouth_opening(landmarks)))

    d = WIDTH * F  # the normal equations once; a projection P per frame is P per context block of them
    xtx, xty, total, n, y_total = np.zeros((d, d)), np.zeros(d), np.zeros(d), 0, 0.0
    for versions in train:
        for f, g in versions:
            x = with_context(f)
            xtx += x.T @ x
            xty += x.T @ g
            total += x.sum(0)
            n, y_total = n + len(x), y_total + g.sum()

    clean = np.array([v[0][0].mean(0)[:E] for v in train])
    channel = np.concatenate([[f.mean(0)[:E] - v[0][0].mean(0)[:E] for f, _ in v[1:]] for v in train])
    speakers = np.array([clean[[s == q for s in speaker]].mean(0) for q in sorted(set(speaker))])
    scatter = {name: (a - a.mean(0) if name != "channel" else a) for name, a in
               (("channel", channel), ("speaker", speakers), ("utterance", clean))}
    scatter = {name: a.T @ a / len(a) for name, a in scatter.items()}

    def score(name: str, u: np.ndarray | None) -> None:
        p = np.eye(F)
        if u is not None:
            p[:E, :E] -= u @ u.T
        pc = np.kron(np.eye(WIDTH), p)
        mean = total / n @ pc
        cov = pc.T @ (xtx / n) @ pc - np.outer(mean, mean)
        cxy = pc.T @ (xty / n) - mean * y_total / n
        std = np.sqrt(np.clip(np.diag(cov), 0, None)) + 1e-4
        cells = []
        for penalty in PENALTIES:
            w = np.linalg.solve(cov / np.outer(std, std) + penalty * np.eye(d), cxy / std)

            def predict(f):
                return ((with_context(f) @ pc - mean) / std) @ w

            r_grid = np.mean([np.corrcoef(predict(f), g)[0, 1] for f, g in test])
            r_wild = np.mean([np.corrcoef(predict(f)[np.isfinite(o)], o[np.isfinite(o)])[0, 1] for f, o in wild])
            cells.append(f"{penalty:g}: GRID {r_grid:.3f}, strangers {r_wild:.3f}")
        print(f"{name:26s} " + " | ".join(cells), flush=True)

    score("nothing removed", None)
    for k in (2, 5, 10, 20, 40):
        score(f"channel, k={k}", top(scatter["channel"], k))
    for k in (1, 3, 5):
        score(f"speaker, k={k}", top(scatter["speaker"], k))
    for k in (5, 20):
        score(f"utterance, k={k}", top(scatter["utterance"], k))
    score("speaker 5 + channel 10", np.linalg.qr(np.c_[top(scatter["speaker"], 5), top(scatter["channel"], 10)])[0])


if __name__ == "__main__":
    main()
