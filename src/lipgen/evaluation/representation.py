"""What a model's encoders know, measured on the real clips of a cache split.

DAVS (a disentangled audio-visual representation): lip reading, audio-video retrieval, and how well
person-ID and word-ID are kept apart, on the split's timed words (WordDataset):

- lip reading: top-1 word accuracy over the model's words (GRID's 51 for the shipped model), from video, from
  audio, from both (chance 1 / their number); the cache's words are matched to the model's by name, and words
  the model never learnt are left out;
- retrieval: each audio word-ID ranks every video word-ID of the split by cosine similarity (and the
  reverse); R@k = share of queries whose own clip is in the top k; median rank (1 = best);
- disentanglement probe: a fresh linear classifier is trained to read the word from frozen person-ID
  features (of the face frame at the word's centre) and another from word-ID features; person-ID
  should stay near chance, word-ID should not. A control probe reads the word from the person-ID of a
  random frame of the same clip: what person-ID holds about the clip rather than about the frame.

CRGAN: its lip-reading discriminator's per-frame word accuracy on real clips (frames inside a timed word),
beside chance and the share of the most frequent word (always guessing it).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..data.dataset import LipDataset, WordDataset
from ..models.davs import to_image_size


@torch.no_grad()
def _features(system, data: WordDataset, batch_size: int = 32) -> dict[str, torch.Tensor]:
    out: dict[str, list] = {k: [] for k in ("logits_video", "logits_audio", "logits_both", "video", "audio",
                                            "pid", "pid_other_frame", "word")}
    for batch in DataLoader(data, batch_size=batch_size):
        # each encoder runs once: logits, fused logits and embeddings all come from the same word-IDs
        word_video, word_audio = (f.mean(1).float() for f in system.word_features(batch["mouth"], batch["mel"]))
        logits_video, logits_audio = system.word_classifier(word_video), system.word_classifier(word_audio)
        out["logits_video"].append(logits_video)
        out["logits_audio"].append(logits_audio)
        out["logits_both"].append(system.word_classifier.fuse(logits_video, logits_audio))
        out["video"].append(F.normalize(word_video, dim=1))  # = system.embed_video(mouth)
        out["audio"].append(F.normalize(word_audio, dim=1))
        centre = batch["face"][:, :, batch["face"].shape[2] // 2]  # (B, 3, 128, 128): the frame mid-word
        other = batch["face_identity"]  # a random frame of the same clip
        pids, _ = system.pid_encoder(to_image_size(torch.cat([centre, other]), system.config.image_size))
        pid, pid_other = pids.float().chunk(2)
        out["pid"].append(pid)
        out["pid_other_frame"].append(pid_other)
        out["word"].append(batch["word"])
    return {k: torch.cat(v) for k, v in out.items()}


def lipreading(features: dict) -> dict[str, float]:
    word = features["word"]
    return {f"accuracy_{m}": float((features[f"logits_{m}"].argmax(1) == word).float().mean())
            for m in ("video", "audio", "both")}


def retrieval(queries: torch.Tensor, targets: torch.Tensor, words: torch.Tensor) -> dict[str, float]:
    """queries/targets: (N, D) L2-normalised; item i of each belongs together; words: (N,) labels.
    R@k and median rank are for the query's own clip; word_R@1: the top target says the same word."""
    similarity = queries @ targets.T  # (N, N)
    own = similarity.diagonal()[:, None]
    ranks = (similarity > own).sum(1) + 1  # rank of each query's own target (1 = first)
    return {"R@1": float((ranks <= 1).float().mean()), "R@5": float((ranks <= 5).float().mean()),
            "R@10": float((ranks <= 10).float().mean()), "median_rank": float(ranks.float().median()),
            "word_R@1": float((words[similarity.argmax(1)] == words).float().mean())}


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 classes: int, steps: int = 300, seed: int = 0) -> float:
    """Test accuracy of a linear classifier (standardised inputs, Adam, weight decay) trained from scratch."""
    torch.manual_seed(seed)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = (train_x - mean) / std, (test_x - mean) / std
    layer = torch.nn.Linear(a.shape[1], classes)
    opt = torch.optim.Adam(layer.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(layer(a), train_y).backward()
        opt.step()
    with torch.no_grad():
        return float((layer(b).argmax(1) == test_y).float().mean())


def evaluate_representation(system, cache: str, split: str | None = "test", probe_split: str | None = "train",
                            probe_items: int = 2000, clips: list[str] | None = None) -> dict:
    """Lip reading, retrieval (both directions) and the disentanglement probe of a DAVS model, on the split's
    timed words (of `clips` only, when given; the probe still learns from probe_split)."""
    system.eval()
    words = system.vocabulary
    test = _features(system, WordDataset(cache, split, window=system.config.n_frames, faces=True, clips=clips,
                                         vocabulary=words))
    train_data = WordDataset(cache, probe_split, window=system.config.n_frames, faces=True, vocabulary=words)
    picks = np.random.default_rng(0).permutation(len(train_data))[:probe_items]
    train = _features(system, torch.utils.data.Subset(train_data, picks.tolist()))
    result = {"words": len(test["word"]), "chance": 1 / len(words), **lipreading(test)}
    result.update({f"audio_to_video_{k}": v for k, v in retrieval(test["audio"], test["video"], test["word"]).items()})
    result.update({f"video_to_audio_{k}": v for k, v in retrieval(test["video"], test["audio"], test["word"]).items()})
    for name, features in (("person_id", "pid"), ("person_id_other_frame", "pid_other_frame"), ("word_id", "video")):
        result[f"probe_word_from_{name}"] = linear_probe(train[features], train["word"], test[features], test["word"],
                                                         len(words))
    return result


@torch.no_grad()
def lip_reader_accuracy(system, cache: str, split: str | None = "test", batch_size: int = 8,
                        clips: list[str] | None = None) -> dict:
    """Per-frame word accuracy of a CRGAN's lip reader (system.read_lips) on a split's real face clips (of
    `clips` only, when given)."""
    system.eval()
    window = system.config.n_frames
    data = LipDataset(cache, split, window=window, stride=window, faces=True, clips=clips, vocabulary=system.vocabulary)
    predicted, truth = [], []
    for batch in DataLoader(data, batch_size=batch_size):
        labelled = batch["words"] >= 0  # (B, T)
        predicted.append(system.read_lips(batch["face"]).argmax(-1)[labelled])
        truth.append(batch["words"][labelled])
    predicted, truth = torch.cat(predicted), torch.cat(truth)
    if not len(truth):
        raise ValueError(f"{cache}: no frames inside timed words in split {split!r}: lip reading needs .align timings.")
    return {"frames": len(truth), "chance": 1 / len(system.vocabulary),
            "majority_word": float(torch.bincount(truth).max()) / len(truth),
            "lip_reader_accuracy": float((predicted == truth).float().mean())}
