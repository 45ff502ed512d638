"""DAVS model: shapes, presets, each loss term's behaviour, adversaries, a tiny model fitting one batch (CPU, fast)."""

import math
from dataclasses import asdict, replace

import pytest
import torch
import torch.nn.functional as F

from lipgen.face import FACE_SIZE, MOUTH, template
from lipgen.media import MELS_PER_FRAME, N_MELS
from lipgen.models.davs import (PRESETS, DAVS, DAVSConfig, DomainDiscriminator, contrastive_loss, mouth_box,
                                pid_consistency_loss, to_image_size, uniformity_loss)

TINY = PRESETS["tiny"]
V = TINY.vocabulary_size


def n_params(modules) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def random_batch(B: int = 4, T: int = 6, seed: int = 0, speakers=None) -> dict:
    """WordDataset-shaped tensors (faces at lipgen's 128 px, distinct words) for a learnable toy task: a smooth
    face whose mouth box darkens with each frame's openness, shown by a dark bar in the mouth clip and by the
    loudness of the frame's mel rows."""
    g = torch.Generator().manual_seed(seed)
    identity = 0.8 * F.interpolate(torch.rand(B, 3, 8, 8, generator=g) * 2 - 1, size=FACE_SIZE, mode="bilinear")
    openness = torch.rand(B, T, generator=g)  # (B, T) in [0, 1]
    y0, y1, x0, x1 = mouth_box(FACE_SIZE)
    box = torch.zeros(FACE_SIZE, FACE_SIZE)
    box[y0:y1, x0:x1] = 1
    dark = openness[:, None, :, None, None] * box  # (B, 1, T, 128, 128)
    face = identity[:, :, None] * (1 - dark) - 0.9 * dark
    rows = ((torch.arange(64) - 31.5).abs()[None, None] < 2 + 14 * openness[..., None]).float()  # (B, T, 64)
    bar = rows[..., None] * ((torch.arange(64) - 31.5).abs() < 20).float()  # (B, T, 64, 64)
    mouth = (0.5 - 1.4 * bar)[:, None].expand(B, 3, T, 64, 64).contiguous()
    loudness = (2 * openness - 1).repeat_interleave(MELS_PER_FRAME, 1)  # (B, 4T)
    mel = loudness[:, None, :, None] + 0.1 * torch.randn(B, 1, MELS_PER_FRAME * T, N_MELS, generator=g)
    return {"mouth": mouth, "mel": mel.contiguous(), "face": face, "face_identity": identity,
            "word": torch.arange(B) * 7 % V,
            "speaker": torch.zeros(B, dtype=torch.long) if speakers is None else torch.tensor(speakers)}


def trainer(model, calls=None):
    opts = model.optimizers()

    def update(loss, name):
        if calls is not None:
            calls.append(name)
        opts[name].zero_grad()
        loss.backward()
        opts[name].step()

    return update


# ---- construction


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_construct_and_round_trip(name):
    cfg = PRESETS[name]
    assert DAVSConfig(**asdict(cfg)) == cfg
    a, b = DAVS(cfg), DAVS(DAVSConfig(**asdict(cfg)))
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)  # deterministic init


def test_parameter_counts():
    gen = {name: n_params(DAVS(cfg).generator_modules()) for name, cfg in PRESETS.items()}
    assert 10e6 < gen["paper"] < 60e6
    assert 0.5e6 < gen["cpu"] < 4e6
    assert gen["tiny"] < 0.2e6


def test_bad_configs_and_inputs_raise():
    with pytest.raises(ValueError, match="power of two"):
        DAVSConfig(image_size=96)
    model = DAVS(TINY).eval()
    with pytest.raises(ValueError, match="mel has"):
        model.word_logits(mel=torch.randn(1, 1, 10, N_MELS))
    with pytest.raises(ValueError, match="rows for"):
        model.word_logits(mouth=torch.zeros(1, 3, 4, 64, 64), mel=torch.randn(1, 1, 20, N_MELS))
    with pytest.raises(ValueError, match="face_identity"):
        model.generate_from_audio(torch.randn(1, 1, 16, N_MELS), torch.zeros(1, 3, 128, 128))
    with pytest.raises(ValueError, match="speaker labels"):
        model.training_step(random_batch(2, speakers=[0, 99]), 0, trainer(model))


