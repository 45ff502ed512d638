"""DAVS: talking faces from a person-ID and a word-ID learnt from audio and video, adversarially disentangled.

Hang Zhou, Yu Liu, Ziwei Liu, Ping Luo, Xiaogang Wang.
"Talking Face Generation by Adversarially Disentangled Audio-Visual Representation". AAAI 2019. arXiv:1807.07860.

A talking face = who (person-ID, from one face image) + what is said (word-ID, from audio OR video).
Sub-modules, named as the paper names them:
    E_p    PersonIDEncoder     face image (B, 3, S, S) -> person-ID (B, P) + skip maps for the generator
    E_w_v  VisualWordEncoder   mouth clip (B, 3, T, 64, 64) -> per-frame word features (B, T, D)
    E_w_a  AudioWordEncoder    log-mel (B, 1, 4T, M) -> per-frame word features (B, T, D)
    C_w    WordClassifier      word-ID (B, D) -> word logits (B, V), shared by both modalities
    D_dom  DomainDiscriminator per-frame word feature (N, D) -> logit "came from audio"
    C_p    AdversaryClassifier person-ID of a frame of the word -> word logits (adversary of E_p)
    C_s    AdversaryClassifier word-ID (B, D) -> speaker logits (adversary of E_w_v, E_w_a)
    G      Generator           (person-ID, skips, word feature of frame t) -> frame t (B, 3, T, S, S)
    D_f    FrameDiscriminator  single frames -> patch logits
    D_seq  SequenceDiscriminator  clips -> logits over short (5-frame) space-time patches

What follows the paper, what follows the authors' code (github.com/Hangz-nju-cuhk/Talking-Face-Generation-DAVS)
and what is ours:
- Paper: the two ID spaces; one word classifier shared by audio and visual word-IDs; the L2 contrastive
  loss with margin 1 between matched audio/visual word-IDs; a domain-adversarial discriminator on the
  word-ID features that the encoders learn to fool; a word classifier on person-ID features that is
  trained normally while E_p is trained to make its prediction uniform; generation of each frame from
  (person-ID, word-ID) through either modality; frame GAN and short-sequence GAN; L1 on the whole frame
  plus a heavier L1 on the mouth region.
- Authors' code: per-frame word features (B, T, 256) from both encoders; the domain discriminator sees
  per-frame features and the encoders fool it with flipped labels (weight 5); every frame is generated
  from BOTH its video and its audio word feature and both are compared with the real frame; the person-ID
  adversary sees person-IDs of frames of the word clip itself (so E_p must not encode the mouth shape it
  is shown); L1 weights 4 (frame) and 8 (mouth region, 1/8 of the frame), in 0-255 pixel units: the
  "paper" preset's w_l1 = 4 * 127.5 and w_mouth = 8 / 8 * 127.5 are those weights for [-1, 1] images
  and a mouth L1 that is the mean over the mouth box. The generator has one skip connection from E_p's
  feature maps (as the authors' decoder); ours has two (S/4 and S/2).
- Ours:
  * The word-ID is the time mean of the per-frame features, (B, D); classification, the contrastive
    loss, the speaker adversary and retrieval use it; the generator uses the per-frame features.
  * Contrastive loss on L2-normalised word-IDs, pairs from the batch: (audio i, video i) are matched,
    (audio i, video j) with a different word are mismatched, pairs with the same word are left out
    (GRID's 51 words repeat often in a batch). mel_wrong is not used.
  * Person-ID consistency (w_pid_consistency, on in "cpu"): person-IDs of the identity image and of frames
    of the word, all from one clip, are pulled together, those of other clips pushed apart (the contrastive
    loss, on L2-normalised person-IDs). The uniformity adversary alone left the word readable from
    person-ID by a fresh linear probe (53% on held-out words): it fools the one classifier it trains against.
    With this term: 12% (chance 2%); what is left is mostly the word's place in GRID's sentence (probably
    head pose over the utterance): within a slot the probe is at or below that slot's chance.
  * C_p reads the word from each frame's person-ID alone, as the disentanglement probe does.
  * Lip reading from both modalities sums their log-probabilities with one learnt weight each
    (WordClassifier.fuse, trained on detached logits), so the weaker video cannot overrule the audio.
  * Silence items (DataSpec silences, on in "cpu" by DATA_PRESETS): the dataset adds windows centred in
    long pauses (word NO_WORD: no class, no same-word contrastive pairs), trained for generation like
    words. With word windows only, the generator never saw a closed mouth in silence and left it open
    (opening 0.104 vs 0.064 real).
  * Uniformity loss = cross-entropy to the uniform distribution, -1/K sum_k log p_k, minimal (= log K)
    at uniform predictions; the authors used 1e6 * MSE(softmax, uniform).
  * The speaker adversary (the symmetric disentanglement the paper describes but does not detail) is
    used only for batches with at least two speakers (with one there is no identity to remove, and the
    classifier would only learn its bias), and the encoders make C_s uniform over the batch's speakers
    (uniform over all n_speakers is out of reach when most never occur). GRID: s1 has .align timings,
    s4 and the others are timed by forced alignment in preprocessing (lipgen.data.align).
  * Networks are small conv nets of our own (the authors' visual encoder is a pretrained face-alignment
    network, unavailable offline). Images: the aligned face at image_size (128 in "paper", where the
    authors used 256; 64 in "cpu", downsampled from lipgen's 128 face crop by area averaging). The mouth
    box is fixed: the template lip landmarks 48-67 plus MOUTH_BOX_MARGIN mouth widths on each side.
  * identity_skip (off in "paper"): output = tanh(decoder + atanh(identity image)), so the model starts
    from the identity face and learns the changes; it helps small models keep the identity.
  * both_sources=False (cpu): even items of the batch are generated from video, odd ones from audio,
    instead of every item from both (half the generator cost). d_frames > 0: the frame discriminator sees
    d_frames frames per clip (a different evenly spaced set each step) instead of all T.
  * GAN losses are the non-saturating BCE ones, unconditional (the authors' D also saw the audio).

Shapes: B batch, T frames, S = image_size, M = n_mels, D = embedding_size, P = pid_size, V = vocabulary_size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..face import FACE_SIZE, MOUTH, MOUTH_SIZE, template
from ..media import MELS_PER_FRAME, N_MELS
from .base import DRIVEN, NO_WORD, READS_WORDS, WORD_FRAMES, DataSpec, frozen, gan_loss, seeded, window_seams
from .layers import conv2d, conv3d

assert MELS_PER_FRAME == 4, "the audio encoder's two time strides of 2 assume 4 mel rows per video frame"

MOUTH_BOX_MARGIN = 0.3  # mouth widths added on every side of the template's lip landmarks
GRID_SPEAKERS = 34  # GRID speakers s1..s34 (s21 has no video)


@dataclass
class DAVSConfig:
    n_frames: int = WORD_FRAMES  # frames per word window (0.48 s at 25 fps)
    # sizes
    image_size: int = 128  # S: side of the generated face, a power of two >= 32 (the authors: 256)
    n_mels: int = N_MELS
    vocabulary_size: int = 51  # V: words of the training corpus, set by lipgen train (GRID: 51; the paper: LRW's 500)
    n_speakers: int = GRID_SPEAKERS
    embedding_size: int = 256  # D: word-ID size (paper)
    pid_size: int = 256  # P: person-ID size (authors' code)
    pid_channels: int = 64  # E_p widths p, 2p, 4p, 8p (capped at 8p)
    visual_channels: int = 64  # E_w_v widths v, 2v, 4v, 8v
    audio_channels: int = 64  # E_w_a widths a, 2a, 4a, 8a
    gen_channels: int = 64  # G widths 8g at 4x4 down to g at S
    d_channels: int = 64  # D_f, D_seq widths d, 2d, 4d, 8d
    adversary_hidden: int = 256  # hidden width of D_dom, C_p, C_s
    disentangle_frames: int = 3  # frames of the word clip whose person-IDs C_p sees
    identity_skip: bool = False  # ours: output = tanh(decoder + atanh(identity))
    both_sources: bool = True  # every frame generated from both video and audio word features
    d_frames: int = 0  # frames per clip shown to D_f; 0 = all
    # loss weights
    w_class: float = 1.0  # cross-entropy of C_w, each modality
    w_contrastive: float = 1.0
    margin: float = 1.0  # contrastive margin on L2-normalised word-IDs
    w_domain: float = 5.0  # encoders fooling D_dom (authors: 5)
    w_pid_uniform: float = 1.0  # E_p making C_p uniform
    w_pid_consistency: float = 0.0  # ours: person-IDs of frames of one clip together, of other clips apart
    w_speaker_uniform: float = 1.0  # E_w_v, E_w_a making C_s uniform
    w_l1: float = 4 * 127.5  # L1 on the whole frame (authors: 4, in 0-255 pixel units)
    w_mouth: float = 127.5  # L1 on the mouth box, mean over the box (authors: 8 over 1/8 of the frame)
    w_frame_gan: float = 1.0
    w_seq_gan: float = 1.0
    # optimisation
    lr: float = 2e-4  # encoders, classifier, generator (authors: Adam 2e-4)
    lr_d: float = 2e-4  # all adversaries
    beta1: float = 0.5
    beta2: float = 0.999
    seed: int = 0  # initial weights are a function of the config

    def __post_init__(self):
        s = self.image_size
        if s < 32 or s & (s - 1):
            raise ValueError(f"image_size={s}: must be a power of two, at least 32 (the generator doubles 4x4).")
        if not 1 <= self.disentangle_frames <= self.n_frames:
            raise ValueError(f"disentangle_frames={self.disentangle_frames}: must be in 1..n_frames={self.n_frames}.")
        if self.n_mels < 16:
            raise ValueError(f"n_mels={self.n_mels}: the audio encoder needs at least 16 mel bands.")


PRESETS = {
    # the paper's sizes (256-d IDs), authors' loss weights, 128 px faces: 30.3 M encoder + generator
    # parameters, 6.3 M in the adversaries
    "paper": DAVSConfig(),
    # 2 CPU cores: 64 px faces, half the generator work, small nets. 1.9 M encoder + generator parameters,
    # 0.5 M adversaries; a step at batch 8 is 64 GFLOP (Glance "cpu": 142) and took 0.95 s in bf16 on one
    # thread of a busy 2-core machine where Glance "cpu" took 1.37 s (0.38 s on 2 free cores): about 0.3 s
    "cpu": DAVSConfig(image_size=64, embedding_size=128, pid_size=128, pid_channels=16, visual_channels=16,
                      audio_channels=16, gen_channels=12, d_channels=16, adversary_hidden=128,
                      identity_skip=True, both_sources=False, d_frames=4, w_domain=1.0, w_l1=10.0,
                      w_mouth=10.0, w_frame_gan=0.5, w_seq_gan=0.5, w_pid_consistency=1.0,
                      lr=5e-4, lr_d=2e-4),
    # unit tests
    "tiny": DAVSConfig(image_size=32, embedding_size=16, pid_size=16, pid_channels=4, visual_channels=4,
                       audio_channels=4, gen_channels=4, d_channels=4, adversary_hidden=16,
                       identity_skip=True, both_sources=False, d_frames=2, w_domain=1.0, w_l1=10.0,
                       w_mouth=10.0, w_frame_gan=0.5, w_seq_gan=0.5, w_pid_consistency=1.0),
}
# what a preset trains on beyond data_spec() (DataSpec fields; lipgen train applies them, then --set)
DATA_PRESETS = {"cpu": {"silences": True}}  # pause windows too: closed mouths in silence


# ----------------------------------------------------------------------------------------------- geometry


def mouth_box(size: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) pixel bounds of the mouth box in a size x size aligned face, for
    x[..., top:bottom, left:right]: the template's lip landmarks (48-67) plus MOUTH_BOX_MARGIN mouth widths."""
    lips = template()[MOUTH] * (size / FACE_SIZE)  # (20, 2) x, y
    pad = MOUTH_BOX_MARGIN * (lips[:, 0].max() - lips[:, 0].min())
    (x0, y0), (x1, y1) = lips.min(0) - pad, lips.max(0) + pad
    return max(0, math.floor(y0)), min(size, math.ceil(y1)), max(0, math.floor(x0)), min(size, math.ceil(x1))


