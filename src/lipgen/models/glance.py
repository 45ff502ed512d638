"""Glance: lip movements from audio and one lip image, 16 frames at once.

Lele Chen, Zhiheng Li, Ross K. Maddox, Zhiyao Duan, Chenliang Xu.
"Lip Movements Generation at a Glance". ECCV 2018. arXiv:1803.10404.

What follows the paper, what follows the authors' code, and what is ours:
- Generator: the paper's layout (audio encoder 1->32->64->128->256->256 over time x frequency,
  identity encoder 7x7 conv + two stride-2 convs, audio map replicated over space and image map
  repeated over time, 3D conv, 9 3D residual blocks with (1,3,3) kernels, two 3D transposed convs,
  3D conv + tanh). BatchNorm and ReLU as in the authors' code. Kernels the paper leaves open are ours:
  3x3x3 for the fusion conv (the only time mixing after the audio encoder), (1,4,4) stride (1,2,2) for
  the transposed convs, (1,3,3) for the output conv. These layers give 16.6 M parameters, not the
  paper's "about 22 M"; the paper does not say where the rest are. With lipgen's 80 mels (not 128) the
  last audio conv has a (3, 5) kernel without frequency padding so 20 mel bands become F = 16 = H = W.
  Two time strides of 2 turn the 4 mel rows of each video frame into one time step, so output frame t
  is aligned with mel rows 4t..4t+3 and no temporal resampling is needed.
- Losses: the paper's, L = 1.0 l_corr + 0.5 l_pix(L1) + 1.0 l_perc + 1.0 l_gen, with l_perc the L2
  distance between discriminator features of the real and generated clips (the authors' code used
  0.2 L1 and a frozen autoencoder instead). The discriminator loss is the paper's, real video with
  mismatched audio counting as fake. Optimisers follow the authors' code.
- Motion representation (ours): the authors fed phi_v the optical flow of a pretrained FlowNetS.
  None is available offline, so phi_v encodes frame differences v[t+1] - v[t] (differentiable, and
  exactly zero for a still video), and phi_s encodes the matching time differences of the log-mel,
  chunk t+1 minus chunk t (4 mel rows per chunk). The discriminator's third stream sees the same
  frame differences.
- Correlation nets (ours in detail, the paper gives no layer sizes): phi_s and phi_v are small
  bias-free ReLU conv nets ending in a time conv, so that a still video maps to a zero feature and
  gets l_corr = 1; l_corr = 1 - cos(phi_s, phi_v), the cosine taken over the whole (D, T-1) feature,
  with the norms floored smoothly at 1e-2 so the gradient stays bounded near a still video.
- Discriminator (ours in detail): audio, video and frame-difference conv streams, each brought to
  T/4 time steps; the audio feature is replicated over the 4x4 video map, all are concatenated and a
  3D conv + linear give one logit per clip. LeakyReLU, no normalisation. `use_frame_diff=False`
  feeds the third stream the raw frames v[1:] instead (the ablation of the motion signal).
- `identity_skip` (not in the paper or its code, off in the "paper" preset): the output is
  tanh(decoder + atanh(identity)), so at initialisation the model reproduces the identity image and
  learns the mouth motion as a residual; it helps small models keep the identity.

Shapes: B batch, T = n_frames video frames, S = image_size, M = n_mels, F = S / 4.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..media import MELS_PER_FRAME, N_MELS
from .base import DataSpec, frozen, gan_loss, seeded, window_seams
from .layers import ResBlock3d, conv2d, conv3d, up3d

assert MELS_PER_FRAME == 4, "the audio encoders' two time strides of 2 assume 4 mel rows per video frame"


@dataclass
class GlanceConfig:
    # sizes
    n_frames: int = 16  # video frames generated at once (0.64 s at 25 fps)
    image_size: int = 64  # mouth crop side, pixels
    n_mels: int = N_MELS  # mel bands
    audio_channels: int = 32  # audio encoder widths a, 2a, 4a, 8a, 8a (paper: 32 -> 256)
    identity_channels: int = 64  # identity encoder widths i, 2i, 4i (paper: 64 -> 256)
    base_channels: int = 256  # width of the fused 3D trunk; the decoder halves it twice
    n_res_blocks: int = 9
    identity_skip: bool = False  # not in the paper: output = tanh(decoder + atanh(identity))
    corr_channels: int = 32  # phi_s, phi_v widths c, 2c, 4c
    corr_dim: int = 128  # D, the feature size of phi_s and phi_v
    d_channels: int = 64  # discriminator widths d, 2d, 4d, 8d
    # ablation switches (Table 1)
    use_corr: bool = True  # l_corr and the correlation nets
    use_pix: bool = True  # l_pix (L1)
    use_perc: bool = True  # l_perc on discriminator features
    three_stream: bool = True  # False: two-stream (audio + video) discriminator
    use_frame_diff: bool = True  # the third stream sees v[t+1] - v[t]; False: raw frames v[t+1]
    # loss weights (paper)
    w_corr: float = 1.0
    w_pix: float = 0.5
    w_perc: float = 1.0
    w_gan: float = 1.0
    # optimisation (authors' code)
    lr: float = 2e-4  # generator and discriminator Adam
    beta1: float = 0.5
    beta2: float = 0.999
    lr_corr: float = 1e-4  # correlation nets, trained with the generator's loss
    weight_decay_corr: float = 5e-4
    seed: int = 0  # initial weights are a function of the config

    def __post_init__(self):
        if self.image_size % 16:
            raise ValueError(f"image_size={self.image_size}: must be a multiple of 16 "
                             "(the discriminator halves it 4 times).")
        if self.n_frames < 4 or self.n_frames % 4:
            raise ValueError(f"n_frames={self.n_frames}: must be a multiple of 4, at least 4 "
                             "(the discriminator quarters time).")
        if _audio_kernel_f(self) < 1:
            raise ValueError(f"n_mels={self.n_mels} is too few for image_size={self.image_size}: "
                             f"need n_mels >= image_size - 3.")


def _audio_kernel_f(cfg: GlanceConfig) -> int:
    """Frequency kernel of the last audio conv: the M/4 bands left after two strides become F = S/4."""
    bands = (cfg.n_mels - 1) // 2 // 2 + 1  # after two stride-2, pad-1, kernel-3 convs
    return bands - cfg.image_size // 4 + 1


PRESETS = {
    # the paper's architecture: 16.6 M generator parameters (the paper says about 22 M)
    "paper": GlanceConfig(),
    # 2 CPU cores: 0.92 M generator parameters; a G+D step at batch 8 in bf16 takes about 0.38 s
    "cpu": GlanceConfig(audio_channels=16, identity_channels=32, base_channels=48, n_res_blocks=3,
                        identity_skip=True, corr_channels=8, corr_dim=64, d_channels=16),
    # unit tests
    "tiny": GlanceConfig(audio_channels=4, identity_channels=4, base_channels=16, n_res_blocks=1,
                         identity_skip=True, corr_channels=4, corr_dim=16, d_channels=4),
}


def _check_inputs(cfg: GlanceConfig, mel: torch.Tensor, identity: torch.Tensor | None = None,
                  video: torch.Tensor | None = None) -> None:
    T, S = cfg.n_frames, cfg.image_size
    if mel.dim() != 4 or tuple(mel.shape[1:]) != (1, T * MELS_PER_FRAME, cfg.n_mels):
        raise ValueError(f"mel has shape {tuple(mel.shape)}, expected (B, 1, {T * MELS_PER_FRAME}, {cfg.n_mels}): "
                         f"{MELS_PER_FRAME} log-mel rows per video frame for {T} frames.")
    if identity is not None and (identity.dim() != 4 or tuple(identity.shape[1:]) != (3, S, S)):
        raise ValueError(f"identity has shape {tuple(identity.shape)}, expected (B, 3, {S}, {S}): "
                         "one RGB mouth crop in [-1, 1].")
    if video is not None and (video.dim() != 5 or tuple(video.shape[1:]) != (3, T, S, S)):
        raise ValueError(f"video has shape {tuple(video.shape)}, expected (B, 3, {T}, {S}, {S}) = (B, C, T, H, W).")


class GlanceGenerator(nn.Module):
    """(mel (B, 1, 4T, M), identity (B, 3, S, S)) -> video (B, 3, T, S, S) in [-1, 1]."""

    def __init__(self, cfg: GlanceConfig):
        super().__init__()
        self.config = cfg
        a, i, c = cfg.audio_channels, cfg.identity_channels, cfg.base_channels
        self.audio_encoder = nn.Sequential(  # (B, 1, 4T, M)
            conv2d(1, a, 3, 1, 1),  # (B, a, 4T, M)
            conv2d(a, 2 * a, 3, 2, 1),  # (B, 2a, 2T, M/2)
            conv2d(2 * a, 4 * a, 3, 1, 1),  # (B, 4a, 2T, M/2)
            conv2d(4 * a, 8 * a, 3, 2, 1),  # (B, 8a, T, M/4)
            conv2d(8 * a, 8 * a, (3, _audio_kernel_f(cfg)), 1, (1, 0)),  # (B, 8a, T, F)
        )
        self.identity_encoder = nn.Sequential(  # (B, 3, S, S)
            conv2d(3, i, 7, 1, 3),  # (B, i, S, S)
            conv2d(i, 2 * i, 3, 2, 1),  # (B, 2i, S/2, S/2)
            conv2d(2 * i, 4 * i, 3, 2, 1),  # (B, 4i, F, F)
        )
        self.fusion = conv3d(8 * a + 4 * i, c, 3, 1, 1)  # (B, 8a+4i, T, F, F) -> (B, c, T, F, F)
        self.res_blocks = nn.Sequential(*[ResBlock3d(c) for _ in range(cfg.n_res_blocks)])
        self.decoder = nn.Sequential(
            up3d(c, c // 2),  # (B, c/2, T, S/2, S/2)
            up3d(c // 2, c // 4),  # (B, c/4, T, S, S)
            nn.Conv3d(c // 4, 3, (1, 3, 3), 1, (0, 1, 1)),  # (B, 3, T, S, S), before tanh
        )
        if cfg.identity_skip:  # start from the identity image exactly
            nn.init.zeros_(self.decoder[-1].weight)
            nn.init.zeros_(self.decoder[-1].bias)

    def forward(self, mel: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        _check_inputs(self.config, mel, identity)
        s = self.audio_encoder(mel)  # (B, 8a, T, F)
        v = self.identity_encoder(identity)  # (B, 4i, F, F)
        T, Fq = s.shape[2], s.shape[3]
        s = s[:, :, :, None, :].expand(-1, -1, -1, Fq, -1)  # (B, 8a, T, F, F): frequency along W, copied along H
        v = v[:, :, None].expand(-1, -1, T, -1, -1)  # (B, 4i, T, F, F): the same image at every time step
        x = self.fusion(torch.cat([s, v], 1))  # (B, c, T, F, F)
        x = self.decoder(self.res_blocks(x))  # (B, 3, T, S, S)
        if self.config.identity_skip:
            x = x + torch.atanh(identity.clamp(-0.999, 0.999))[:, :, None]
        return torch.tanh(x)

    @torch.no_grad()
    def generate(self, mel: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """Inference: (B, 1, 4T, M), (B, 3, S, S) -> (B, 3, T, S, S) in [-1, 1]. Call .eval() first."""
        return self(mel, identity)


def time_diff(x: torch.Tensor, step: int = 1) -> torch.Tensor:
    """x[t + step] - x[t] along dim 2 (time): (B, C, T, ...) -> (B, C, T - step, ...)."""
    return x[:, :, step:] - x[:, :, :-step]


def correlation_loss(f_s: torch.Tensor, f_v: torch.Tensor, eps: float = 1e-2) -> torch.Tensor:
    """l_corr = 1 - cos(f_s, f_v), cosine over each clip's whole (D, T') feature, mean over the batch. In [0, 2].

    The norms are floored smoothly, |x| -> sqrt(|x|^2 + eps^2): a still video (phi_v = 0) gets l_corr = 1
    and a bounded gradient, where the plain cosine's gradient grows as 1 / |phi_v| and would swamp Adam.
    """
    a, b = f_s.flatten(1).float(), f_v.flatten(1).float()  # (B, D * T')
    norms = (a.pow(2).sum(1) + eps ** 2).sqrt() * (b.pow(2).sum(1) + eps ** 2).sqrt()
    return (1 - (a * b).sum(1) / norms).mean()


class CorrelationNets(nn.Module):
    """phi_s on log-mel time differences, phi_v on frame differences, both -> (B, D, T-1)."""

    def __init__(self, cfg: GlanceConfig):
        super().__init__()
        c, D = cfg.corr_channels, cfg.corr_dim
        # no biases and no normalisation: zero motion in, zero feature out
        self.phi_s = nn.Sequential(  # (B, 1, 4(T-1), M)
            conv2d(1, c, 3, (1, 2), 1, norm=False, bias=False),  # (B, c, 4(T-1), M/2)
            conv2d(c, 2 * c, 3, 2, 1, norm=False, bias=False),  # (B, 2c, 2(T-1), M/4)
            conv2d(2 * c, 4 * c, 3, 2, 1, norm=False, bias=False),  # (B, 4c, T-1, M/8)
        )
        self.phi_s_head = nn.Conv1d(4 * c, D, 3, 1, 1, bias=False)  # after the mean over frequency
        self.phi_v = nn.Sequential(  # (B, 3, T-1, S, S)
            conv3d(3, c, (1, 4, 4), (1, 2, 2), (0, 1, 1), norm=False, bias=False),  # (B, c, T-1, S/2, S/2)
            conv3d(c, 2 * c, (1, 4, 4), (1, 2, 2), (0, 1, 1), norm=False, bias=False),  # (B, 2c, T-1, S/4, S/4)
            conv3d(2 * c, 4 * c, (1, 4, 4), (1, 2, 2), (0, 1, 1), norm=False, bias=False),  # (B, 4c, T-1, S/8, S/8)
        )
        self.phi_v_head = nn.Conv1d(4 * c, D, 3, 1, 1, bias=False)  # after the mean over space

    def forward(self, mel: torch.Tensor, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, 4T, M), (B, 3, T, S, S) -> phi_s, phi_v, each (B, D, T-1)."""
        f_s = self.phi_s(time_diff(mel, MELS_PER_FRAME)).mean(3)  # (B, 4c, T-1): chunk t+1 - chunk t
        f_v = self.phi_v(time_diff(video)).mean((3, 4))  # (B, 4c, T-1): frame t+1 - frame t
        return self.phi_s_head(f_s), self.phi_v_head(f_v)

    def loss(self, mel: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        return correlation_loss(*self(mel, video))


class ThreeStreamDiscriminator(nn.Module):
    """(mel (B, 1, 4T, M), video (B, 3, T, S, S)) -> one logit per clip (B,).

    Streams: audio (2D convs), video (3D convs) and, if three_stream, frame differences (3D convs),
    each ending at T/4 time steps; joined by a 3D conv and a linear layer.
    """

    def __init__(self, cfg: GlanceConfig):
        super().__init__()
        self.config = cfg
        d = cfg.d_channels

        def video_stream() -> nn.ModuleList:  # (B, 3, T or T-1, S, S)
            return nn.ModuleList([
                conv3d(3, d, (3, 4, 4), (1, 2, 2), 1, norm=False, act="lrelu"),  # (B, d, T, S/2, S/2)
                conv3d(d, 2 * d, (3, 4, 4), (2, 2, 2), 1, norm=False, act="lrelu"),  # (B, 2d, T/2, S/4, S/4)
                conv3d(2 * d, 4 * d, (3, 4, 4), (2, 2, 2), 1, norm=False, act="lrelu"),  # (B, 4d, T/4, S/8, S/8)
                conv3d(4 * d, 8 * d, (1, 4, 4), (1, 2, 2), (0, 1, 1), norm=False, act="lrelu"),  # (.., T/4, S/16, S/16)
            ])

        self.audio_stream = nn.Sequential(  # (B, 1, 4T, M)
            conv2d(1, d, 3, 2, 1, norm=False, act="lrelu"),  # (B, d, 2T, M/2)
            conv2d(d, 2 * d, 3, 2, 1, norm=False, act="lrelu"),  # (B, 2d, T, M/4)
            conv2d(2 * d, 4 * d, 3, 2, 1, norm=False, act="lrelu"),  # (B, 4d, T/2, M/8)
            conv2d(4 * d, 8 * d, 3, 2, 1, norm=False, act="lrelu"),  # (B, 8d, T/4, M/16)
        )
        self.video_stream = video_stream()
        self.diff_stream = video_stream() if cfg.three_stream else None
        n_streams = 3 if cfg.three_stream else 2
        t, s = cfg.n_frames // 4, cfg.image_size // 16
        # mixes the streams and neighbouring time steps: (B, n_streams * 8d, T/4, S/16, S/16) -> (B, 8d, ...)
        self.joint = conv3d(n_streams * 8 * d, 8 * d, (3, 1, 1), 1, (1, 0, 0), norm=False, act="lrelu")
        self.classifier = nn.Linear(8 * d * t * s * s, 1)

    def encode_audio(self, mel: torch.Tensor) -> torch.Tensor:
        return self.audio_stream(mel).mean(3)  # (B, 8d, T/4)

    def encode_video(self, video: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's output of the video stream, then of the frame-difference stream; used by l_perc."""
        streams = [(self.video_stream, video)]
        if self.diff_stream is not None:
            motion = time_diff(video) if self.config.use_frame_diff else video[:, :, 1:]  # (B, 3, T-1, S, S)
            streams.append((self.diff_stream, motion))
        features = []
        for stream, x in streams:
            for layer in stream:
                x = layer(x)
                features.append(x)
        return features

    def classify(self, audio: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor:
        """audio (B, 8d, T/4) + encode_video's features -> logits (B,)."""
        n = len(self.video_stream)
        ends = features[n - 1::n]  # each stream's last layer, (B, 8d, T/4, S/16, S/16)
        h, w = ends[0].shape[3:]
        audio = audio[:, :, :, None, None].expand(-1, -1, -1, h, w)  # replicated over space
        x = self.joint(torch.cat([audio, *ends], 1))  # (B, 8d, T/4, S/16, S/16)
        return self.classifier(x.flatten(1)).squeeze(1)

    def forward(self, mel: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        return self.classify(self.encode_audio(mel), self.encode_video(video))


class Glance(nn.Module):
    """The training system: generator, correlation nets (None when use_corr is off), discriminator."""

    crop = "mouth"  # 64 px mouth crops, made in windows of n_frames
    parts = ("generator",)
    capabilities = frozenset()

    def __init__(self, config: GlanceConfig):
        super().__init__()
        self.config = config
        with seeded(config.seed):  # same config -> same initial weights
            self.generator = GlanceGenerator(config)
            self.correlation = CorrelationNets(config) if config.use_corr else None
            self.discriminator = ThreeStreamDiscriminator(config)

    def data_spec(self) -> DataSpec:
        return DataSpec("windows", self.config.n_frames)

    def seams(self, n_frames: int) -> list[int]:
        return window_seams(self.config.n_frames, n_frames)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg = self.config
        betas = (cfg.beta1, cfg.beta2)
        groups = [{"params": list(self.generator.parameters())}]
        if self.correlation is not None:
            groups.append({"params": list(self.correlation.parameters()), "lr": cfg.lr_corr,
                           "weight_decay": cfg.weight_decay_corr})
        return {"generator": torch.optim.Adam(groups, lr=cfg.lr, betas=betas),
                "discriminator": torch.optim.Adam(self.discriminator.parameters(), lr=cfg.lr, betas=betas)}

    def training_step(self, batch: dict, step: int, update) -> dict[str, float]:
        """One discriminator update, then one generator (+ correlation nets) update.

        update(loss, name) backpropagates `loss` and steps the optimizer `name` of optimizers().
        """
        cfg, D = self.config, self.discriminator
        mel, identity, real, mel_wrong = batch["mel"], batch["identity"], batch["mouth"], batch["mel_wrong"]
        _check_inputs(cfg, mel, identity, real)
        _check_inputs(cfg, mel_wrong)
        fake = self.generator(mel, identity)  # (B, 3, T, S, S)

        # D: -log D(s_j, v_j) - 0.5 log(1 - D(s_j, v_hat)) - 0.5 log(1 - D(s_j, v_k))
        audio, audio_wrong = D.encode_audio(mel), D.encode_audio(mel_wrong)
        features_real = D.encode_video(real)
        logit_real = D.classify(audio, features_real).float()
        logit_fake = D.classify(audio, D.encode_video(fake.detach())).float()
        logit_wrong = D.classify(audio_wrong, features_real).float()
        d_loss = gan_loss(logit_real, True) + 0.5 * gan_loss(logit_fake, False) + 0.5 * gan_loss(logit_wrong, False)
        update(d_loss, "discriminator")
        logs = {"d/loss": d_loss.item(), "d/real": torch.sigmoid(logit_real).mean().item(),
                "d/fake": torch.sigmoid(logit_fake).mean().item(), "d/wrong": torch.sigmoid(logit_wrong).mean().item()}

        # G: w_corr l_corr + w_pix l_pix + w_perc l_perc + w_gan l_gen, D frozen
        with frozen(D):
            features_fake = D.encode_video(fake)
            logit = D.classify(D.encode_audio(mel), features_fake).float()
            terms = {"gan": (cfg.w_gan, gan_loss(logit, True))}
            if cfg.use_perc:
                with torch.no_grad():
                    features_real = D.encode_video(real)
                l_perc = sum(F.mse_loss(f.float(), r.float()) for f, r in zip(features_fake, features_real))
                terms["perc"] = (cfg.w_perc, l_perc)
            if cfg.use_pix:
                terms["l1"] = (cfg.w_pix, F.l1_loss(fake.float(), real))
            if cfg.use_corr:
                terms["corr"] = (cfg.w_corr, self.correlation.loss(mel, fake))
            g_loss = sum(w * l for w, l in terms.values())
            update(g_loss, "generator")
        logs.update({f"g/{k}": l.item() for k, (w, l) in terms.items()})
        logs["g/loss"] = g_loss.item()
        return logs

    @torch.no_grad()
    def validation_step(self, batch: dict) -> dict[str, float]:
        """L1, PSNR (pixels mapped to [0, 1]) and motion energy mean|v[t+1] - v[t]| of generated and real clips."""
        fake = self.generator(batch["mel"], batch["identity"]).float()
        real = batch["mouth"]
        mse = ((fake - real) / 2).pow(2).mean((1, 2, 3, 4)).clamp_min(1e-10)  # per clip
        logs = {"val/l1": F.l1_loss(fake, real).item(),
                "val/psnr": (10 * torch.log10(1 / mse)).mean().item(),
                "val/motion_fake": time_diff(fake).abs().mean().item(),
                "val/motion_real": time_diff(real).abs().mean().item()}
        if self.correlation is not None:
            logs["val/corr"] = self.correlation.loss(batch["mel"], fake).item()
        return logs

    @torch.no_grad()
    def sample(self, batch: dict) -> torch.Tensor:
        """Generated clips (B, 3, T, S, S) in [-1, 1] for sample grids."""
        return self.generator.generate(batch["mel"], batch["identity"]).float()

    @torch.no_grad()
    def generate(self, mel: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """(mel (B, 1, 4T, M), identity (B, 3, S, S)) -> lips (B, 3, T, S, S) in [-1, 1]."""
        return self.generator.generate(mel, identity)
