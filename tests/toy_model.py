"""A model written from lipgen.models.base alone, as a newcomer would add one (tests/test_contract.py).

It makes mouth crops: the identity crop brightened by the loudness of each frame's audio (one learnt gain),
streamed frame after frame. Every `seam_every` frames it "starts a new piece": in every other piece the
mouth is stretched vertically, so its mouth shape jumps exactly at the seams it declares, and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lipgen.media import MELS_PER_FRAME
from lipgen.models.base import STREAMS, DataSpec
from lipgen.pixels import to_uint8, to_unit


@dataclass
class ToyConfig:
    n_frames: int = 8  # frames per training window
    seam_every: int = 7  # frames per generated piece
    stretch: float = 1.7  # vertical stretch of the mouth in every other piece
    lr: float = 1e-2


PRESETS = {"tiny": ToyConfig(), "cpu": ToyConfig(), "paper": ToyConfig()}


class Toy(nn.Module):
    crop = "mouth"
    parts = ("gain",)
    capabilities = frozenset({STREAMS})

    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        self.gain = nn.Parameter(torch.zeros(()))

    def data_spec(self) -> DataSpec:
        return DataSpec("windows", self.config.n_frames)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"gain": torch.optim.Adam([self.gain], lr=self.config.lr)}

    def forward(self, mel: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """(B, 1, 4T, M), (B, 3, S, S) -> (B, 3, T, S, S) in [-1, 1]."""
        B, T = mel.shape[0], mel.shape[2] // MELS_PER_FRAME
        loud = mel.float().reshape(B, T, -1).mean(-1)  # (B, T)
        loud = (loud - loud.mean(1, keepdim=True)) / 10
        return (identity[:, :, None] + self.gain * loud[:, None, :, None, None]).clamp(-1, 1)

    def training_step(self, batch: dict, step: int, update) -> dict[str, float]:
        loss = F.l1_loss(self(batch["mel"], batch["identity"]), batch["mouth"])
        update(loss, "gain")
        return {"loss": loss.item()}

    @torch.no_grad()
    def validation_step(self, batch: dict) -> dict[str, float]:
        return {"l1": F.l1_loss(self(batch["mel"], batch["identity"]), batch["mouth"]).item()}

    @torch.no_grad()
    def sample(self, batch: dict) -> torch.Tensor:
        return self(batch["mel"], batch["identity"])

    @torch.no_grad()
    def generate(self, mel: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        return self(mel, identity)

    def seams(self, n_frames: int) -> list[int]:
        return list(range(self.config.seam_every, n_frames - 1, self.config.seam_every))

    @torch.no_grad()
    def stream(self, mel: np.ndarray, identity: np.ndarray):
        """(4N, M) log-mel, (S, S, 3) uint8 -> N crops (S, S, 3) uint8."""
        video = self(torch.from_numpy(mel)[None, None], to_unit(identity)[None])[0]  # (3, N, S, S)
        for t, frame in enumerate(to_uint8(video.transpose(0, 1))):
            if (t // self.config.seam_every) % 2:
                frame = _stretch(frame, self.config.stretch)
            yield frame


def _stretch(crop: np.ndarray, factor: float) -> np.ndarray:
    """The crop stretched vertically about its centre, same size."""
    S = crop.shape[0]
    tall = cv2.resize(crop, (S, int(round(S * factor))), interpolation=cv2.INTER_LINEAR)
    top = (tall.shape[0] - S) // 2
    return np.ascontiguousarray(tall[top:top + S])
