"""A sync expert for any face: 5-frame windows of lower-face landmark motion against their 0.2 s of speech.

lipgen's pixel sync expert (lipgen.models.syncnet, after Chung & Zisserman 2016) learnt GRID's five
faces and voices and cannot tell a real in-the-wild clip from one with another clip's audio. This
expert is built not to know who is seen or heard:
- the video stream sees no pixels: the 31 lower-face points (jaw 3-13, mouth 48-67) in lipgen's aligned
  face frame, minus the face's own closed-mouth rest shape (lipgen.models.motion.rest_shape), divided
  by the inter-ocular distance of the template. dlib finds these points on photos, paintings and
  cartoons alike, so lighting, skin, resolution and compression do not reach the expert;
- the audio stream sees speaker-normalised features (lipgen.voice.features: per-utterance CMVN log-mel
  and loudness), trained under room, microphone, noise, codec, vocal-tract and tempo augmentation;
- video-side augmentation: scale (mouth size and framing, +-20%), small in-plane rotation, mirror,
  and landmark jitter (dlib's noise on small or blurred faces).

Objective: InfoNCE over every window of the batch (the same clip shifted by >= `min_shift` frames, and
other clips, are the negatives), as lipgen.models.syncnet; distances between L2-normalised embeddings
lie in [0, 2] and lipgen.evaluation.sync turns them into LSE-D, LSE-C and the offset with the same
protocol as the pixel expert.

Shapes: B batch, T frames, W = T - 4 windows, P = 31 points, F = lipgen.voice.N_FEATURES, D = embed_dim.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..media import MELS_PER_FRAME, SYNC_FRAMES
from ..voice import N_FEATURES
from .base import DataSpec
from .motion import MOTION_POINTS, TEMPLATE_IOD

# dlib point numbers mirrored left <-> right, restricted to MOTION_POINTS (jaw 3-13, mouth 48-67)
MIRROR = {**{j: 16 - j for j in range(3, 14)}, 48: 54, 49: 53, 50: 52, 51: 51, 55: 59, 56: 58, 57: 57,
          60: 64, 61: 63, 62: 62, 65: 67, 66: 66}
MIRROR.update({v: k for k, v in list(MIRROR.items())})
MIRROR_INDEX = [list(MOTION_POINTS).index(MIRROR[p]) for p in MOTION_POINTS]


@dataclass
class LmSyncConfig:
    n_frames: int = 32  # frames per training item
    channels: int = 128
    embed_dim: int = 64
    dropout: float = 0.1
    lr: float = 1e-3
    weight_decay: float = 1e-4
    temperature: float = 0.07
    min_shift: int = 3  # same-clip windows closer than this are neither positive nor negative


PRESETS = {
    "cpu": LmSyncConfig(),
    "paper": LmSyncConfig(),  # no paper: the same as cpu
    "tiny": LmSyncConfig(n_frames=16, channels=32, embed_dim=16),
}


def motion_to_input(motion: torch.Tensor) -> torch.Tensor:
    """(B, T, 31, 2) motion in aligned-face pixels -> (B, 62, T) in inter-ocular distances."""
    return (motion / TEMPLATE_IOD).flatten(2).transpose(1, 2)


class LmSync(nn.Module):
    """The expert: embed_video (B, T, 31, 2) motion -> (B, W, D); embed_audio (B, 4T, F) -> (B, W, D)."""

    crop = "none"  # a judge: it makes nothing
    parts = ("video", "audio")
    capabilities = frozenset()

    def __init__(self, config: LmSyncConfig):
        super().__init__()
        self.config = config
        c, d = config.channels, config.embed_dim
        self.video = nn.Sequential(  # 5 frames in, unpadded time convolutions: one embedding per window
            nn.Conv1d(2 * len(MOTION_POINTS), c, 3), nn.GELU(), nn.Dropout(config.dropout),
            nn.Conv1d(c, c, 3), nn.GELU(), nn.Conv1d(c, d, 1))
        self.audio = nn.Sequential(  # 20 rows in: 4 rows -> 1 frame, then the same 5-frame receptive field
            nn.Conv1d(N_FEATURES, c, 4, stride=MELS_PER_FRAME), nn.GELU(), nn.Dropout(config.dropout),
            nn.Conv1d(c, c, 3), nn.GELU(), nn.Conv1d(c, c, 3), nn.GELU(), nn.Conv1d(c, d, 1))

    def embed_video(self, motion: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.video(motion_to_input(motion)), dim=1).transpose(1, 2)  # (B, W, D)

    def embed_audio(self, feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.audio(feats.transpose(1, 2)), dim=1).transpose(1, 2)  # (B, W, D)

    def data_spec(self) -> DataSpec:
        return DataSpec("motion", self.config.n_frames)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"expert": torch.optim.AdamW(self.parameters(), lr=self.config.lr,
                                            weight_decay=self.config.weight_decay)}

    def _augment_video(self, motion: torch.Tensor) -> torch.Tensor:
        b = motion.shape[0]
        scale = torch.empty(b, 1, 1, 1).uniform_(0.8, 1.2)
        angle = torch.empty(b).uniform_(-0.15, 0.15)
        rot = torch.stack([torch.stack([angle.cos(), -angle.sin()], -1), torch.stack([angle.sin(), angle.cos()], -1)], -2)
        motion = torch.einsum("btpi,bji->btpj", motion * scale, rot)
        flip = torch.rand(b) < 0.5
        mirrored = motion[:, :, MIRROR_INDEX] * torch.tensor([-1.0, 1.0])
        motion = torch.where(flip[:, None, None, None], mirrored, motion)
        return motion + 0.3 * torch.randn_like(motion) * torch.rand(b, 1, 1, 1)

    def losses(self, batch: dict, augment: bool) -> dict[str, torch.Tensor]:
        motion = self._augment_video(batch["motion"]) if augment else batch["motion"]
        v = self.embed_video(motion)  # (B, W, D)
        a = self.embed_audio(batch["features"])  # (B, W, D)
        B, W, _ = v.shape
        logits = v.reshape(B * W, -1) @ a.reshape(B * W, -1).T / self.config.temperature  # (BW, BW)
        clip = torch.arange(B).repeat_interleave(W)
        t = torch.arange(W).repeat(B)
        near = (clip[:, None] == clip[None]) & ((t[:, None] - t[None]).abs() < self.config.min_shift)
        logits = logits.masked_fill(near & ~torch.eye(B * W, dtype=torch.bool), float("-inf"))
        target = torch.arange(B * W)
        loss = F.cross_entropy(logits, target)
        accuracy = (logits.argmax(1) == target).float().mean()
        return {"loss": loss, "accuracy": accuracy}

    def training_step(self, batch: dict, step: int, update) -> dict[str, float]:
        out = self.losses(batch, augment=True)
        update(out["loss"], "expert")
        return {k: float(v.detach()) for k, v in out.items()}

    @torch.no_grad()
    def validation_step(self, batch: dict) -> dict[str, float]:
        return {k: float(v) for k, v in self.losses(batch, augment=False).items()}


def embed_clip(expert: LmSync, motion: np.ndarray, feats: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Window embeddings of one clip: motion (T, 31, 2), feats (4T, F) -> video (W, D), audio (W, D)."""
    was_training = expert.training
    expert.eval()
    try:
        with torch.no_grad():
            v = expert.embed_video(torch.from_numpy(np.ascontiguousarray(motion, np.float32))[None])[0]
            a = expert.embed_audio(torch.from_numpy(np.ascontiguousarray(feats, np.float32))[None])[0]
    finally:
        expert.train(was_training)
    return v, a
