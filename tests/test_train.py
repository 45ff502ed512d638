"""The shared training loop on the tiny Glance preset and the fixture cache."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from lipgen.checkpoint import export, load_system, read_header
from lipgen.errors import CheckpointError
from lipgen.train import TrainConfig, train


def _cfg(cache, out, **kw):
    base = dict(model="glance", preset="tiny", cache=str(cache), out=str(out), batch_size=2, workers=0,
                log_every=1, val_every=1000, sample_every=1000, ckpt_every=2)
    base.update(kw)
    return TrainConfig(**base)


def test_resume_after_interruption_gives_the_same_weights(grid_cache, tmp_path):
    straight = train(_cfg(grid_cache, tmp_path / "a", steps=4))
    train(_cfg(grid_cache, tmp_path / "b", steps=2))  # "killed" after step 2's checkpoint
    resumed = train(_cfg(grid_cache, tmp_path / "b", steps=4, resume=True))
    a, b = load_file(str(straight)), load_file(str(resumed))
    assert read_header(resumed)["step"] == 4
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    # and the run really trained: weights moved from initialisation
    torch.manual_seed(0)
    fresh = load_system(straight)[0].__class__(load_system(straight)[0].config).state_dict()
    assert any(not torch.allclose(fresh[k], a[k]) for k in a if a[k].is_floating_point())


def test_checkpoint_is_self_describing(grid_cache, tmp_path):
    path = train(_cfg(grid_cache, tmp_path, steps=1))
    system, header = load_system(path)
    assert header["model"] == "glance" and header["config"]["n_frames"] == 16
    assert (tmp_path / "tensorboard").is_dir() and (tmp_path / "config.json").is_file()
    assert type(system).__name__ == "Glance"


def test_export_averages_checkpoints_of_one_run(grid_cache, tmp_path):
    train(_cfg(grid_cache, tmp_path / "run", steps=4))
    steps = sorted((tmp_path / "run" / "checkpoints").glob("step_*/model.safetensors"))
    assert len(steps) == 2  # steps 2 and 4
    averaged = load_file(str(export(steps, tmp_path / "avg.safetensors", half=False)))
    a, b = load_file(str(steps[0])), load_file(str(steps[1]))
    moved = [k for k in averaged if a[k].is_floating_point() and not torch.allclose(a[k], b[k])]
    assert moved  # training moved the weights between the two checkpoints
    for k in moved:
        assert torch.allclose(averaged[k], (a[k] + b[k]) / 2, atol=1e-6), k
    assert read_header(tmp_path / "avg.safetensors")["step"] == 4
    other = train(_cfg(grid_cache, tmp_path / "other", steps=1, overrides={"use_corr": False}))  # another config
    with pytest.raises(CheckpointError, match="one training run"):
        export([other, steps[1]], tmp_path / "bad.safetensors")


def test_ddp_two_processes_runs(grid_cache, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           "-m", "lipgen", "train", "--model", "glance", "--preset", "tiny", "--cache", str(grid_cache),
           "--out", str(tmp_path), "--steps", "2", "--batch-size", "2", "--workers", "0", "--ckpt-every", "2"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert read_header(tmp_path / "model.safetensors")["step"] == 2


def test_a_run_is_never_trained_over_nor_resumed_with_other_settings(grid_cache, tmp_path):
    train(_cfg(grid_cache, tmp_path / "run", steps=1))
    before = (tmp_path / "run" / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="holds a run: --resume to continue it"):
        train(_cfg(grid_cache, tmp_path / "run", steps=2))
    with pytest.raises(ValueError, match=r"other settings than the run's \(batch_size 2 -> 3\)"):
        train(_cfg(grid_cache, tmp_path / "run", steps=2, batch_size=3, resume=True))
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == before
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("not a run")
    with pytest.raises(ValueError, match="a folder with other files in it"):
        train(_cfg(grid_cache, tmp_path / "notes", steps=1))
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["mine.txt"]


@pytest.mark.parametrize("overrides, words", [({"base_channels": "big"}, '"big" is not a whole number'),
                                              ({"lr": "fast"}, "is not a number"),
                                              ({"use_corr": "no"}, "is not true or false"),
                                              ({"base_channels": 0}, "a count or size, at least 1")])
def test_set_values_of_the_wrong_kind_are_refused_before_the_run_starts(grid_cache, tmp_path, overrides, words):
    with pytest.raises(ValueError, match=words):
        train(_cfg(grid_cache, tmp_path / "run", steps=1, overrides=overrides))
    assert not (tmp_path / "run").exists()


def test_clip_lists_may_be_plain_ids_or_a_manifest(tmp_path):
    from lipgen.data.dataset import clip_ids

    (tmp_path / "ids.txt").write_text("s1/bbaf2n\n\ns1/bbaf3s\n")
    assert clip_ids(tmp_path / "ids.txt") == ["s1/bbaf2n", "s1/bbaf3s"]
    (tmp_path / "ids.jsonl").write_text('{"id": "s1/bbaf2n"}\n')
    assert clip_ids(tmp_path / "ids.jsonl") == ["s1/bbaf2n"]
    (tmp_path / "bad.jsonl").write_text('{"name": "s1/bbaf2n"}\n')
    with pytest.raises(ValueError, match="line 1: not a clip id"):
        clip_ids(tmp_path / "bad.jsonl")


def test_tensorboard_shows_the_run(grid_cache, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(_cfg(grid_cache, tmp_path / "run", steps=2))
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/steps_per_s")] == [1, 2]
    viewer = subprocess.run([sys.executable, "-m", "tensorboard.main", "--version"], capture_output=True, text=True)
    assert viewer.returncode == 0, viewer.stderr  # the viewer starts (it imports pkg_resources: setuptools < 81)


def test_intervals_steps_and_processes_on_resume_are_checked(grid_cache, tmp_path):
    base = dict(model="glance", preset="tiny", cache=str(grid_cache), batch_size=2, seed=0)
    for field in ("log_every", "val_every", "ckpt_every"):
        with pytest.raises(ValueError, match=f"--{field.replace('_', '-')} must be a whole number of at least 1"):
            train(TrainConfig(**base, out=str(tmp_path / field), steps=2, **{field: 0}))
        assert not (tmp_path / field).exists()  # refused before anything is written
    run = tmp_path / "run"
    train(TrainConfig(**base, out=str(run), steps=2, ckpt_every=2))
    with pytest.raises(ValueError, match="already at step 2; give --steps 2 or more"):
        train(TrainConfig(**base, out=str(run), steps=1, resume=True))
    record = json.loads((run / "config.json").read_text())
    assert record["train"]["processes"] == 1
    record["train"]["processes"] = 2
    (run / "config.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="with 1 processes, the run had 2"):
        train(TrainConfig(**base, out=str(run), steps=3, resume=True))


def test_misnamed_caches_clips_and_checkpoints_say_what_they_are(grid_cache, tmp_path):
    from lipgen.checkpoint import read_header
    from lipgen.data.dataset import LipDataset

    with pytest.raises(ValueError, match="no such cache folder"):
        LipDataset(tmp_path / "nope", "train")
    with pytest.raises(ValueError, match="none of the 1 listed clip ids"):
        LipDataset(grid_cache, "train", clips=["s9/nothing"])
    with pytest.raises(FileNotFoundError, match="give its model file"):
        read_header(tmp_path)
    state = tmp_path / "train_state.pt"
    state.write_bytes(b"\0" * 64)
    with pytest.raises(CheckpointError, match="a training state"):
        read_header(state)