def test_mouth_box_holds_the_template_lips():
    for size in (32, 64, 128):
        y0, y1, x0, x1 = mouth_box(size)
        lips = template()[MOUTH] * size / FACE_SIZE
        assert 0 <= y0 < lips[:, 1].min() and lips[:, 1].max() < y1 <= size
        assert 0 <= x0 < lips[:, 0].min() and lips[:, 0].max() < x1 <= size
        assert (y1 - y0) * (x1 - x0) < 0.25 * size * size  # a region, not the frame
    assert mouth_box(128)[0] == pytest.approx(2 * mouth_box(64)[0], abs=1)


def test_to_image_size_averages_areas():
    clip = torch.rand(2, 3, 5, 128, 128)
    small = to_image_size(clip, 64)
    assert small.shape == (2, 3, 5, 64, 64)
    assert torch.allclose(small[0, :, 1, 0, 0], clip[0, :, 1, :2, :2].mean((1, 2)))
    assert to_image_size(clip[:, :, 0], 32).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="area-downsampled"):
        to_image_size(torch.rand(1, 3, 100, 100), 64)


# ---- inference API


def test_inference_shapes():
    model = DAVS(TINY).eval()
    S, T = TINY.image_size, 7  # any T: the encoders are convolutional in time
    mouth, mel = torch.rand(2, 3, T, 64, 64) * 2 - 1, torch.randn(2, 1, MELS_PER_FRAME * T, N_MELS)
    face = torch.rand(2, 3, S, S) * 2 - 1
    a, v = model.generate_from_audio(mel, face), model.generate_from_video(mouth, face)
    assert a.shape == v.shape == (2, 3, T, S, S)
    assert a.abs().max() <= 1
    for kwargs in ({"mouth": mouth}, {"mel": mel}, {"mouth": mouth, "mel": mel}):
        assert model.word_logits(**kwargs).shape == (2, V)
    both = model.word_logits(mouth=mouth, mel=mel)  # equal fusion weights at start: the sum of log-probabilities
    lv, la = model.word_logits(mouth=mouth), model.word_logits(mel=mel)
    assert torch.allclose(both, F.log_softmax(lv, 1) + F.log_softmax(la, 1), atol=1e-5)
    for e in (model.embed_video(mouth), model.embed_audio(mel)):
        assert e.shape == (2, TINY.embedding_size)
        assert torch.allclose(e.norm(dim=1), torch.ones(2), atol=1e-5)


def test_identity_skip_starts_from_the_identity_face():
    model = DAVS(TINY).eval()
    face = torch.rand(2, 3, 32, 32) * 1.6 - 0.8
    video = model.generate_from_audio(torch.randn(2, 1, 16, N_MELS), face)
    assert torch.allclose(video, face[:, :, None].expand_as(video), atol=1e-5)


# ---- loss terms


def test_contrastive_loss():
    x = torch.randn(5, 8)
    assert contrastive_loss(x, x.clone(), torch.ones(5)).item() == 0  # identical matched pairs
    y = x + 0.1 * torch.randn(5, 8)
    d = (x - y).norm(dim=1)
    assert contrastive_loss(x, y, torch.ones(5)).item() == pytest.approx((d ** 2).sum().item() / 10, rel=1e-4)
    close = contrastive_loss(x, y, torch.zeros(5), margin=1.0).item()  # mismatched, closer than the margin
    assert close > 0 and close == pytest.approx(((1 - d).clamp_min(0) ** 2).sum().item() / 10, rel=1e-4)
    far = x + 10 * F.normalize(torch.randn(5, 8), dim=1)
    assert contrastive_loss(x, far, torch.zeros(5), margin=1.0).item() == 0  # mismatched, beyond the margin


def test_fusion_weights_learn_to_trust_the_better_modality():
    torch.manual_seed(0)
    C = DAVS(TINY).word_classifier
    word = torch.randint(0, V, (256,))
    good = F.one_hot(word, V) * 4.0  # right, confident
    bad = torch.randn(256, V) * 4  # noise
    opt = torch.optim.Adam([C.log_fusion_weights], lr=0.05)
    before = (C.fuse(bad, good).argmax(1) == word).float().mean()
    for _ in range(100):
        opt.zero_grad()
        F.cross_entropy(C.fuse(bad, good), word).backward()
        opt.step()
    w_video, w_audio = C.log_fusion_weights.exp().tolist()
    assert w_audio > 3 * w_video, (w_video, w_audio)
    assert (C.fuse(bad, good).argmax(1) == word).float().mean() == 1.0 > before


