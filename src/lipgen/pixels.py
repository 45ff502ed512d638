"""The one pixel convention: images are uint8 RGB (..., H, W, 3) on disk and in media, float (..., 3, H, W)
in [-1, 1] inside the models."""

from __future__ import annotations

import numpy as np
import torch

GREY_CHROMA = 2.0  # mean spread of a pixel's channels (0-255) under which an image is black and white (photos
# of the validation portraits: 0-0.6 for the four black-and-white ones, 9 and more for the others)
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # BT.601


def to_unit(images: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float32 in [-1, 1] (a copy: memory-mapped arrays are safe)."""
    return torch.from_numpy(np.array(images, dtype=np.float32)).div_(127.5).sub_(1).movedim(-1, -3)


def to_pixels(images: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) in [-1, 1] -> (..., H, W, 3) float32 in [0, 255], unrounded (for blending)."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).movedim(-3, -1).cpu().numpy()


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) in [-1, 1] -> (..., H, W, 3) uint8, rounded."""
    return to_pixels(images).round().astype(np.uint8)


def is_grey(image: np.ndarray) -> bool:
    """Whether an (H, W, 3) uint8 image is black and white (judged on every 4th pixel of every 4th row)."""
    sample = image[::4, ::4]
    return float((sample.max(-1).astype(np.int16) - sample.min(-1)).mean()) < GREY_CHROMA


def grey_as(out: np.ndarray, source: np.ndarray) -> np.ndarray:
    """`out` (drawn from `source`) in black and white where the source is: a mouth painted or pasted with colour
    (a model's GRID colours, a red interior) stays out of a black-and-white photo or film."""
    if not is_grey(source):
        return out
    return np.repeat((out @ LUMA).round().clip(0, 255).astype(np.uint8)[..., None], 3, -1)
