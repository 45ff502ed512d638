"""The landmark sync expert (lipgen.models.lmsync): trains, and the shipped one judges a held-out GRID clip."""

import numpy as np
import pytest
import torch

from lipgen import face, media
from lipgen.evaluation import sync
from lipgen.models.lmsync import MIRROR_INDEX, PRESETS, LmSync

from .conftest import HELDOUT


def test_mirror_is_a_permutation_that_undoes_itself():
    assert sorted(MIRROR_INDEX) == list(range(31))
    assert [MIRROR_INDEX[i] for i in MIRROR_INDEX] == list(range(31))


def test_tiny_expert_learns_on_a_batch(grid_cache):
    from lipgen.data.motion import MotionDataset

    from .conftest import trainer

    data = MotionDataset(grid_cache, split=None, window=16, augment=False)
    batch = {k: torch.stack([data[i][k] for i in range(4)]) for k in ("features", "motion")}
    torch.manual_seed(0)
    expert = LmSync(PRESETS["tiny"])
    update = trainer(expert)
    first = expert.losses(batch, augment=False)["loss"].item()
    for step in range(60):
        expert.training_step(batch, step, update)
    assert expert.losses(batch, augment=False)["loss"].item() < 0.7 * first


@pytest.fixture(scope="module")
def heldout():
    clips = {}
    for name in ("bbaz5s", "lbij6n", "sbia3a"):
        path = HELDOUT / "s1" / "video" / f"{name}.mp4"
        frames = media.read_video(path)
        clips[name] = (face.track_landmarks(frames)[0], media.fit_audio(media.read_audio(path), len(frames)))
    return clips


def test_shipped_expert_finds_the_offset_of_shifted_audio(heldout):
    expert = sync.load_landmark_expert()
    shift = 5
    for name, (landmarks, audio) in heldout.items():
        real = sync.landmark_sync_scores(expert, landmarks, audio, max_offset=10)
        delayed = np.r_[np.zeros(shift * media.SAMPLES_PER_FRAME, np.float32), audio[:-shift * media.SAMPLES_PER_FRAME]]
        late = sync.landmark_sync_scores(expert, landmarks, delayed, max_offset=10)
        assert abs(real["offset"]) <= 1, name
        assert abs(late["offset"] - shift) <= 1, name
        others = [a for n, (_, a) in heldout.items() if n != name]
        for other in others:
            wrong = sync.landmark_sync_scores(expert, landmarks, media.fit_audio(other, len(landmarks)), max_offset=10)
            assert real["lse_c"] > wrong["lse_c"], name