def test_pid_consistency_loss_pulls_one_clip_together_and_pushes_clips_apart():
    torch.manual_seed(0)
    a = F.normalize(torch.randn(16), dim=0)
    b = -a  # 2 apart, beyond the margin of 1
    clip = torch.tensor([0, 1])
    together = pid_consistency_loss(torch.stack([a, b]), torch.stack([a, a, b, b]), clip)  # k = 2 frames each
    assert together.item() == pytest.approx(0, abs=1e-6)  # one clip's person-IDs equal, other clips far
    mixed = pid_consistency_loss(torch.stack([a, b]), torch.stack([b, b, a, a]), clip)  # frames of the other clip
    assert mixed.item() > together.item()
    pid = torch.randn(4, 16, requires_grad=True)
    frames = torch.randn(8, 16, requires_grad=True)
    opt = torch.optim.Adam([pid, frames], lr=0.05)
    clips = torch.tensor([0, 1, 2, 3])
    start = pid_consistency_loss(pid, frames, clips).item()
    for _ in range(200):
        opt.zero_grad()
        pid_consistency_loss(pid, frames, clips).backward()
        opt.step()
    assert pid_consistency_loss(pid, frames, clips).item() < 0.05 * start
    e, f = F.normalize(pid, dim=1).detach(), F.normalize(frames, dim=1).detach().reshape(4, 2, 16)
    assert (e[:, None] - f).norm(dim=2).max() < 0.2  # each clip's frames at its identity's person-ID
    assert torch.pdist(e).min() > 0.9  # and the clips' person-IDs apart: no collapse to one point


def test_uniformity_loss_is_minimal_at_uniform_predictions():
    uniform = torch.zeros(3, V, requires_grad=True)
    loss = uniformity_loss(uniform)
    assert loss.item() == pytest.approx(math.log(V), rel=1e-6)
    loss.backward()
    assert uniform.grad.abs().max() < 1e-7  # a minimum
    for _ in range(5):
        assert uniformity_loss(torch.randn(3, V)).item() > math.log(V)
    peaked = torch.zeros(1, V)
    peaked[0, 0] = 10
    assert uniformity_loss(peaked).item() > uniformity_loss(peaked / 10).item() > math.log(V)


def test_domain_discriminator_learns_separable_inputs():
    torch.manual_seed(0)
    D = DomainDiscriminator(TINY)
    audio, video = torch.randn(64, TINY.embedding_size) + 1, torch.randn(64, TINY.embedding_size) - 1
    opt = torch.optim.Adam(D.parameters(), lr=1e-3)
    start = D.loss(audio, video).item()
    for _ in range(50):
        opt.zero_grad()
        D.loss(audio, video).backward()
        opt.step()
    end = D.loss(audio, video).item()
    assert end < start / 2, (start, end)
    assert D.confusion_loss(audio, video).item() > math.log(2) > end  # the encoders' loss is now high


def test_speaker_adversary_needs_two_speakers():
    model = DAVS(TINY)
    one = model.training_step(random_batch(2, speakers=[3, 3]), 0, trainer(model))
    two = model.training_step(random_batch(2, speakers=[3, 5]), 1, trainer(model))
    assert "d/speaker" not in one and "g/speaker_uniform" not in one
    assert "d/speaker" in two and "g/speaker_uniform" in two


@pytest.mark.parametrize("both_sources", [False, True])
def test_training_step_logs_all_terms_and_updates_in_order(both_sources):
    model = DAVS(replace(TINY, both_sources=both_sources))
    calls = []
    logs = model.training_step(random_batch(2, speakers=[0, 1]), 0, trainer(model, calls))
    assert calls == ["discriminator", "generator"]
    assert set(logs) >= {"d/loss", "d/domain", "d/pid_word", "d/speaker", "d/frame", "d/seq",
                         "g/loss", "g/class_video", "g/class_audio", "g/class_both", "g/contrastive", "g/domain", "g/pid_uniform", "g/pid_consistency",
                         "g/speaker_uniform", "g/l1", "g/l1_mouth", "g/frame_gan", "g/seq_gan"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in logs.values())
    assert all(p.requires_grad for m in model.adversary_modules() for p in m.parameters())  # unfrozen again