def to_image_size(images: torch.Tensor, size: int) -> torch.Tensor:
    """Area-downsample faces (B, 3, H, W) or clips (B, 3, T, H, W) to size x size (H = W, a multiple of size)."""
    h = images.shape[-1]
    if h == size:
        return images
    if images.shape[-2] != h or h % size:
        raise ValueError(f"faces of {tuple(images.shape[-2:])} px cannot be area-downsampled to {size} px: "
                         f"give square faces whose side is a multiple of {size} (lipgen's are {FACE_SIZE}).")
    if images.dim() == 4:
        return F.avg_pool2d(images, h // size)
    B, C, T = images.shape[:3]
    small = F.avg_pool2d(images.transpose(1, 2).reshape(B * T, C, h, h), h // size)  # (B*T, C, size, size)
    return small.reshape(B, T, C, size, size).transpose(1, 2)


def _check(cfg: DAVSConfig, mouth: torch.Tensor | None = None, mel: torch.Tensor | None = None,
           face: torch.Tensor | None = None) -> None:
    """Shape checks; T may be any length >= 1 (the encoders are convolutional in time) but must agree."""
    T = None
    if mouth is not None:
        if mouth.dim() != 5 or mouth.shape[1] != 3 or tuple(mouth.shape[3:]) != (MOUTH_SIZE, MOUTH_SIZE):
            raise ValueError(f"mouth has shape {tuple(mouth.shape)}, expected (B, 3, T, {MOUTH_SIZE}, {MOUTH_SIZE}): "
                             "lipgen mouth crops in [-1, 1].")
        T = mouth.shape[2]
    if mel is not None:
        if mel.dim() != 4 or mel.shape[1] != 1 or mel.shape[3] != cfg.n_mels or mel.shape[2] % MELS_PER_FRAME:
            raise ValueError(f"mel has shape {tuple(mel.shape)}, expected (B, 1, {MELS_PER_FRAME}T, {cfg.n_mels}): "
                             f"{MELS_PER_FRAME} log-mel rows per video frame.")
        if T is not None and mel.shape[2] != MELS_PER_FRAME * T:
            raise ValueError(f"mel has {mel.shape[2]} rows for {T} video frames: expected {MELS_PER_FRAME * T}.")
    S = cfg.image_size
    if face is not None and (face.dim() != 4 or tuple(face.shape[1:]) != (3, S, S)):
        raise ValueError(f"face_identity has shape {tuple(face.shape)}, expected (B, 3, {S}, {S}): one aligned face "
                         f"in [-1, 1] at this model's image_size (lipgen's 128 px faces: use to_image_size).")


# ----------------------------------------------------------------------------------------------- encoders


def _width(base: int, size: int, resolution: int) -> int:
    """Channels at a resolution: base at full size, doubling per halving, capped at 8 * base."""
    return min(8 * base, base * size // resolution)


class PersonIDEncoder(nn.Module):
    """E_p: face (B, 3, S, S) -> person-ID (B, P), skip maps {S/2: (B, c, S/2, S/2), S/4: (B, c', S/4, S/4)}."""

    def __init__(self, cfg: DAVSConfig):
        super().__init__()
        S, p = cfg.image_size, cfg.pid_channels
        self.stem = conv2d(3, p, 7, 1, 3)  # (B, p, S, S)
        self.downs = nn.ModuleList()
        r = S
        while r > 4:  # halve to 4x4
            self.downs.append(conv2d(_width(p, S, r), _width(p, S, r // 2), 4, 2, 1))
            r //= 2
        self.head = nn.Linear(_width(p, S, 4) * 16, cfg.pid_size)  # (B, 8p * 16) -> (B, P)
        self.skip_sizes = (S // 2, S // 4)

    def forward(self, face: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        x = self.stem(face)
        skips = {}
        for down in self.downs:
            x = down(x)
            if x.shape[-1] in self.skip_sizes:
                skips[x.shape[-1]] = x
        return self.head(x.flatten(1)), skips  # (B, P), {r: (B, c_r, r, r)}


def _temporal(c_in: int, D: int) -> nn.Sequential:
    """(B, c_in, T) -> (B, D, T): two time convs of kernel 3, the last linear (per-frame word features)."""
    return nn.Sequential(nn.Conv1d(c_in, D, 3, 1, 1, bias=False), nn.BatchNorm1d(D), nn.ReLU(inplace=True),
                         nn.Conv1d(D, D, 3, 1, 1))


class VisualWordEncoder(nn.Module):
    """E_w_v: mouth clip (B, 3, T, 64, 64) -> per-frame word features (B, T, D)."""

    def __init__(self, cfg: DAVSConfig):
        super().__init__()
        v = cfg.visual_channels
        self.front = conv3d(3, v, (3, 5, 5), (1, 2, 2), (1, 2, 2))  # (B, v, T, 32, 32): the only time mixing in pixels
        self.trunk = nn.Sequential(  # per frame, (B*T, v, 32, 32)
            conv2d(v, 2 * v, 3, 2, 1),  # (B*T, 2v, 16, 16)
            conv2d(2 * v, 4 * v, 3, 2, 1),  # (B*T, 4v, 8, 8)
            conv2d(4 * v, 8 * v, 3, 2, 1),  # (B*T, 8v, 4, 4)
        )
        self.temporal = _temporal(8 * v, cfg.embedding_size)

    def forward(self, mouth: torch.Tensor) -> torch.Tensor:
        x = self.front(mouth)  # (B, v, T, 32, 32)
        B, C, T = x.shape[:3]
        x = self.trunk(x.transpose(1, 2).reshape(B * T, C, *x.shape[3:])).mean((2, 3))  # (B*T, 8v)
        return self.temporal(x.reshape(B, T, -1).transpose(1, 2)).transpose(1, 2)  # (B, T, D)


class AudioWordEncoder(nn.Module):
    """E_w_a: log-mel (B, 1, 4T, M) -> per-frame word features (B, T, D); frame t <- mel rows 4t..4t+3 (+ context)."""

    def __init__(self, cfg: DAVSConfig):
        super().__init__()
        a, M = cfg.audio_channels, cfg.n_mels
        self.convs = nn.Sequential(
            conv2d(1, a, 3, (1, 2), 1),  # (B, a, 4T, M/2)
            conv2d(a, 2 * a, 3, 2, 1),  # (B, 2a, 2T, M/4)
            conv2d(2 * a, 4 * a, 3, 2, 1),  # (B, 4a, T, M/8)
            conv2d(4 * a, 8 * a, 3, (1, 2), 1),  # (B, 8a, T, M/16)
        )
        bands = M
        for _ in range(4):
            bands = (bands - 1) // 2 + 1
        self.temporal = _temporal(8 * a * bands, cfg.embedding_size)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.convs(mel)  # (B, 8a, T, F)
        x = x.permute(0, 1, 3, 2).flatten(1, 2)  # (B, 8a * F, T)
        return self.temporal(x).transpose(1, 2)  # (B, T, D)


class WordClassifier(nn.Module):
    """C_w: word-ID (B, D) -> logits (B, V); one classifier for audio and video word-IDs.

    fuse() combines the two modalities' predictions as a weighted sum of their log-probabilities, with one
    learnt weight per modality (ours): a plain mean lets the weaker modality (video) overrule the stronger."""

    def __init__(self, cfg: DAVSConfig):
        super().__init__()
        self.fc = nn.Sequential(nn.Dropout(0.2), nn.Linear(cfg.embedding_size, cfg.vocabulary_size))
        self.log_fusion_weights = nn.Parameter(torch.zeros(2))  # (video, audio), exp() > 0; 0 = equal weights

    def forward(self, word_id: torch.Tensor) -> torch.Tensor:
        return self.fc(word_id)

    def fuse(self, logits_video: torch.Tensor, logits_audio: torch.Tensor) -> torch.Tensor:
        """(B, V), (B, V) -> fused logits (B, V) = w_v log p_v + w_a log p_a."""
        w = self.log_fusion_weights.exp()
        return w[0] * F.log_softmax(logits_video.float(), 1) + w[1] * F.log_softmax(logits_audio.float(), 1)


def _mlp(c_in: int, hidden: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(c_in, hidden), nn.LeakyReLU(0.2, inplace=True),
                         nn.Linear(hidden, hidden), nn.LeakyReLU(0.2, inplace=True), nn.Linear(hidden, c_out))


class DomainDiscriminator(nn.Module):
    """D_dom: word features (N, D) -> logit (N,) that a feature came from audio (1) rather than video (0)."""

    def __init__(self, cfg: DAVSConfig):
        super().__init__()
        self.net = _mlp(cfg.embedding_size, cfg.adversary_hidden, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).squeeze(-1)

    def loss(self, audio: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        """The discriminator's BCE: audio features labelled 1, video features 0. (N, D), (N, D) -> ()."""
        return 0.5 * (gan_loss(self(audio), True) + gan_loss(self(video), False))

    def confusion_loss(self, audio: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        """The encoders' loss: the same BCE with the labels flipped (authors' code)."""
        return 0.5 * (gan_loss(self(audio), False) + gan_loss(self(video), True))


class AdversaryClassifier(nn.Module):
    """C_p, person-ID of one frame of a word clip (N, P) -> word logits (N, V), and C_s, word-ID (B, D) ->
    speaker logits (B, n_speakers): a 3-layer MLP each."""

    def __init__(self, c_in: int, hidden: int, classes: int):
        super().__init__()
        self.net = _mlp(c_in, hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# ----------------------------------------------------------------------------------------------- generator


class Generator(nn.Module):
    """G: person-ID (B, P) + E_p skips + per-frame word features (B, T, D) -> frames (B, 3, T, S, S) in [-1, 1].

    Each frame is drawn alone from (person-ID, its word feature): 4x4 from a linear layer, then nearest
    2x upsampling + 3x3 conv up to S, with E_p's maps concatenated at S/4 and S/2.
    """

    def __init__(self, cfg: DAVSConfig):
        super().__init__()
        self.config = cfg
        S, g, p = cfg.image_size, cfg.gen_channels, cfg.pid_channels
        self.fc = nn.Linear(cfg.pid_size + cfg.embedding_size, _width(g, S, 4) * 16, bias=False)
        self.fc_norm = nn.Sequential(nn.BatchNorm2d(_width(g, S, 4)), nn.ReLU(inplace=True))
        self.ups = nn.ModuleList()
        r = 4
        while r < S:
            skip = _width(p, S, 2 * r) if 2 * r in (S // 2, S // 4) else 0
            self.ups.append(conv2d(_width(g, S, r) + skip, _width(g, S, 2 * r), 3, 1, 1))
            r *= 2
        self.out = nn.Conv2d(g, 3, 3, 1, 1)
        if cfg.identity_skip:  # start from the identity image exactly
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, pid: torch.Tensor, skips: dict[int, torch.Tensor], words: torch.Tensor,
                identity: torch.Tensor | None = None) -> torch.Tensor:
        B, T, _ = words.shape

        def per_frame(x):  # (B, ...) -> (B*T, ...), the same for every frame
            return x[:, None].expand(B, T, *x.shape[1:]).reshape(B * T, *x.shape[1:])

        z = torch.cat([per_frame(pid), words.reshape(B * T, -1)], 1)  # (B*T, P + D)
        x = self.fc_norm(self.fc(z).reshape(B * T, -1, 4, 4))  # (B*T, 8g, 4, 4)
        for up in self.ups:
            x = F.interpolate(x, scale_factor=2, mode="nearest")  # (B*T, c, 2r, 2r)
            if x.shape[-1] in skips:
                x = torch.cat([x, per_frame(skips[x.shape[-1]]).to(x.dtype)], 1)
            x = up(x)
        x = self.out(x)  # (B*T, 3, S, S)
        if self.config.identity_skip:
            x = x + per_frame(torch.atanh(identity.clamp(-0.999, 0.999)))
        S = x.shape[-1]
        return torch.tanh(x).reshape(B, T, 3, S, S).transpose(1, 2)  # (B, 3, T, S, S)


class FrameDiscriminator(nn.Module):
    """D_f: frames (N, 3, S, S) -> patch logits (N, S/16 * S/16)."""

    def __init__(self, cfg: DAVSConfig):
        super().__init__()
        d = cfg.d_channels
        self.net = nn.Sequential(
            conv2d(3, d, 4, 2, 1, norm=False, act="lrelu"),  # (N, d, S/2, S/2)
            conv2d(d, 2 * d, 4, 2, 1, norm=False, act="lrelu"),  # (N, 2d, S/4, S/4)
            conv2d(2 * d, 4 * d, 4, 2, 1, norm=False, act="lrelu"),  # (N, 4d, S/8, S/8)
            conv2d(4 * d, 8 * d, 4, 2, 1, norm=False, act="lrelu"),  # (N, 8d, S/16, S/16)
            nn.Conv2d(8 * d, 1, 3, 1, 1),  # (N, 1, S/16, S/16)
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(frames).flatten(1)


class SequenceDiscriminator(nn.Module):
    """D_seq: clips (B, 3, T, S, S) -> logits (B, T * S/16 * S/16), each judging a 5-frame space-time patch
    (two time convs of kernel 3, then per-frame layers): short sequences, as in the paper."""

    def __init__(self, cfg: DAVSConfig):
        super().__init__()
        d = cfg.d_channels
        self.net = nn.Sequential(
            conv3d(3, d, (3, 4, 4), (1, 2, 2), 1, norm=False, act="lrelu"),  # (B, d, T, S/2, S/2)
            conv3d(d, 2 * d, (3, 4, 4), (1, 2, 2), 1, norm=False, act="lrelu"),  # (B, 2d, T, S/4, S/4)
            conv3d(2 * d, 4 * d, (1, 4, 4), (1, 2, 2), (0, 1, 1), norm=False, act="lrelu"),  # (B, 4d, T, S/8, S/8)
            conv3d(4 * d, 8 * d, (1, 4, 4), (1, 2, 2), (0, 1, 1), norm=False, act="lrelu"),  # (B, 8d, T, S/16, S/16)
            nn.Conv3d(8 * d, 1, (1, 3, 3), 1, (0, 1, 1)),  # (B, 1, T, S/16, S/16)
        )

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.net(clips).flatten(1)


# ----------------------------------------------------------------------------------------------- losses


def contrastive_loss(x: torch.Tensor, y: torch.Tensor, match: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """The paper's L2 contrastive loss over N pairs (x_n, y_n), each (N, D), match (N,) 1 or 0:
        1/(2N) sum_n [ match_n d_n^2 + (1 - match_n) max(margin - d_n, 0)^2 ],  d_n = |x_n - y_n|_2.
    Matched pairs are pulled together, mismatched ones pushed at least `margin` apart."""
    d2 = (x.float() - y.float()).pow(2).sum(1)  # (N,) squared distances
    d = d2.clamp_min(1e-12).sqrt()  # floored: the gradient of |x - y| is undefined at 0
    match = match.float()
    return (match * d2 + (1 - match) * (margin - d).clamp_min(0).pow(2)).sum() / (2 * len(d))


def pid_consistency_loss(pid: torch.Tensor, pid_frames: torch.Tensor, clip: torch.Tensor,
                         margin: float = 1.0) -> torch.Tensor:
    """Ours: who someone is does not change while they speak. pid (B, P): person-IDs of the items' identity
    images; pid_frames (B*k, P): of k frames of each item's word; clip (B,): clip index of each item.
    The contrastive loss on L2-normalised person-IDs over every (identity i, frame j) pair: pulled together
    when both come from one clip, pushed `margin` apart when not. Mouth shape (and so the word) then
    cannot be in person-ID, and person-ID cannot collapse to a constant."""
    k = len(pid_frames) // len(pid)
    frame_clip = clip.repeat_interleave(k)
    rows, cols = torch.meshgrid(torch.arange(len(pid)), torch.arange(len(pid_frames)), indexing="ij")
    rows, cols = rows.flatten().to(pid.device), cols.flatten().to(pid.device)
    return contrastive_loss(F.normalize(pid.float(), dim=1)[rows], F.normalize(pid_frames.float(), dim=1)[cols],
                            clip[rows] == frame_clip[cols], margin)


def word_loss(logits: torch.Tensor, word: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the items that say a word (label != NO_WORD); 0 if none do."""
    spoken = word != NO_WORD
    if not spoken.any():
        return logits.float().sum() * 0
    return F.cross_entropy(logits[spoken].float(), word[spoken])


def uniformity_loss(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of softmax(logits) (N, K) to the uniform distribution, -1/K sum_k log p_k, mean over N.
    Equals KL(uniform || p) + log K: minimal, log K, exactly when the prediction is uniform."""
    return -F.log_softmax(logits.float(), -1).mean(-1).mean()


def _batch_pairs(word: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row, column indices of the (audio i, video j) pairs the contrastive loss uses: i == j (matched), and
    i != j with different words (mismatched); same-word pairs of different items are left out."""
    same = word[:, None] == word[None, :]  # (B, B)
    eye = torch.eye(len(word), dtype=torch.bool, device=word.device)
    return (eye | ~same).nonzero(as_tuple=True)


def _frame_indices(T: int, k: int, offset: int = 0, centre: bool = False) -> torch.Tensor:
    """k evenly spaced frame indices in 0..T-1, shifted by offset; with centre=True, in the window's middle half."""
    if centre:
        return torch.tensor([T // 4 + (T - T // 2) * (2 * i + 1) // (2 * k) for i in range(k)])
    return torch.tensor([(offset + i * T // k) % T for i in range(k)])


def _frames(clips: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """(B, 3, T, H, W), k indices -> (B*k, 3, H, W)."""
    x = clips[:, :, idx.to(clips.device)].transpose(1, 2)  # (B, k, 3, H, W)
    return x.reshape(-1, *x.shape[2:])


# ----------------------------------------------------------------------------------------------- system


class DAVS(nn.Module):
    """The training system and the inference API (word_logits, embed_video/audio, generate_from_audio/video).

    Call .eval() before inference (BatchNorm)."""

    crop = "face"  # aligned faces, made in word windows of n_frames and brought to 128 px
    parts = ("pid_encoder", "visual_encoder", "audio_encoder", "word_classifier", "generator")
    capabilities = frozenset({DRIVEN, READS_WORDS})

    def __init__(self, config: DAVSConfig):
        super().__init__()
        self.config = config
        with seeded(config.seed):  # same config -> same initial weights
            self.pid_encoder = PersonIDEncoder(config)  # E_p
            self.visual_encoder = VisualWordEncoder(config)  # E_w_v
            self.audio_encoder = AudioWordEncoder(config)  # E_w_a
            self.word_classifier = WordClassifier(config)  # C_w
            self.generator = Generator(config)  # G
            self.domain_discriminator = DomainDiscriminator(config)  # D_dom
            self.pid_word_classifier = AdversaryClassifier(config.pid_size, config.adversary_hidden,
                                                           config.vocabulary_size)  # C_p
            self.speaker_classifier = AdversaryClassifier(config.embedding_size, config.adversary_hidden,
                                                          config.n_speakers)  # C_s
            self.frame_discriminator = FrameDiscriminator(config)  # D_f
            self.sequence_discriminator = SequenceDiscriminator(config)  # D_seq
        self.mouth_box = mouth_box(config.image_size)

    def data_spec(self) -> DataSpec:
        # one window per timed word (its word and speaker labels) with the aligned faces the generator draws
        return DataSpec("words", self.config.n_frames, faces=True)

    def seams(self, n_frames: int) -> list[int]:
        return window_seams(self.config.n_frames, n_frames)

    def generator_modules(self) -> list[nn.Module]:
        return [self.pid_encoder, self.visual_encoder, self.audio_encoder, self.word_classifier, self.generator]

    def adversary_modules(self) -> list[nn.Module]:
        return [self.domain_discriminator, self.pid_word_classifier, self.speaker_classifier,
                self.frame_discriminator, self.sequence_discriminator]

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg = self.config
        betas = (cfg.beta1, cfg.beta2)
        return {"discriminator": torch.optim.Adam([p for m in self.adversary_modules() for p in m.parameters()],
                                                  lr=cfg.lr_d, betas=betas),
                "generator": torch.optim.Adam([p for m in self.generator_modules() for p in m.parameters()],
                                              lr=cfg.lr, betas=betas)}

    # ---- inference API

    def word_features(self, mouth: torch.Tensor | None = None, mel: torch.Tensor | None = None):
        """Per-frame word features (B, T, D) of the video and/or the audio (None for the one not given)."""
        _check(self.config, mouth=mouth, mel=mel)
        return (None if mouth is None else self.visual_encoder(mouth),
                None if mel is None else self.audio_encoder(mel))

    @torch.no_grad()
    def word_logits(self, mouth: torch.Tensor | None = None, mel: torch.Tensor | None = None) -> torch.Tensor:
        """Word logits (B, V) over self.vocabulary from mouth (B, 3, T, 64, 64), mel (B, 1, 4T, M), or both
        (then the learnt fusion of the two, WordClassifier.fuse)."""
        if mouth is None and mel is None:
            raise ValueError("word_logits needs mouth, mel, or both.")
        logits = [None if f is None else self.word_classifier(f.mean(1)).float() for f in self.word_features(mouth, mel)]
        if None in logits:
            return logits[0] if logits[1] is None else logits[1]
        return self.word_classifier.fuse(*logits)

    @torch.no_grad()
    def embed_video(self, mouth: torch.Tensor) -> torch.Tensor:
        """L2-normalised word-ID (B, D) of mouth clips (B, 3, T, 64, 64), for audio-video retrieval."""
        return F.normalize(self.word_features(mouth=mouth)[0].mean(1).float(), dim=1)

    @torch.no_grad()
    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """L2-normalised word-ID (B, D) of log-mel windows (B, 1, 4T, M), for audio-video retrieval."""
        return F.normalize(self.word_features(mel=mel)[1].mean(1).float(), dim=1)

    def _generate(self, words: torch.Tensor, face_identity: torch.Tensor) -> torch.Tensor:
        _check(self.config, face=face_identity)
        pid, skips = self.pid_encoder(face_identity)
        return self.generator(pid, skips, words, face_identity)

    @torch.no_grad()
    def generate_from_audio(self, mel: torch.Tensor, face_identity: torch.Tensor) -> torch.Tensor:
        """(B, 1, 4T, M), face (B, 3, S, S) -> talking face (B, 3, T, S, S) in [-1, 1]."""
        return self._generate(self.word_features(mel=mel)[1], face_identity).float()

    @torch.no_grad()
    def generate_from_video(self, mouth: torch.Tensor, face_identity: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, 64, 64) mouth clip of anyone, face (B, 3, S, S) -> that face saying it, (B, 3, T, S, S)."""
        return self._generate(self.word_features(mouth=mouth)[0], face_identity).float()

    # ---- training

    def _inputs(self, batch: dict) -> dict:
        cfg = self.config
        for key in ("mouth", "mel", "face", "face_identity", "word"):
            if key not in batch:
                raise KeyError(f"DAVS needs batch[{key!r}]: train on WordDataset(..., faces=True) "
                               "(DataSpec kind 'words').")
        face = to_image_size(batch["face"], cfg.image_size)  # (B, 3, T, S, S)
        identity = to_image_size(batch["face_identity"], cfg.image_size)  # (B, 3, S, S)
        _check(cfg, batch["mouth"], batch["mel"], identity)
        if face.shape[2] != batch["mouth"].shape[2]:
            raise ValueError(f"face has {face.shape[2]} frames and mouth {batch['mouth'].shape[2]}: they must match.")
        word = torch.as_tensor(batch["word"], device=face.device)
        if word.min() < NO_WORD or word.max() >= cfg.vocabulary_size:
            raise ValueError(f"word labels must be in 0..{cfg.vocabulary_size - 1} (or {NO_WORD}: silence), "
                             f"got {word.tolist()}.")
        speaker = batch.get("speaker")
        if speaker is not None:
            speaker = torch.as_tensor(speaker, device=face.device)
            if speaker.min() < 0 or speaker.max() >= cfg.n_speakers:
                raise ValueError(f"speaker labels must be in 0..{cfg.n_speakers - 1} (n_speakers), "
                                 f"got {speaker.tolist()}: raise n_speakers.")
        clip = batch.get("clip")  # clip index of each item; None: every item is its own clip
        clip = torch.arange(len(word), device=face.device) if clip is None else torch.as_tensor(clip, device=face.device)
        return {"mouth": batch["mouth"], "mel": batch["mel"], "face": face, "identity": identity,
                "word": word, "speaker": speaker, "clip": clip}

    def training_step(self, batch: dict, step: int, update) -> dict[str, float]:
        """One update of all adversaries, then one of encoders + classifier + generator.

        update(loss, name) backpropagates `loss` and steps the optimizer `name` of optimizers().
        """
        cfg = self.config
        x = self._inputs(batch)
        face, identity, word, speaker = x["face"], x["identity"], x["word"], x["speaker"]
        B, T = face.shape[0], face.shape[2]

        # ---- encoders
        f_v, f_a = self.visual_encoder(x["mouth"]), self.audio_encoder(x["mel"])  # (B, T, D) each
        w_v, w_a = f_v.mean(1), f_a.mean(1)  # word-IDs (B, D)
        k = cfg.disentangle_frames
        pids, skips = self.pid_encoder(torch.cat([identity, _frames(face, _frame_indices(T, k, centre=True))]))
        pid, skips = pids[:B], {r: s[:B] for r, s in skips.items()}  # person-ID of the identity image
        pid_word = pids[B:]  # (B*k, P): person-IDs of frames of the word, item-major
        word_k = word.repeat_interleave(k)  # (B*k,) their words

        # ---- generation: from video and audio word features
        if cfg.both_sources:
            fake = self.generator(torch.cat([pid, pid]), {r: torch.cat([s, s]) for r, s in skips.items()},
                                  torch.cat([f_v, f_a]), torch.cat([identity, identity]))  # (2B, 3, T, S, S)
            real = torch.cat([face, face])
        else:  # even items from video, odd from audio
            from_video = (torch.arange(B, device=face.device) % 2 == 0)[:, None, None]
            fake = self.generator(pid, skips, torch.where(from_video, f_v, f_a), identity)  # (B, 3, T, S, S)
            real = face
        frame_idx = _frame_indices(T, cfg.d_frames or T, offset=step)
        speakers_differ = speaker is not None and speaker.unique().numel() >= 2

        # ---- adversaries, on detached inputs
        d_terms = {
            "domain": self.domain_discriminator.loss(f_a.detach().flatten(0, 1), f_v.detach().flatten(0, 1)),
            "pid_word": word_loss(self.pid_word_classifier(pid_word.detach()), word_k),
            "frame": 0.5 * (gan_loss(self.frame_discriminator(_frames(real, frame_idx)), True)
                            + gan_loss(self.frame_discriminator(_frames(fake.detach(), frame_idx)), False)),
            "seq": 0.5 * (gan_loss(self.sequence_discriminator(real), True)
                          + gan_loss(self.sequence_discriminator(fake.detach()), False)),
        }
        if speakers_differ:
            d_terms["speaker"] = F.cross_entropy(
                self.speaker_classifier(torch.cat([w_v, w_a]).detach()).float(), torch.cat([speaker, speaker]))
        d_loss = sum(d_terms.values())
        update(d_loss, "discriminator")

        # ---- encoders, classifier, generator; adversaries frozen
        with frozen(*self.adversary_modules()):
            rows, cols = _batch_pairs(word)
            logit_v, logit_a = self.word_classifier(w_v).float(), self.word_classifier(w_a).float()
            e_v, e_a = F.normalize(w_v.float(), dim=1), F.normalize(w_a.float(), dim=1)
            y0, y1, x0, x1 = self.mouth_box
            g_terms = {
                "class_video": (cfg.w_class, word_loss(logit_v, word)),
                "class_audio": (cfg.w_class, word_loss(logit_a, word)),
                # the fusion weights alone learn from this (the logits are detached)
                "class_both": (cfg.w_class, word_loss(self.word_classifier.fuse(logit_v.detach(), logit_a.detach()),
                                                      word)),
                "contrastive": (cfg.w_contrastive, contrastive_loss(e_a[rows], e_v[cols], rows == cols, cfg.margin)),
                "domain": (cfg.w_domain, self.domain_discriminator.confusion_loss(f_a.flatten(0, 1),
                                                                                    f_v.flatten(0, 1))),
                "pid_uniform": (cfg.w_pid_uniform, uniformity_loss(self.pid_word_classifier(pid_word))),
                "pid_consistency": (cfg.w_pid_consistency, pid_consistency_loss(pid, pid_word, x["clip"], cfg.margin)),
                "l1": (cfg.w_l1, F.l1_loss(fake.float(), real)),
                "l1_mouth": (cfg.w_mouth, F.l1_loss(fake[..., y0:y1, x0:x1].float(), real[..., y0:y1, x0:x1])),
                "frame_gan": (cfg.w_frame_gan, gan_loss(self.frame_discriminator(_frames(fake, frame_idx)), True)),
                "seq_gan": (cfg.w_seq_gan, gan_loss(self.sequence_discriminator(fake), True)),
            }
            if speakers_differ:
                present = speaker.unique()  # uniform over the batch's speakers: the other classes never occur
                g_terms["speaker_uniform"] = (cfg.w_speaker_uniform, uniformity_loss(
                    self.speaker_classifier(torch.cat([w_v, w_a]))[:, present]))
            g_loss = sum(w * v for w, v in g_terms.values())
            update(g_loss, "generator")

        logs = {f"d/{k}": v.item() for k, v in d_terms.items()}
        logs["d/loss"] = d_loss.item()
        logs.update({f"g/{k}": v.item() for k, (w, v) in g_terms.items()})
        logs["g/loss"] = g_loss.item()
        return logs

    @torch.no_grad()
    def validation_step(self, batch: dict) -> dict[str, float]:
        """Word accuracy from video, audio and both (mean logits); in-batch audio->video retrieval R@1;
        C_p's word accuracy from person-IDs (chance = disentangled); L1 of faces generated from audio and
        from video, whole frame and mouth box."""
        cfg = self.config
        x = self._inputs(batch)
        face, identity, word = x["face"], x["identity"], x["word"]
        f_v, f_a = self.visual_encoder(x["mouth"]), self.audio_encoder(x["mel"])
        logit_v, logit_a = self.word_classifier(f_v.mean(1)).float(), self.word_classifier(f_a.mean(1)).float()
        e_v, e_a = F.normalize(f_v.mean(1).float(), dim=1), F.normalize(f_a.mean(1).float(), dim=1)
        k, T = cfg.disentangle_frames, face.shape[2]
        pid_word = self.pid_encoder(_frames(face, _frame_indices(T, k, centre=True)))[0]  # (B*k, P)
        y0, y1, x0, x1 = self.mouth_box
        spoken, spoken_k = word != NO_WORD, word.repeat_interleave(k) != NO_WORD  # silence items have no word

        def accuracy(logits, labels, keep):
            return (logits.argmax(1) == labels)[keep].float().mean().item() if keep.any() else float("nan")

        logs = {"val/acc_video": accuracy(logit_v, word, spoken),
                "val/acc_audio": accuracy(logit_a, word, spoken),
                "val/acc_both": accuracy(self.word_classifier.fuse(logit_v, logit_a), word, spoken),
                "val/r1_audio_to_video": ((e_a @ e_v.T).argmax(1) == torch.arange(len(word), device=word.device))
                .float().mean().item(),
                "val/acc_pid_word": accuracy(self.pid_word_classifier(pid_word), word.repeat_interleave(k), spoken_k)}
        for name, f in (("audio", f_a), ("video", f_v)):
            fake = self._generate(f, identity).float()
            logs[f"val/l1_{name}"] = F.l1_loss(fake, face).item()
            logs[f"val/l1_mouth_{name}"] = F.l1_loss(fake[..., y0:y1, x0:x1], face[..., y0:y1, x0:x1]).item()
        return logs

    @torch.no_grad()
    def sample(self, batch: dict) -> torch.Tensor:
        """Faces generated from the audio (B, 3, T, H, W) in [-1, 1], upsampled to batch["face"]'s size H for
        sample grids beside the real faces."""
        x = self._inputs(batch)
        fake = self.generate_from_audio(x["mel"], x["identity"])  # (B, 3, T, S, S)
        H = batch["face"].shape[-1]
        if H == fake.shape[-1]:
            return fake
        B, C, T, S, _ = fake.shape
        up = F.interpolate(fake.transpose(1, 2).reshape(B * T, C, S, S), size=(H, H), mode="nearest")
        return up.reshape(B, T, C, H, H).transpose(1, 2)

    # ---- lipgen generate / evaluate: 128 px aligned faces in and out

    @torch.no_grad()
    def generate(self, mel: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """(mel (B, 1, 4T, M), identity face (B, 3, 128, 128)) -> faces (B, 3, T, 128, 128) in [-1, 1]."""
        return self._to_crop_size(self.generate_from_audio(mel, to_image_size(identity, self.config.image_size)),
                                  identity.shape[-1])

    @torch.no_grad()
    def generate_driven(self, mouth: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """(driving mouth crops (B, 3, T, 64, 64), identity face (B, 3, 128, 128)) -> faces (B, 3, T, 128, 128)."""
        return self._to_crop_size(self.generate_from_video(mouth, to_image_size(identity, self.config.image_size)),
                                  identity.shape[-1])

    @staticmethod
    def _to_crop_size(video: torch.Tensor, size: int) -> torch.Tensor:
        b, c, t, s, _ = video.shape
        if s == size:
            return video
        frames = video.transpose(1, 2).reshape(b * t, c, s, s)
        frames = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)
        return frames.reshape(b, t, c, size, size).transpose(1, 2)
