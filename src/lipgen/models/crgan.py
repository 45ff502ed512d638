"""CRGAN: a recurrent talking-face generator with frame, video and lip-reading discriminators.

Yang Song, Jingwen Zhu, Dawei Li, Xiaolong Wang, Hairong Qi.
"Talking Face Generation by Conditional Recurrent Adversarial Network". IJCAI 2019. arXiv:1804.04786.

What follows the paper, what follows the authors' code (github.com/susanqq/Talking_Face_Generation),
and what is ours:
- Generator (paper + code): an image encoder on the aligned 128x128 face, an audio encoder per video
  frame, a GRU over the concatenated per-frame [image, audio] features (code: 512 + 512 -> GRU 1024, the
  "paper" preset), and a U-Net style decoder with skips from the image encoder that turns each GRU output
  into frame t. Conv widths and kernels are ours (image encoder 3x3/4x4 convs w .. 8w down to 4x4,
  conv-transpose decoder mirroring it; the code used 5x5 convs 16 .. 128 down to 8x8): the paper preset
  has 23 M generator parameters, the code about 34 M (most of them in one 1024 -> 256x8x8 linear layer).
  BatchNorm + ReLU throughout the generator (the code had BatchNorm in the audio encoder only).
  The decoder's last layer maps the S/2 features straight to RGB at S (ours: the code had two 5x5 convs
  at full resolution, the slowest layers on a CPU); the full-resolution identity skip enters there
  through a 3x3 conv.
- Audio (ours): lipgen's log-mel (4 rows x 80 bands per video frame, lipgen.media) instead of the code's
  12 x 35 MFCC window. Frame t sees the mel rows of frames t - audio_past .. t + audio_future (default
  +-2 frames = 20 rows x 80), the sequence replicate-padded at both ends.
- Skips (ours, exact): the identity image is the same for every frame, so each decoder layer that
  would convolve concat(x_t, skip) is written as conv_x(x_t) + conv_skip(skip): the same function (a
  conv is linear in its input channels), but the skip half is computed once per clip instead of once
  per frame, which halves the decoder's cost and makes streaming steps cheap.
- Identity, not frame feedback, hence no teacher forcing: the authors' code encoded the previous frame
  at every step (the ground truth with probability 0.5, teacher forcing, else its own last output).
  Here the image encoder sees the identity face once; the GRU state carries the past. Training and
  inference then see the same inputs and need no schedule, and errors cannot compound through
  fed-back frames over a long clip.
- Streaming (ours): `init_state(identity)` + `step(state, rows)` generate one frame per call in
  constant memory (GRU state + a ring buffer of (audio_past + audio_future + 1) frames of mel rows),
  so a clip of any length can be made. The lookahead makes the output lag the input by audio_future
  frames: `step` returns None for the first audio_future calls, and `flush(state)` returns the last
  frames (their right context replicate-padded exactly as `forward` pads it). In eval mode the frames
  equal `forward`'s. `stream(identity, rows)` wraps this as an iterator.
- Discriminators (paper; layers ours): a frame discriminator on single frames (4x4 stride-2 convs d .. 8d,
  one logit per frame), conditioned on the identity image by channel concat (ours, the code's was not;
  `frame_d_conditional=False` drops it); a video discriminator of 3D convs over the whole clip, one
  logit per clip; both with the code's BCE GAN loss, LeakyReLU and no normalisation (the code used
  InstanceNorm / BatchNorm and patch outputs). `frame_d_frames` > 0 shows the frame discriminator
  that many random frames per clip instead of all T (a cost saving of the cpu preset).
- Lip reader ("lip-reading discriminator"; layers ours, the code used a LipNet-style LSTM reader of
  LRW's 500 words): 3D convs over mouth crops + a bidirectional GRU giving per-frame logits over the
  corpus's words (GRID's 51), trained with cross-entropy on real clips' per-frame `words` labels (-1 = no word,
  ignored); the generator is trained to make its generated clips read as the spoken words. GroupNorm,
  not BatchNorm, so real and generated batches are read the same way. It shares the discriminator
  optimizer (its own lr in a parameter group).
  Mouth crops are a FIXED box of the aligned face, for real and generated frames alike: a
  MOUTH_BOX-pixel square centred on the mean of the face template's mouth points 48-67
  (lipgen.face.template()), average-pooled to lip_size. Not the dataset's tracked `mouth` crops,
  whose centre moves: the reader must see real and generated mouths at the same place.
- Loss weights (code): L1 + 0.002 frame GAN + 0.01 video GAN + 0.001 lip. The cpu preset raises the
  lip weight to 0.01 (ours, not tuned): with identity_skip the face L1 starts near 0.05 and the lip
  cross-entropy near 3.5, so at 0.001 the lip term would be under a tenth of the loss for a short run,
  at 0.01 it is comparable to the L1. Adam lrs G 2e-4, D 1e-3 (code); betas (0.5, 0.999) are ours.
- `identity_skip` (ours, off in "paper"): the output is tanh(decoder + atanh(identity)), the last
  decoder layer starting at zero, so a small model starts by reproducing the identity face and learns
  the motion as a residual.

Shapes: B batch, T video frames, S = image_size = 128, M = n_mels = 80, L = lip_size, V = vocabulary_size words.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..face import FACE_SIZE, mouth_square, template
from ..media import MELS_PER_FRAME, N_MELS
from ..pixels import to_uint8, to_unit
from .base import READS_LIPS, STREAMS, DataSpec, frozen, gan_loss, seeded
from .layers import conv2d, conv3d

MOUTH_BOX = 64  # side of the fixed mouth box in the aligned face, pixels (1.8 template mouth widths)


@dataclass
class CRGANConfig:
    n_frames: int = 16  # training clip length, video frames (0.64 s at 25 fps)
    image_size: int = FACE_SIZE  # aligned face side, pixels
    n_mels: int = N_MELS
    audio_past: int = 2  # frames of audio context before frame t
    audio_future: int = 2  # frames of audio context after frame t: also the streaming latency
    # generator
    image_channels: int = 32  # image encoder widths w, 2w, 4w, 8w, 8w, 8w at S, S/2 .. S/32
    image_dim: int = 512  # identity feature fed to the GRU at every step (code: 512)
    audio_channels: int = 32  # audio encoder widths a, 2a, 4a, 8a, 8a
    audio_dim: int = 512  # per-frame audio feature (code: 512)
    gru_size: int = 1024  # GRU hidden size (code: 1024)
    gru_layers: int = 1
    identity_skip: bool = False  # ours: output = tanh(decoder + atanh(identity))
    # discriminators
    d_channels: int = 16  # frame discriminator widths d .. 8d (code: 16 .. 128)
    frame_d_conditional: bool = True  # the frame discriminator also sees the identity image
    frame_d_frames: int = 0  # random frames per clip shown to the frame discriminator; 0 = all T
    v_channels: int = 32  # video discriminator widths v .. 8v
    video_d_size: int = FACE_SIZE  # the video discriminator sees clips average-pooled to this side
    lip_size: int = 64  # lip reader input side: the MOUTH_BOX crop average-pooled to this
    lip_channels: int = 32  # lip reader widths r, 2r, 4r
    lip_hidden: int = 256  # lip reader bidirectional GRU size
    vocabulary_size: int = 51  # V: words of the training corpus (GRID: 51); lipgen train sets it from the cache
    # loss weights (code)
    w_l1: float = 1.0
    w_frame: float = 0.002
    w_video: float = 0.01
    w_lip: float = 0.001
    # optimisation (code, betas ours)
    lr_g: float = 2e-4
    lr_d: float = 1e-3
    lr_lip: float = 1e-3
    beta1: float = 0.5
    beta2: float = 0.999
    seed: int = 0  # initial weights are a function of the config

    def __post_init__(self):
        if self.image_size != FACE_SIZE:
            raise ValueError(f"image_size={self.image_size}: CRGAN works on lipgen's aligned {FACE_SIZE}x{FACE_SIZE} "
                             "faces (the fixed mouth box is placed in that frame).")
        if self.n_frames < 1:
            raise ValueError(f"n_frames={self.n_frames}: must be at least 1.")
        if self.audio_past < 0 or self.audio_future < 0:
            raise ValueError(f"audio_past={self.audio_past}, audio_future={self.audio_future}: must be >= 0.")
        if self.video_d_size not in (32, 64, 128):
            raise ValueError(f"video_d_size={self.video_d_size}: use 128, 64 or 32 (the face pooled by 1, 2 or 4).")
        if self.lip_size not in (16, 32, 64):
            raise ValueError(f"lip_size={self.lip_size}: use 64, 32 or 16 (the {MOUTH_BOX}-pixel mouth box pooled).")
        if self.n_mels < 16:
            raise ValueError(f"n_mels={self.n_mels}: the audio encoder needs at least 16 mel bands.")


PRESETS = {
    # the authors' code sizes: 512-d image and audio features, 1024-d GRU. G 22.9 M, frame D 0.44 M,
    # video D 5.2 M, lip reader 2.1 M parameters
    "paper": CRGANConfig(),
    # 2 CPU cores, ~30 min: small widths, identity residual, 4 random frames per clip for the frame D,
    # the video D at 64x64, the lip reader at 32x32, lip weight raised to 0.01 (see the module docstring).
    # G 1.44 M, frame D 0.11 M, video D 0.13 M, lip reader 0.20 M parameters; a training step (D + G)
    # at batch 4 in bf16 takes 0.3-0.5 s on one thread of a loaded 2-core machine
    "cpu": CRGANConfig(image_channels=8, image_dim=128, audio_channels=8, audio_dim=128, gru_size=256,
                       identity_skip=True, d_channels=8, frame_d_frames=4, v_channels=8, video_d_size=64, lip_size=32,
                       lip_channels=16, lip_hidden=64, w_lip=0.01),
    # unit tests
    "tiny": CRGANConfig(n_frames=8, image_channels=4, image_dim=16, audio_channels=4, audio_dim=16, gru_size=32,
                        identity_skip=True, d_channels=4, frame_d_frames=2, v_channels=4, video_d_size=32, lip_size=16,
                        lip_channels=8, lip_hidden=32),
}


@functools.cache
def mouth_box() -> tuple[int, int]:
    """(y0, x0) of the fixed MOUTH_BOX square in the aligned face: centred on the template's mouth points 48-67."""
    y0, x0 = mouth_square(template(), MOUTH_BOX)
    if not (0 <= y0 <= FACE_SIZE - MOUTH_BOX and 0 <= x0 <= FACE_SIZE - MOUTH_BOX):
        raise ValueError(f"the face template puts the mouth box at (y, x) = ({y0}, {x0}): a {MOUTH_BOX}-pixel box "
                         "there leaves the aligned face. Check lipgen/assets/face_template.npy.")
    return y0, x0