def test_generator_step_leaves_adversaries_unchanged():
    model = DAVS(TINY)
    opts = model.optimizers()
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(("pid_encoder", "generator"))}

    def update(loss, name):  # only the generator side steps
        if name == "generator":
            opts[name].zero_grad()
            loss.backward()
            opts[name].step()
        for m in model.adversary_modules():
            assert all(p.grad is None for p in m.parameters())

    model.training_step(random_batch(2), 0, update)
    after = model.state_dict()
    for k in ("domain_discriminator.net.0.weight", "frame_discriminator.net.0.0.weight",
              "sequence_discriminator.net.0.0.weight"):
        assert torch.equal(before[k], after[k])


def test_a_few_steps_on_one_batch_lower_classification_and_l1():
    torch.manual_seed(0)
    model = DAVS(replace(TINY, lr=2e-3))
    batch = random_batch(4)
    update = trainer(model)
    logs = [model.training_step(batch, step, update) for step in range(40)]
    first, last = logs[0], logs[-1]  # seeds 0-2: cross-entropies fall about 4x, L1 about 3x
    for key in ("g/class_video", "g/class_audio"):
        assert last[key] < 0.5 * first[key], (key, first[key], last[key])
    assert last["g/l1"] < 0.6 * first["g/l1"], (first["g/l1"], last["g/l1"])
    model.eval()
    val = model.validation_step(batch)
    assert val["val/acc_video"] == val["val/acc_audio"] == 1.0  # four distinct words, memorised
    assert set(val) >= {"val/acc_both", "val/r1_audio_to_video", "val/acc_pid_word", "val/l1_audio",
                        "val/l1_video", "val/l1_mouth_audio", "val/l1_mouth_video"}


def test_sample_is_shown_at_the_dataset_face_size():
    model = DAVS(TINY).eval()
    batch = random_batch(2)
    video = model.sample(batch)
    assert video.shape == batch["face"].shape and video.abs().max() <= 1


def test_sequence_discriminator_judges_short_sequences():
    model = DAVS(TINY)
    D = model.sequence_discriminator
    clip = torch.rand(1, 3, 8, 32, 32) * 2 - 1
    changed = clip.clone()
    changed[:, :, 0] = -clip[:, :, 0]  # change frame 0 only
    n = TINY.image_size // 16
    a, b = D(clip).reshape(8, n * n), D(changed).reshape(8, n * n)  # logits per frame position
    assert not torch.allclose(a[:3], b[:3])  # patches centred on frames 0-2 see frame 0
    assert torch.equal(a[3:], b[3:])  # 5-frame patches centred on frames 3+ do not


def test_silence_items_train_without_word_labels():
    model = DAVS(TINY)
    batch = random_batch(4)
    batch["word"] = torch.tensor([-1, 3, -1, 9])  # two silence items
    logs = model.training_step(batch, 0, trainer(model))
    assert all(math.isfinite(v) for v in logs.values())
    batch["word"] = torch.full((4,), -1)  # only silences: no classification terms, the rest still trains
    logs = model.training_step(batch, 1, trainer(model))
    assert logs["g/class_video"] == logs["g/class_audio"] == logs["d/pid_word"] == 0
    assert math.isfinite(logs["g/loss"]) and logs["g/l1"] > 0
    model.eval()
    assert math.isnan(model.validation_step(batch)["val/acc_video"])  # no word to read


def test_word_dataset_silence_items(grid_cache):
    from lipgen.data.dataset import NO_WORD, WordDataset

    words = WordDataset(grid_cache, None)
    both = WordDataset(grid_cache, None, silences=True)
    silences = [i for i, label in enumerate(both.labels) if label == NO_WORD]
    assert len(both) == len(words) + len(silences) and silences  # the clips' opening and closing pauses
    for i in silences:
        item = both[i]
        assert item["word"] == NO_WORD and item["silent"].all()  # the whole window inside a timed pause
