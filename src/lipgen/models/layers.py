"""Small layers the paper models share: conv blocks and a 3D residual block. Nothing else."""

from __future__ import annotations

import torch
from torch import nn


def _activation(act: str | None) -> nn.Module:
    if act == "relu":
        return nn.ReLU(inplace=True)
    if act == "lrelu":
        return nn.LeakyReLU(0.2, inplace=True)
    if act is None:
        return nn.Identity()
    raise ValueError(f"unknown activation {act!r}: use 'relu', 'lrelu' or None")


def conv2d(c_in: int, c_out: int, kernel, stride=1, padding=0, norm: bool = True,
           act: str | None = "relu", bias: bool | None = None) -> nn.Sequential:
    """Conv2d [+ BatchNorm2d] + activation. The conv has a bias only when there is no norm (unless `bias` says)."""
    bias = not norm if bias is None else bias
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=bias),
                         nn.BatchNorm2d(c_out) if norm else nn.Identity(), _activation(act))


def conv3d(c_in: int, c_out: int, kernel, stride=1, padding=0, norm: bool = True,
           act: str | None = "relu", bias: bool | None = None) -> nn.Sequential:
    """Conv3d over (B, C, T, H, W) [+ BatchNorm3d] + activation."""
    bias = not norm if bias is None else bias
    return nn.Sequential(nn.Conv3d(c_in, c_out, kernel, stride, padding, bias=bias),
                         nn.BatchNorm3d(c_out) if norm else nn.Identity(), _activation(act))


def up3d(c_in: int, c_out: int) -> nn.Sequential:
    """ConvTranspose3d doubling H and W, keeping T: (B, c_in, T, H, W) -> (B, c_out, T, 2H, 2W), + BN + ReLU."""
    return nn.Sequential(nn.ConvTranspose3d(c_in, c_out, (1, 4, 4), (1, 2, 2), (0, 1, 1), bias=False),
                         nn.BatchNorm3d(c_out), nn.ReLU(inplace=True))


class ResBlock3d(nn.Module):
    """x + BN(conv(ReLU(BN(conv(x))))) with (1, 3, 3) kernels: mixes space within each frame, not time."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv3d(channels, channels, (1, 3, 3), 1, (0, 1, 1)),
                                  conv3d(channels, channels, (1, 3, 3), 1, (0, 1, 1), act=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W) -> same
        return x + self.body(x)
