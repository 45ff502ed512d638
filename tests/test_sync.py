"""Sync expert and LSE-D / LSE-C: the protocol on a stub expert whose answer is known, the tiny model's
window exactness and learning, and the shipped expert on a real fixture clip (skipped if absent)."""

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lipgen.evaluation import sync
from lipgen.evaluation.sync import EXPERT_PATH, MAX_OFFSET, load_expert, sync_scores
from lipgen.media import MELS_PER_FRAME, N_MELS
from lipgen.models.syncnet import PRESETS, SYNC_FRAMES, SyncNet, SyncNetConfig

TINY = PRESETS["tiny"]
N_OFFSETS = 2 * MAX_OFFSET + 1


class StubExpert(nn.Module):
    """Window t embeds as CODES[id], id = frame t's pixel value / 4 (video) or mel row 4t's value (audio)."""

    CODES = F.normalize(torch.randn(128, 8, generator=torch.Generator().manual_seed(0)), dim=1)

    def __init__(self):
        super().__init__()
        self.config = SyncNetConfig()

    def embed_video(self, mouth):  # (1, 3, T, S, S) in [-1, 1] -> (1, T-4, 8)
        ids = ((mouth[0, 0, :, 0, 0] + 1) * 127.5 / 4).round().long()[:-(SYNC_FRAMES - 1)]
        return self.CODES[ids % 128][None]

    def embed_audio(self, mel):  # (1, 1, 4T, M) -> (1, T-4, 8)
        ids = mel[0, 0, ::MELS_PER_FRAME, 0].round().long()[:-(SYNC_FRAMES - 1)]
        return self.CODES[ids % 128][None]