def pool_space(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Average-pool the last two dims of (B, C, T, H, W): -> (B, C, T, H/factor, W/factor)."""
    return F.avg_pool3d(x, (1, factor, factor)) if factor > 1 else x


def mouth_crop(face: torch.Tensor, size: int) -> torch.Tensor:
    """Fixed mouth box of aligned faces: (B, 3, T, S, S) -> (B, 3, T, size, size), average-pooled from MOUTH_BOX."""
    y0, x0 = mouth_box()
    return pool_space(face[..., y0:y0 + MOUTH_BOX, x0:x0 + MOUTH_BOX], MOUTH_BOX // size)


def _check_inputs(cfg: CRGANConfig, mel: torch.Tensor | None, identity: torch.Tensor | None = None,
                  video: torch.Tensor | None = None) -> None:
    S = cfg.image_size
    if mel is not None and (mel.dim() != 4 or mel.shape[1] != 1 or mel.shape[3] != cfg.n_mels
                            or mel.shape[2] % MELS_PER_FRAME or mel.shape[2] == 0):
        raise ValueError(f"mel has shape {tuple(mel.shape)}, expected (B, 1, {MELS_PER_FRAME}T, {cfg.n_mels}): "
                         f"{MELS_PER_FRAME} log-mel rows per video frame, T >= 1.")
    if identity is not None and (identity.dim() != 4 or tuple(identity.shape[1:]) != (3, S, S)):
        raise ValueError(f"identity has shape {tuple(identity.shape)}, expected (B, 3, {S}, {S}): "
                         "one aligned RGB face in [-1, 1] (lipgen.face crops).")
    if video is not None and (video.dim() != 5 or tuple(video.shape[1:]) != (3, mel.shape[2] // MELS_PER_FRAME, S, S)):
        raise ValueError(f"video has shape {tuple(video.shape)}, expected (B, 3, {mel.shape[2] // MELS_PER_FRAME}, "
                         f"{S}, {S}) = (B, C, T, H, W) to match the mel.")


def _up(c_in: int, c_out: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False)  # (N, c_in, s, s) -> (N, c_out, 2s, 2s)


@dataclass
class StreamState:
    """Everything `CRGANGenerator.step` carries between frames; its size does not depend on the clip length.

    image: (B, image_dim) identity feature; skips: per-clip decoder contributions of the identity skips;
    base: (B, 3, S, S) atanh(identity) or None; h: (gru_layers, B, gru_size) GRU state;
    window: (B, <= (past + future + 1) * 4, M) mel rows of the latest frames; received / emitted: frame counts.
    """
    image: torch.Tensor
    skips: list
    base: torch.Tensor | None
    h: torch.Tensor
    window: torch.Tensor | None = None
    received: int = 0
    emitted: int = 0


class CRGANGenerator(nn.Module):
    """(mel (B, 1, 4T, M), identity (B, 3, S, S)) -> video (B, 3, T, S, S) in [-1, 1], any T."""

    def __init__(self, cfg: CRGANConfig):
        super().__init__()
        self.config = cfg
        w, a = cfg.image_channels, cfg.audio_channels
        self.widths = [w, 2 * w, 4 * w, 8 * w, 8 * w, 8 * w]  # image encoder at S, S/2, .., S/32 = 4
        self.image_encoder = nn.ModuleList([conv2d(3, w, 3, 1, 1)] + [  # (B, w, S, S)
            conv2d(c_in, c_out, 4, 2, 1) for c_in, c_out in zip(self.widths, self.widths[1:])])  # halves S
        self.image_fc = nn.Sequential(nn.Linear(self.widths[-1] * 16, cfg.image_dim), nn.ReLU(inplace=True))

        self.rows = (cfg.audio_past + 1 + cfg.audio_future) * MELS_PER_FRAME  # mel rows per frame window
        self.audio_encoder = nn.Sequential(  # (BT, 1, R, M)
            conv2d(1, a, 3, 1, 1),  # (BT, a, R, M)
            conv2d(a, 2 * a, 3, (1, 2), 1),  # (BT, 2a, R, M/2)
            conv2d(2 * a, 4 * a, 3, 2, 1),  # (BT, 4a, R/2, M/4)
            conv2d(4 * a, 8 * a, 3, 2, 1),  # (BT, 8a, R/4, M/8)
            conv2d(8 * a, 8 * a, 3, 2, 1),  # (BT, 8a, R/8, M/16)
            nn.AdaptiveAvgPool2d((2, 4)),  # (BT, 8a, 2, 4): any context length / mel count
            nn.Flatten(), nn.Linear(8 * a * 8, cfg.audio_dim), nn.ReLU(inplace=True))  # (BT, audio_dim)

        self.gru = nn.GRU(cfg.image_dim + cfg.audio_dim, cfg.gru_size, cfg.gru_layers, batch_first=True)

        # U-Net decoder, 4x4 -> S. Level i (5 .. 2) maps x at S/2^i plus the identity skip e_i to S/2^(i-1)
        # (conv-transpose, BN, ReLU); the last level maps x and e_1 at S/2 straight to RGB at S, plus a 3x3
        # conv of the full-resolution skip e_0. No per-frame feature map at full resolution: it is the
        # slowest layer on a CPU, and the 3 output channels are all that is needed there.
        self.decoder_fc = nn.Sequential(nn.Linear(cfg.gru_size, self.widths[-1] * 16), nn.ReLU(inplace=True))
        self.up_x = nn.ModuleList([_up(self.widths[i], self.widths[i - 1]) for i in range(5, 1, -1)])
        self.up_skip = nn.ModuleList([_up(self.widths[i], self.widths[i - 1]) for i in range(5, 1, -1)])
        self.up_norm = nn.ModuleList([nn.BatchNorm2d(self.widths[i - 1]) for i in range(5, 1, -1)])
        self.out_x = nn.ConvTranspose2d(self.widths[1], 3, 4, 2, 1)  # frame t at S, plus
        self.out_skip = nn.ConvTranspose2d(self.widths[1], 3, 4, 2, 1, bias=False)  # e_1's and
        self.out_skip_full = nn.Conv2d(w, 3, 3, 1, 1, bias=False)  # e_0's per-clip terms
        if cfg.identity_skip:  # start from the identity image exactly
            for conv in (self.out_x, self.out_skip, self.out_skip_full):
                nn.init.zeros_(conv.weight)
            nn.init.zeros_(self.out_x.bias)

    # identity side: once per clip
    def encode_identity(self, identity: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, 3, S, S) -> image feature (B, image_dim), per-clip skip terms.

        The skip terms are [up_skip(e_5) .. up_skip(e_2), out_skip(e_1) + out_skip_full(e_0) (B, 3, S, S)].
        """
        feats, x = [], identity
        for layer in self.image_encoder:
            x = layer(x)
            feats.append(x)  # e_0 (B, w, S, S) .. e_5 (B, 8w, 4, 4)
        image = self.image_fc(feats[-1].flatten(1))
        skips = [up(feats[i]) for up, i in zip(self.up_skip, range(5, 1, -1))]
        skips.append(self.out_skip(feats[1]) + self.out_skip_full(feats[0]))  # (B, 3, S, S)
        return image, skips

    # audio side: once per frame
    def audio_windows(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, 1, 4T, M) -> (B, T, R, M): frame t's rows of frames t - past .. t + future, replicate-padded."""
        cfg, k = self.config, MELS_PER_FRAME
        x = mel[:, 0]  # (B, 4T, M)
        x = torch.cat([x[:, :k].repeat(1, cfg.audio_past, 1), x, x[:, -k:].repeat(1, cfg.audio_future, 1)], 1)
        return x.unfold(1, self.rows, k).transpose(2, 3)  # (B, T, R, M)

    def encode_audio(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, T, R, M) -> (B, T, audio_dim)."""
        B, T = windows.shape[:2]
        return self.audio_encoder(windows.reshape(B * T, 1, *windows.shape[2:])).view(B, T, -1)

    def decode(self, h: torch.Tensor, skips: list[torch.Tensor], base: torch.Tensor | None) -> torch.Tensor:
        """GRU outputs (B, T, gru_size) + per-clip skips -> frames (B, 3, T, S, S)."""
        B, T = h.shape[:2]
        x = self.decoder_fc(h.reshape(B * T, -1)).view(B * T, -1, 4, 4)  # (BT, 8w, 4, 4)
        for up, norm, skip in zip(self.up_x, self.up_norm, skips):
            y = up(x)  # (BT, c, 2s, 2s)
            y = (y.unflatten(0, (B, T)) + skip[:, None]).flatten(0, 1)  # = up(concat(x, e_i)), e_i per clip
            x = F.relu(norm(y))
        y = self.out_x(x)  # (BT, 3, S, S)
        y = y.unflatten(0, (B, T)) + skips[-1][:, None]  # (B, T, 3, S, S)
        if base is not None:
            y = y + base[:, None]
        return torch.tanh(y).transpose(1, 2)  # (B, 3, T, S, S)

    def _base(self, identity: torch.Tensor) -> torch.Tensor | None:
        return torch.atanh(identity.float().clamp(-0.999, 0.999)) if self.config.identity_skip else None

    def forward(self, mel: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        _check_inputs(self.config, mel, identity)
        image, skips = self.encode_identity(identity)  # (B, image_dim)
        audio = self.encode_audio(self.audio_windows(mel))  # (B, T, audio_dim)
        x = torch.cat([image[:, None].expand(-1, audio.shape[1], -1).to(audio.dtype), audio], 2)
        h, _ = self.gru(x)  # (B, T, gru_size), from h_0 = 0
        return self.decode(h, skips, self._base(identity))

    @torch.no_grad()
    def generate(self, mel: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """Inference: (B, 1, 4T, M), (B, 3, S, S) -> (B, 3, T, S, S) in [-1, 1]. Call .eval() first."""
        return self(mel, identity)

    # streaming: one frame per call, constant memory
    @torch.no_grad()
    def init_state(self, identity: torch.Tensor) -> StreamState:
        """Start a stream for identity faces (B, 3, S, S). Call .eval() first (BatchNorm running statistics)."""
        _check_inputs(self.config, None, identity)
        image, skips = self.encode_identity(identity)
        h = image.new_zeros(self.config.gru_layers, identity.shape[0], self.config.gru_size)
        return StreamState(image=image, skips=skips, base=self._base(identity), h=h)

    @torch.no_grad()
    def _emit(self, state: StreamState) -> torch.Tensor:
        audio = self.encode_audio(state.window[:, None])  # (B, 1, audio_dim)
        x = torch.cat([state.image[:, None].to(audio.dtype), audio], 2)
        out, state.h = self.gru(x, state.h.to(x.dtype))
        state.emitted += 1
        return self.decode(out, state.skips, state.base)[:, :, 0]  # (B, 3, S, S)

    @torch.no_grad()
    def step(self, state: StreamState, rows: torch.Tensor) -> tuple[torch.Tensor | None, StreamState]:
        """Feed the 4 mel rows (B, 4, M) of the next frame; returns (frame (B, 3, S, S) or None, state).

        The frame returned is audio_future frames behind the input (it needs that much lookahead): None
        for the first audio_future calls. After the last rows, `flush(state)` returns the remaining frames.
        """
        cfg, k = self.config, MELS_PER_FRAME
        if rows.dim() != 3 or tuple(rows.shape[1:]) != (k, cfg.n_mels) or rows.shape[0] != state.h.shape[1]:
            raise ValueError(f"rows has shape {tuple(rows.shape)}, expected ({state.h.shape[1]}, {k}, {cfg.n_mels}): "
                             "the mel rows of one video frame for each stream of the batch.")
        if state.window is None:  # left padding: the first frame's rows, audio_past times
            state.window = rows.repeat(1, cfg.audio_past, 1)
        state.window = torch.cat([state.window, rows], 1)[:, -self.rows:]
        state.received += 1
        frame = self._emit(state) if state.received > cfg.audio_future else None
        return frame, state

    @torch.no_grad()
    def flush(self, state: StreamState) -> list[torch.Tensor]:
        """The frames still owed after the last `step`, their right context replicate-padded: a list of
        up to audio_future frames (B, 3, S, S)."""
        frames = []
        while state.emitted < state.received:  # audio_future appends in all
            state.window = torch.cat([state.window, state.window[:, -MELS_PER_FRAME:]], 1)[:, -self.rows:]
            if state.window.shape[1] == self.rows:  # a clip shorter than the lookahead fills it only now
                frames.append(self._emit(state))
        return frames

    @torch.no_grad()
    def stream(self, identity: torch.Tensor, rows):
        """Iterate frames (B, 3, S, S) for an iterable of per-frame mel rows (B, 4, M), in constant memory."""
        state = self.init_state(identity)
        for r in rows:
            frame, state = self.step(state, r)
            if frame is not None:
                yield frame
        yield from self.flush(state)


class FrameDiscriminator(nn.Module):
    """(frames (N, 3, S, S), identity (N, 3, S, S) or None) -> one logit per frame (N,)."""

    def __init__(self, cfg: CRGANConfig):
        super().__init__()
        self.conditional = cfg.frame_d_conditional
        d = cfg.d_channels
        self.net = nn.Sequential(
            conv2d(6 if self.conditional else 3, d, 4, 2, 1, norm=False, act="lrelu"),  # (N, d, S/2, S/2)
            conv2d(d, 2 * d, 4, 2, 1, norm=False, act="lrelu"),  # S/4
            conv2d(2 * d, 4 * d, 4, 2, 1, norm=False, act="lrelu"),  # S/8
            conv2d(4 * d, 8 * d, 4, 2, 1, norm=False, act="lrelu"),  # S/16
            conv2d(8 * d, 8 * d, 4, 2, 1, norm=False, act="lrelu"),  # S/32 = 4
            nn.Conv2d(8 * d, 1, 4),  # (N, 1, 1, 1)
        )

    def forward(self, frames: torch.Tensor, identity: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.cat([frames, identity.to(frames.dtype)], 1) if self.conditional else frames
        return self.net(x).flatten()


class VideoDiscriminator(nn.Module):
    """Spatio-temporal discriminator: video (B, 3, T, S, S) -> one logit per clip (B,), any T.

    The clip is first average-pooled to video_d_size (the cpu preset judges motion at 64x64; the frame
    discriminator still sees full resolution). 3D convs halve space to 4x4 and time three times.
    """

    def __init__(self, cfg: CRGANConfig):
        super().__init__()
        v, s = cfg.v_channels, cfg.video_d_size
        self.pool = cfg.image_size // cfg.video_d_size
        layers = [conv3d(3, v, (3, 4, 4), (1, 2, 2), 1, norm=False, act="lrelu")]  # (B, v, T, s/2, s/2)
        c, s, level = v, s // 2, 1
        while s > 4:  # (B, c, T', s, s) -> (B, min(2c, 8v), T' / 2 for the first three, s/2, s/2)
            c_out = min(2 * c, 8 * v)
            layers.append(conv3d(c, c_out, (3, 4, 4), (2 if level <= 3 else 1, 2, 2), 1, norm=False, act="lrelu"))
            c, s, level = c_out, s // 2, level + 1
        self.net = nn.Sequential(*layers)  # (B, c, T', 4, 4)
        self.classifier = nn.Linear(c * 16, 1)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        video = pool_space(video, self.pool)  # (B, 3, T, video_d_size, video_d_size)
        x = self.net(video).mean(2)  # (B, c, 4, 4): averaged over the remaining time steps
        return self.classifier(x.flatten(1)).squeeze(1)


def _gn_conv3d(c_in: int, c_out: int, kernel, stride, padding) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(c_in, c_out, kernel, stride, padding, bias=False),
                         nn.GroupNorm(4 if c_out % 4 == 0 else 1, c_out), nn.ReLU(inplace=True))


class LipReader(nn.Module):
    """Mouth crops (B, 3, T, L, L) -> per-frame word logits (B, T, V)."""

    def __init__(self, cfg: CRGANConfig):
        super().__init__()
        r, L = cfg.lip_channels, cfg.lip_size
        layers, c, s = [_gn_conv3d(3, r, (5, 5, 5), (1, 2, 2), 2)], r, L // 2  # (B, r, T, L/2, L/2)
        while s > 4:  # halve space to 4x4, widths r -> 2r -> 4r
            c_out = min(2 * c, 4 * r)
            layers.append(_gn_conv3d(c, c_out, 3, (1, 2, 2), 1))
            c, s = c_out, s // 2
        self.frontend = nn.Sequential(*layers)  # (B, c, T, 4, 4)
        self.proj = nn.Sequential(nn.Linear(c * 16, cfg.lip_hidden), nn.ReLU(inplace=True))
        self.gru = nn.GRU(cfg.lip_hidden, cfg.lip_hidden, batch_first=True, bidirectional=True)
        self.classifier = nn.Linear(2 * cfg.lip_hidden, cfg.vocabulary_size)

    def forward(self, mouths: torch.Tensor) -> torch.Tensor:
        x = self.frontend(mouths)  # (B, c, T, 4, 4)
        x = self.proj(x.transpose(1, 2).flatten(2))  # (B, T, lip_hidden)
        x, _ = self.gru(x)  # (B, T, 2 lip_hidden)
        return self.classifier(x)  # (B, T, V)


def word_loss(logits: torch.Tensor, words: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """Cross-entropy over labelled frames (words >= 0) -> (mean loss, correct, labelled). 0 if none labelled."""
    logits, words = logits.float().flatten(0, 1), words.flatten()
    labelled = words >= 0
    n = int(labelled.sum())
    loss = F.cross_entropy(logits, words, ignore_index=-1, reduction="sum") / max(n, 1)
    correct = int((logits.argmax(1)[labelled] == words[labelled]).sum())
    return loss, correct, n


class CRGAN(nn.Module):
    """The training system: generator, frame and video discriminators, lip reader."""

    crop = "face"  # aligned 128 px faces (lipgen pastes them back with the face matrix)
    parts = ("generator", "lip_reader")
    capabilities = frozenset({STREAMS, READS_LIPS})

    def __init__(self, config: CRGANConfig):
        super().__init__()
        self.config = config
        with seeded(config.seed):  # same config -> same initial weights
            self.generator = CRGANGenerator(config)
            self.frame_discriminator = FrameDiscriminator(config)
            self.video_discriminator = VideoDiscriminator(config)
            self.lip_reader = LipReader(config)

    def data_spec(self) -> DataSpec:
        return DataSpec("windows", self.config.n_frames, faces=True)  # n_frames windows of every clip

    def seams(self, n_frames: int) -> list[int]:
        return []  # recurrent: frame after frame, nowhere joined

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg = self.config
        betas = (cfg.beta1, cfg.beta2)
        critics = list(self.frame_discriminator.parameters()) + list(self.video_discriminator.parameters())
        d_groups = [{"params": critics},
                    {"params": list(self.lip_reader.parameters()), "lr": cfg.lr_lip}]
        return {"generator": torch.optim.Adam(self.generator.parameters(), lr=cfg.lr_g, betas=betas),
                "discriminator": torch.optim.Adam(d_groups, lr=cfg.lr_d, betas=betas)}

    def _inputs(self, batch: dict) -> tuple[torch.Tensor, ...]:
        if "face" not in batch or "face_identity" not in batch:
            raise ValueError("the batch has no face crops: build the dataset with faces=True "
                             "(lipgen.train.make_dataset does so from CRGAN.data_spec()).")
        mel, identity, real, words = batch["mel"], batch["face_identity"], batch["face"], batch["words"]
        _check_inputs(self.config, mel, identity, real)
        return mel, identity, real, words

    def _frame_logits(self, video: torch.Tensor, identity: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Frame discriminator on frames[b] of each clip: video (B, 3, T, S, S), frames (B, k) -> logits (B k,)."""
        B = video.shape[0]
        picked = video.transpose(1, 2)[torch.arange(B, device=video.device)[:, None], frames]  # (B, k, 3, S, S)
        ident = identity[:, None].expand(-1, frames.shape[1], -1, -1, -1)
        return self.frame_discriminator(picked.flatten(0, 1), ident.flatten(0, 1))

    def _pick_frames(self, B: int, T: int, device) -> torch.Tensor:
        k = self.config.frame_d_frames
        if k <= 0 or k >= T:
            return torch.arange(T, device=device).expand(B, T)
        return torch.rand(B, T, device=device).argsort(1)[:, :k]  # (B, k) distinct random frames per clip

    def training_step(self, batch: dict, step: int, update) -> dict[str, float]:
        """One discriminator + lip reader update, then one generator update.

        update(loss, name) backpropagates `loss` and steps the optimizer `name` of optimizers().
        """
        cfg = self.config
        mel, identity, real, words = self._inputs(batch)
        B, T = real.shape[0], real.shape[2]
        fake = self.generator(mel, identity)  # (B, 3, T, S, S)
        frames = self._pick_frames(B, T, real.device)

        # discriminators: real -> 1, generated -> 0; lip reader: cross-entropy on real clips' words
        fd_real = self._frame_logits(real, identity, frames)
        fd_fake = self._frame_logits(fake.detach(), identity, frames)
        vd_real, vd_fake = self.video_discriminator(real), self.video_discriminator(fake.detach())
        lip_real, correct, n = word_loss(self.lip_reader(mouth_crop(real, cfg.lip_size)), words)
        d_frame = gan_loss(fd_real, True) + gan_loss(fd_fake, False)
        d_video = gan_loss(vd_real, True) + gan_loss(vd_fake, False)
        d_loss = d_frame + d_video + lip_real
        update(d_loss, "discriminator")
        logs = {"d/loss": d_loss.item(), "d/frame": d_frame.item(), "d/video": d_video.item(),
                "d/frame_real": torch.sigmoid(fd_real.float()).mean().item(),
                "d/frame_fake": torch.sigmoid(fd_fake.float()).mean().item(),
                "d/video_real": torch.sigmoid(vd_real.float()).mean().item(),
                "d/video_fake": torch.sigmoid(vd_fake.float()).mean().item(),
                "lip/real_ce": lip_real.item(), "lip/real_acc": correct / max(n, 1)}

        # generator: w_l1 L1 + w_frame GAN + w_video GAN + w_lip lip reading, discriminators frozen
        with frozen(self.frame_discriminator, self.video_discriminator, self.lip_reader):
            lip_fake, correct, n = word_loss(self.lip_reader(mouth_crop(fake, cfg.lip_size)), words)
            terms = {"l1": (cfg.w_l1, F.l1_loss(fake.float(), real)),
                     "frame": (cfg.w_frame, gan_loss(self._frame_logits(fake, identity, frames), True)),
                     "video": (cfg.w_video, gan_loss(self.video_discriminator(fake), True)),
                     "lip": (cfg.w_lip, lip_fake)}
            g_loss = sum(w * l for w, l in terms.values())
            update(g_loss, "generator")
        logs.update({f"g/{k}": l.item() for k, (w, l) in terms.items()})
        logs["g/loss"] = g_loss.item()
        logs["lip/fake_acc"] = correct / max(n, 1)
        return logs

    @torch.no_grad()
    def validation_step(self, batch: dict) -> dict[str, float]:
        """L1, PSNR (pixels mapped to [0, 1]), and the lip reader's per-frame word accuracy on real and generated
        clips (over labelled frames; 0 for a batch with none)."""
        cfg = self.config
        mel, identity, real, words = self._inputs(batch)
        fake = self.generator(mel, identity).float()
        mse = ((fake - real) / 2).pow(2).mean((1, 2, 3, 4)).clamp_min(1e-10)  # per clip
        _, correct_real, n = word_loss(self.lip_reader(mouth_crop(real, cfg.lip_size)), words)
        _, correct_fake, _ = word_loss(self.lip_reader(mouth_crop(fake, cfg.lip_size)), words)
        return {"val/l1": F.l1_loss(fake, real).item(),
                "val/psnr": (10 * torch.log10(1 / mse)).mean().item(),
                "val/lip_acc_real": correct_real / max(n, 1),
                "val/lip_acc_fake": correct_fake / max(n, 1)}

    @torch.no_grad()
    def generate(self, mel: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """(B, 1, 4T, M), (B, 3, S, S) aligned faces -> (B, 3, T, S, S) in [-1, 1], any T. Call .eval() first."""
        return self.generator.generate(mel, identity).float()

    @torch.no_grad()
    def sample(self, batch: dict) -> torch.Tensor:
        """Generated clips (B, 3, T, S, S) in [-1, 1] for sample grids (shown against batch["face"])."""
        return self.generate(batch["mel"], batch["face_identity"])

    # ---- lipgen generate / evaluate: frame after frame, constant memory

    @torch.no_grad()
    def read_lips(self, faces: torch.Tensor) -> torch.Tensor:
        """The lip-reading discriminator on aligned faces (B, 3, T, S, S): per-frame word logits (B, T, V)."""
        return self.lip_reader(mouth_crop(faces, self.config.lip_size)).float()

    @torch.no_grad()
    def stream(self, mel: np.ndarray, identity: np.ndarray):
        """(mel (4N, M) float32, identity face (S, S, 3) uint8) -> iterator of N faces (S, S, 3) uint8."""
        ident = to_unit(identity)[None]
        rows = (torch.from_numpy(mel[i * MELS_PER_FRAME:(i + 1) * MELS_PER_FRAME])[None]
                for i in range(len(mel) // MELS_PER_FRAME))
        for frame in self.generator.stream(ident, rows):  # (1, 3, S, S)
            yield to_uint8(frame[0])
