"""The one pixel convention: images are uint8 RGB (..., H, W, 3) on disk and in media, float (..., 3, H, W)
in [-1, 1] inside the models."""

from __future__ import annotations

import numpy as np
import torch


def to_unit(images: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float32 in [-1, 1] (a copy: memory-mapped arrays are safe)."""
    return torch.from_numpy(np.array(images, dtype=np.float32)).div_(127.5).sub_(1).movedim(-1, -3)


def to_pixels(images: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) in [-1, 1] -> (..., H, W, 3) float32 in [0, 255], unrounded (for blending)."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).movedim(-3, -1).cpu().numpy()


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) in [-1, 1] -> (..., H, W, 3) uint8, rounded."""
    return to_pixels(images).round().astype(np.uint8)