def stub_clip(T: int, audio_delay: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame t shows id t; the audio of id t sits at frame t + audio_delay."""
    mouth = np.repeat((4 * np.arange(T, dtype=np.uint8))[:, None, None, None], 64, 1).repeat(64, 2).repeat(3, 3)
    ids = np.arange(T) - audio_delay  # audio frame j carries id j - delay
    mel = np.repeat(ids.astype(np.float32), MELS_PER_FRAME)[:, None].repeat(N_MELS, 1)
    return mouth, mel


@pytest.mark.parametrize("delay", [0, 4, -7, 15])
def test_protocol_finds_a_known_offset_with_its_sign(delay):
    mouth, mel = stub_clip(60, delay)
    s = sync_scores(StubExpert(), mouth, mel)
    assert s["distances"].shape == (N_OFFSETS,) and list(s["offsets"]) == list(range(-15, 16))
    assert s["offset"] == delay  # positive = audio later than video
    assert s["lse_d"] == pytest.approx(0, abs=1e-6)
    assert s["lse_c"] == pytest.approx(np.median(s["distances"])) and s["lse_c"] > 0.5


def test_tiny_expert_scores_are_well_formed_and_chunking_is_exact(monkeypatch):
    torch.manual_seed(0)
    expert = SyncNet(TINY).eval()
    rng = np.random.default_rng(0)
    mouth = rng.integers(0, 256, (40, 64, 64, 3), dtype=np.uint8)
    mel = rng.standard_normal((40 * MELS_PER_FRAME, N_MELS)).astype(np.float32)
    s = sync_scores(expert, mouth, mel)
    d = s["distances"]
    assert d.shape == (N_OFFSETS,) and (d >= 0).all() and (d <= 2).all()
    assert -MAX_OFFSET <= s["offset"] <= MAX_OFFSET and s["lse_d"] == d.min()
    assert s["lse_c"] == pytest.approx(np.median(d) - d.min()) and s["lse_c"] >= 0
    monkeypatch.setattr(sync, "CHUNK_FRAMES", 9)  # 8 chunks overlapping by 4 frames: the same embeddings
    np.testing.assert_allclose(sync_scores(expert, mouth, mel)["distances"], d, atol=1e-5)


def test_a_window_embeds_the_same_alone_and_inside_a_clip():
    torch.manual_seed(0)
    expert = SyncNet(TINY).eval()
    mouth, mel = torch.rand(1, 3, 12, 64, 64) * 2 - 1, torch.randn(1, 1, 12 * MELS_PER_FRAME, N_MELS)
    with torch.no_grad():
        v, a = expert.embed_video(mouth), expert.embed_audio(mel)
        assert v.shape == a.shape == (1, 12 - SYNC_FRAMES + 1, TINY.embed_dim)
        torch.testing.assert_close(v[:, 3], expert.embed_video(mouth[:, :, 3:3 + SYNC_FRAMES])[:, 0], atol=1e-5, rtol=0)
        rows = slice(3 * MELS_PER_FRAME, (3 + SYNC_FRAMES) * MELS_PER_FRAME)
        torch.testing.assert_close(a[:, 3], expert.embed_audio(mel[:, :, rows])[:, 0], atol=1e-5, rtol=0)
    torch.testing.assert_close(v.norm(dim=-1), torch.ones(1, 8))


def test_bad_inputs_fail_loudly():
    expert = SyncNet(TINY)
    mouth, mel = stub_clip(40, 0)
    with pytest.raises(ValueError, match="log-mel rows per"):
        sync_scores(expert, mouth, mel[:-1])
    with pytest.raises(ValueError, match="too short"):
        sync_scores(expert, mouth[:19], mel[:19 * MELS_PER_FRAME])
    with pytest.raises(ValueError, match="uint8"):
        sync_scores(expert, mouth.astype(np.float32), mel)
    with pytest.raises(ValueError, match="no shifted-audio negative"):
        SyncNetConfig(n_frames=6)
    with pytest.raises(FileNotFoundError, match="lipgen train --model syncnet"):
        load_expert("no/such/expert.safetensors")


def toy_batch(B: int = 4, T: int = TINY.n_frames, seed: int = 0) -> dict:
    """A dark mouth bar opens with the loudness of each frame's mel rows; mel_wrong is another item's audio."""
    g = torch.Generator().manual_seed(seed)
    openness = torch.rand(B, T, generator=g)  # (B, T)
    dist = (torch.arange(64) - 31.5).abs()
    rows = (dist[None, None] < 2 + 14 * openness[..., None]).float()  # (B, T, 64)
    mask = (rows[..., None] * (dist < 20).float())[:, None]  # (B, 1, T, 64, 64)
    mouth = (0.5 - 1.4 * mask).expand(-1, 3, -1, -1, -1).contiguous()  # (B, 3, T, 64, 64)
    loudness = (2 * openness - 1).repeat_interleave(MELS_PER_FRAME, 1)  # (B, 4T)
    mel = loudness[:, None, :, None] + 0.1 * torch.randn(B, 1, T * MELS_PER_FRAME, N_MELS, generator=g)
    return {"mouth": mouth, "mel": mel, "mel_wrong": mel.roll(1, 0).contiguous(),
            "silent": torch.zeros(B, T, dtype=torch.bool)}


def test_training_steps_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = SyncNet(replace(TINY, lr=3e-3))
    opts = model.optimizers()
    assert list(opts) == ["sync"]

    def update(loss, name):
        opts[name].zero_grad()
        loss.backward()
        opts[name].step()

    batch = toy_batch()
    losses = [model.training_step(batch, step, update)["loss"] for step in range(30)]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:3])
    model.eval()
    logs = model.validation_step(batch)
    assert set(logs) == {"val/loss", "val/acc", "val/acc_window", "val/acc_item"}
    assert logs["val/acc_window"] > 0.5


def test_silent_windows_are_anchors_without_silent_negatives():
    torch.manual_seed(0)
    model = SyncNet(TINY)
    batch = toy_batch()
    batch["silent"][:, :6] = True  # windows 0 and 1 of each item are silent: 8 silent anchors
    logs = model.training_step(batch, 0, lambda loss, name: None)
    assert np.isfinite(logs["loss"]) and np.isfinite(logs["d_pos_silent"])
    batch["silent"][:] = True  # nothing but silence: each anchor's only candidate is its own audio
    assert model.training_step(batch, 0, lambda loss, name: None)["loss"] == pytest.approx(0, abs=1e-6)


@pytest.mark.skipif(not EXPERT_PATH.is_file(), reason="the shipped sync expert lipgen/assets/syncnet.safetensors is absent")
def test_shipped_expert_follows_an_audio_shift(clip):
    from lipgen import face
    from lipgen.media import log_mel, read_audio, read_video

    torch.set_num_threads(1)
    frames = read_video(clip)
    T = len(frames)
    mouth = face.crop(frames, face.track_face(frames).mouth_matrix, face.MOUTH_SIZE)
    mel = log_mel(read_audio(clip), n_frames=T)
    expert = load_expert()
    own = sync_scores(expert, mouth, mel)
    shift = 8  # audio delayed by 8 frames: the true offset becomes +8
    late = sync_scores(expert, mouth[shift:], mel[:(T - shift) * MELS_PER_FRAME])
    assert late["offset"] != own["offset"]
    assert abs(own["offset"]) <= 1 and abs(late["offset"] - shift) <= 1
    assert late["distances"][MAX_OFFSET] > own["distances"][MAX_OFFSET]  # d(0) rises when out of sync
