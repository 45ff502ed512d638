"""SyncNet: a lip-sync expert that embeds 5-frame mouth windows and their 0.2 s of audio.

Joon Son Chung, Andrew Zisserman. "Out of time: automated lip sync in the wild". ACCV 2016
workshops (Multi-view Lip-reading). Protocol reference: the expert discriminator of Wav2Lip,
K R Prajwal, Rudrabha Mukhopadhyay, Vinay Namboodiri, C V Jawahar, "A Lip Sync Expert Is All You
Need for Speech to Lip Generation In the Wild", ACM Multimedia 2020, arXiv:2008.10010.

lipgen has no pretrained SyncNet (none can be had offline), so it trains its own expert with this
file; lipgen.evaluation.sync turns it into LSE-D / LSE-C.

What follows the papers, and what is ours:
- Two streams, as in both papers: a mouth-window encoder (5 consecutive mouth crops, 0.2 s at
  25 fps) and an audio encoder over the matching 20 log-mel rows (5 frames x MELS_PER_FRAME), each
  ending in an embedding; sync distance = Euclidean distance between the L2-normalised embeddings
  (Wav2Lip normalises too; Chung & Zisserman do not), so distances lie in [0, 2].
- Grayscale input, as in SyncNet (Wav2Lip uses RGB lower faces): the expert judges mouth shape and
  motion, not colour, so a generator's colour drift does not move its sync score. The model takes
  RGB (B, 3, T, S, S) in [-1, 1] and converts it with BT.601 luma weights.
- Fully convolutional in time (ours): every time convolution is unpadded and the two 3-tap time
  convs (video) / 3-tap frame-step convs (audio) give each output exactly a 5-frame receptive
  field. A clip of T frames therefore yields the embeddings of all T - 4 windows in one pass, each
  identical to embedding that window alone; training on 25-frame items gives 21 windows per item.
- Objective (ours, in the spirit of both): a contrastive (InfoNCE) loss. For each mouth window the
  candidates are every audio window of the batch plus every window of the mismatched `mel_wrong`
  audio; the positive is the audio of the same frames. Negatives include audio of the same clip
  shifted by at least `min_shift` frames (shifts up to +-(n_frames - 5) inside an item), other
  clips' audio at any position, and other utterances (`mel_wrong`). Windows of the same clip closer
  than `min_shift` frames are left out (they overlap the positive by 3-4 of 5 frames). SyncNet used
  a contrastive margin loss on pairs with audio shifted up to +-2 s; Wav2Lip a BCE on cosine
  similarity of one in-sync or off-sync pair.
- Silence (ours): a mouth window silent in all 5 frames (from the word timings, `silent`) matches
  any silent audio, so for such an anchor the other silent audio windows of the batch are left out
  of its candidates, and so is `mel_wrong` (whose silence is unknown): it learns "closed mouth =
  silence, not speech" without being asked to tell one silence from another.
- Augmentation (ours): a random horizontal flip of each training item's mouth crops.

Shapes: B batch, T frames, S = image_size, M = n_mels, W = T - 4 windows, D = embed_dim.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..media import BT601_LUMA, MELS_PER_FRAME, N_MELS, SYNC_FRAMES
from .base import DataSpec, seeded
from .layers import conv2d, conv3d

SYNC_MELS = SYNC_FRAMES * MELS_PER_FRAME  # log-mel rows per sync window (20)


@dataclass
class SyncNetConfig:
    n_frames: int = 25  # frames per training item: W = 21 windows, audio shifts up to +-20 frames inside it
    # sizes
    image_size: int = 64  # mouth crop side, pixels
    n_mels: int = N_MELS
    video_channels: int = 16  # mouth encoder widths v, 2v, 4v, 8v
    audio_channels: int = 16  # audio encoder widths a, 2a, 4a, 8a
    embed_dim: int = 128  # D
    # objective
    min_shift: int = 2  # same-clip audio at least this many frames away is a negative; nearer is left out
    temperature: float = 0.1  # InfoNCE softmax temperature on cosine similarity
    flip: bool = True  # random horizontal flip of training mouths
    # optimisation
    lr: float = 1e-3  # Adam
    weight_decay: float = 0.0
    seed: int = 0  # initial weights are a function of the config

    def __post_init__(self):
        if self.image_size % 16:
            raise ValueError(f"image_size={self.image_size}: must be a multiple of 16 "
                             "(the mouth encoder halves it 4 times).")
        if self.min_shift < 1:
            raise ValueError(f"min_shift={self.min_shift}: must be at least 1 (shift 0 is the positive).")
        if self.n_frames < SYNC_FRAMES + self.min_shift:
            raise ValueError(f"n_frames={self.n_frames} leaves no shifted-audio negative: need n_frames >= "
                             f"{SYNC_FRAMES} + min_shift = {SYNC_FRAMES + self.min_shift}.")


PRESETS = {
    # 2 CPU cores: 0.63 M parameters; a step at batch 32 (32 x 21 windows) in bf16 with OMP_NUM_THREADS=1 takes
    # 0.45-1 s beside another training job; the shipped expert: 2600 steps at batch 32, about 22 minutes
    "cpu": SyncNetConfig(),
    # unit tests
    "tiny": SyncNetConfig(n_frames=12, video_channels=4, audio_channels=4, embed_dim=16),
}


def _check_inputs(cfg: SyncNetConfig, mouth: torch.Tensor | None = None, mel: torch.Tensor | None = None) -> None:
    S = cfg.image_size
    if mouth is not None and (mouth.dim() != 5 or mouth.shape[1] not in (1, 3) or tuple(mouth.shape[3:]) != (S, S)
                              or mouth.shape[2] < SYNC_FRAMES):
        raise ValueError(f"mouth has shape {tuple(mouth.shape)}, expected (B, 3, T, {S}, {S}) = (B, C, T, H, W) "
                         f"in [-1, 1] with T >= {SYNC_FRAMES} (grayscale (B, 1, T, {S}, {S}) also works).")
    if mel is not None and (mel.dim() != 4 or mel.shape[1] != 1 or mel.shape[3] != cfg.n_mels
                            or mel.shape[2] % MELS_PER_FRAME or mel.shape[2] < SYNC_MELS):
        raise ValueError(f"mel has shape {tuple(mel.shape)}, expected (B, 1, {MELS_PER_FRAME}T, {cfg.n_mels}): "
                         f"{MELS_PER_FRAME} log-mel rows per video frame, T >= {SYNC_FRAMES}.")


def to_gray(mouth: torch.Tensor) -> torch.Tensor:
    """(B, 3, T, S, S) RGB -> (B, 1, T, S, S) BT.601 luma, same range; grayscale input passes through."""
    if mouth.shape[1] == 1:
        return mouth
    w = mouth.new_tensor(BT601_LUMA).view(1, 3, 1, 1, 1)
    return (mouth * w).sum(1, keepdim=True)


def _bands(n: int, halvings: int) -> int:
    for _ in range(halvings):
        n = (n - 1) // 2 + 1  # kernel 3, stride 2, padding 1
    return n


class MouthEncoder(nn.Module):
    """Mouth crops (B, 3, T, S, S) in [-1, 1] -> unnormalised window features (B, D, W), W = T - 4."""

    def __init__(self, cfg: SyncNetConfig):
        super().__init__()
        v, S = cfg.video_channels, cfg.image_size
        self.net = nn.Sequential(  # (B, 1, T, S, S)
            conv3d(1, v, (3, 5, 5), (1, 2, 2), (0, 2, 2)),  # (B, v, T-2, S/2, S/2)
            conv3d(v, 2 * v, (3, 3, 3), (1, 2, 2), (0, 1, 1)),  # (B, 2v, T-4, S/4, S/4): 5-frame field
            conv3d(2 * v, 4 * v, (1, 3, 3), (1, 2, 2), (0, 1, 1)),  # (B, 4v, T-4, S/8, S/8)
            conv3d(4 * v, 8 * v, (1, 3, 3), (1, 2, 2), (0, 1, 1)),  # (B, 8v, T-4, S/16, S/16)
            nn.Conv3d(8 * v, cfg.embed_dim, (1, S // 16, S // 16)),  # (B, D, T-4, 1, 1)
        )

    def forward(self, mouth: torch.Tensor) -> torch.Tensor:
        return self.net(to_gray(mouth)).flatten(3).squeeze(3)  # (B, D, W)


class AudioEncoder(nn.Module):
    """Log-mel (B, 1, 4T, M) -> unnormalised window features (B, D, W), W = T - 4."""

    def __init__(self, cfg: SyncNetConfig):
        super().__init__()
        a = cfg.audio_channels
        self.net = nn.Sequential(  # (B, 1, 4T, M)
            conv2d(1, a, (MELS_PER_FRAME, 3), (MELS_PER_FRAME, 1), (0, 1)),  # (B, a, T, M): one step per frame
            conv2d(a, 2 * a, (1, 3), (1, 2), (0, 1)),  # (B, 2a, T, M/2)
            conv2d(2 * a, 4 * a, 3, (1, 2), (0, 1)),  # (B, 4a, T-2, M/4)
            conv2d(4 * a, 8 * a, 3, (1, 2), (0, 1)),  # (B, 8a, T-4, M/8): 5-frame field
            nn.Conv2d(8 * a, cfg.embed_dim, (1, _bands(cfg.n_mels, 3))),  # (B, D, T-4, 1)
        )

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.net(mel).squeeze(3)  # (B, D, W)


class SyncNet(nn.Module):
    """The sync expert and its training system (optimizers / training_step / validation_step)."""

    crop = "none"  # a judge: it makes nothing
    parts = ("mouth_encoder", "audio_encoder")
    capabilities = frozenset()

    def __init__(self, config: SyncNetConfig):
        super().__init__()
        self.config = config
        with seeded(config.seed):  # same config -> same initial weights
            self.mouth_encoder = MouthEncoder(config)
            self.audio_encoder = AudioEncoder(config)

    def data_spec(self) -> DataSpec:
        return DataSpec("windows", self.config.n_frames)

    # ------------------------------------------------------------------ inference

    def embed_video(self, mouth: torch.Tensor) -> torch.Tensor:
        """Mouth crops (B, 3, T, S, S) in [-1, 1], T >= 5 -> (B, T-4, D) unit vectors, row t = frames t..t+4."""
        _check_inputs(self.config, mouth=mouth)
        return F.normalize(self.mouth_encoder(mouth).float(), dim=1).transpose(1, 2)

    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, 1, 4T, M), T >= 5 -> (B, T-4, D) unit vectors, row t = mel rows 4t..4t+19 (frames t..t+4)."""
        _check_inputs(self.config, mel=mel)
        return F.normalize(self.audio_encoder(mel).float(), dim=1).transpose(1, 2)

    # ------------------------------------------------------------------ training

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"sync": torch.optim.Adam(self.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)}

    def _contrastive(self, batch: dict, flip: bool) -> tuple[torch.Tensor, dict, torch.Tensor, torch.Tensor]:
        """InfoNCE over all audio windows of the batch + mel_wrong. Returns (loss, logs, v, a) with v, a (B, W, D)."""
        cfg = self.config
        mouth, mel, mel_wrong = batch["mouth"], batch["mel"], batch["mel_wrong"]
        _check_inputs(cfg, mouth, mel)
        _check_inputs(cfg, mel=mel_wrong)
        if mel.shape[2] != mouth.shape[2] * MELS_PER_FRAME or mel_wrong.shape != mel.shape:
            raise ValueError(f"mouth {tuple(mouth.shape)}, mel {tuple(mel.shape)} and mel_wrong "
                             f"{tuple(mel_wrong.shape)} do not cover the same frames ({MELS_PER_FRAME} mel rows per frame).")
        B, T = mouth.shape[0], mouth.shape[2]
        W = T - SYNC_FRAMES + 1
        if flip:
            flipped = torch.rand(B, device=mouth.device) < 0.5
            mouth = torch.where(flipped[:, None, None, None, None], mouth.flip(-1), mouth)
        v = self.embed_video(mouth)  # (B, W, D)
        a = self.embed_audio(mel)  # (B, W, D)
        a_wrong = self.embed_audio(mel_wrong)  # (B, W, D)
        candidates = torch.cat([a.flatten(0, 1), a_wrong.flatten(0, 1)])  # (2BW, D)
        logits = v.flatten(0, 1) @ candidates.T / cfg.temperature  # (BW, 2BW)

        # same-clip audio nearer than min_shift frames (other than the positive itself) is no negative
        frame = self._frames(batch, B, W, mouth.device)  # (BW,) absolute first frame of each window
        clip = self._clip_codes(batch, B, mouth.device).repeat_interleave(W)  # (BW,)
        near = (clip[:, None] == clip[None, :]) & ((frame[:, None] - frame[None, :]).abs() < cfg.min_shift)
        # a silent window matches any silent audio: no silent (or unknown: mel_wrong) negatives for it
        silent = self._silent_windows(batch, B, W, mouth.device)  # (BW,)
        excluded = torch.cat([near | (silent[:, None] & silent[None, :]),
                              silent[:, None].expand(-1, B * W)], 1)  # (BW, 2BW)
        excluded[:, :B * W].fill_diagonal_(False)
        logits = logits.masked_fill(excluded, float("-inf"))
        target = torch.arange(B * W, device=mouth.device)
        loss = F.cross_entropy(logits, target)
        with torch.no_grad():
            speech = ~silent
            acc = (logits[speech].argmax(1) == target[speech]).float().mean().item() if speech.any() else float("nan")
            pos = (v - a).norm(dim=-1).flatten()
            logs = {"loss": loss.item(), "acc": acc, "d_pos": pos[speech].mean().item(),
                    "d_wrong": (v - a_wrong).norm(dim=-1).flatten()[speech].mean().item(),
                    "d_pos_silent": pos[silent].mean().item() if silent.any() else float("nan")}
        return loss, logs, v, a

    @staticmethod
    def _silent_windows(batch: dict, B: int, W: int, device) -> torch.Tensor:
        """(BW,) bool: windows whose 5 frames are all silent (all False without a `silent` entry)."""
        if "silent" not in batch:
            return torch.zeros(B * W, dtype=torch.bool, device=device)
        return batch["silent"].unfold(1, SYNC_FRAMES, 1).all(-1).flatten()

    @staticmethod
    def _frames(batch: dict, B: int, W: int, device) -> torch.Tensor:
        start = batch.get("start")
        start = torch.as_tensor(start, device=device).view(B) if start is not None else torch.zeros(B, device=device)
        return (start[:, None] + torch.arange(W, device=device)[None]).flatten()  # (BW,)

    @staticmethod
    def _clip_codes(batch: dict, B: int, device) -> torch.Tensor:
        """One integer per item, equal for items of the same clip (each item its own clip without ids)."""
        clips = batch.get("clip")
        if clips is None:
            return torch.arange(B, device=device)
        codes: dict[str, int] = {}
        return torch.tensor([codes.setdefault(c, len(codes)) for c in clips], device=device)

    def training_step(self, batch: dict, step: int, update) -> dict[str, float]:
        """One InfoNCE update of both encoders. update(loss, name) backpropagates and steps optimizer `name`."""
        loss, logs, _, _ = self._contrastive(batch, flip=self.config.flip)
        update(loss, "sync")
        return logs

    @torch.no_grad()
    def validation_step(self, batch: dict) -> dict[str, float]:
        """val/loss, val/acc, and sync accuracies inside each item's n_frames:

        val/acc (InfoNCE top-1) counts speech windows only;
        val/acc_window: share of non-silent windows whose own audio is nearer than every same-item audio
            window shifted by >= min_shift frames;
        val/acc_item: share of items where the mean distance per offset k (over the item's windows with
            audio t+k inside the item; k within +-(W // 2)) is smallest at k = 0, the LSE protocol in small.
        """
        loss, logs, v, a = self._contrastive(batch, flip=False)
        dist = torch.cdist(v, a)  # (B, W, W): mouth window i vs audio window j
        B, W = dist.shape[:2]
        i = torch.arange(W, device=dist.device)
        shift = (i[None, :] - i[:, None]).abs()  # (W, W)
        wrong = dist.masked_fill((shift < self.config.min_shift)[None], float("inf"))  # negatives only
        win_ok = dist.diagonal(dim1=1, dim2=2) < wrong.min(2).values  # (B, W)
        anchor = ~self._silent_windows(batch, B, W, dist.device).view(B, W)
        K = W // 2
        per_offset = torch.stack([dist.diagonal(k, dim1=1, dim2=2).mean(1) for k in range(-K, K + 1)], 1)  # (B, 2K+1)
        return {"val/loss": logs["loss"], "val/acc": logs["acc"],
                "val/acc_window": win_ok[anchor].float().mean().item() if anchor.any() else float("nan"),
                "val/acc_item": (per_offset.argmin(1) == K).float().mean().item()}
