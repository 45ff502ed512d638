"""The model contract (lipgen.models.base): every model keeps it, a new model needs nothing else, and what
evaluate measures follows what a model declares."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from lipgen.cli import main
from lipgen.models import MODELS, data_presets, model_classes, shipped_checkpoint
from lipgen.models.base import (DRIVEN, OLD_CONFIG_DATA_FIELDS, READS_WORDS, STREAMS, Generator, LipgenModel, can,
                                check_model)

from .conftest import GRID


def test_importing_a_model_imports_neither_dlib_nor_the_data_layer():
    code = ("import sys, lipgen.models.davs, lipgen.models.crgan, lipgen.models.glance, lipgen.checkpoint; "
            "print(sorted(m for m in sys.modules if m == 'dlib' or m.startswith('lipgen.data.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registered_model_keeps_the_contract(name):
    system_cls, _, presets = model_classes(name)
    system = system_cls(presets["tiny"] if "tiny" in presets else next(iter(presets.values())))
    assert isinstance(system, LipgenModel)
    assert isinstance(system, Generator) == (system.crop in ("mouth", "face"))
    spec = system.data_spec()
    assert spec.window == system.config.n_frames
    top_level = {n for n, _ in system.named_children()}
    assert set(system_cls.parts) <= top_level, f"{name}: parts {system_cls.parts} not among {top_level}"


def test_capabilities_are_declared_and_asked_in_one_place():
    davs, crgan, glance = (model_classes(n)[0] for n in ("davs", "crgan", "glance"))
    assert can(davs.__new__(davs), DRIVEN) and can(davs.__new__(davs), READS_WORDS)
    assert can(crgan.__new__(crgan), STREAMS) and not can(crgan.__new__(crgan), DRIVEN)
    assert not any(can(glance.__new__(glance), c) for c in (DRIVEN, READS_WORDS, STREAMS))
    with pytest.raises(ValueError, match="unknown capability"):
        can(glance.__new__(glance), "flies")

    class Liar(torch.nn.Module):  # claims to be driven by video without the method
        crop, parts, capabilities = "mouth", (), frozenset({DRIVEN})
        data_spec = optimizers = training_step = validation_step = generate = sample = seams = lambda self: None

    with pytest.raises(TypeError, match="generate_driven"):
        check_model(Liar)
    del Liar.seams
    with pytest.raises(TypeError, match="lacks seams"):
        check_model(Liar)


def test_seams_are_where_each_model_joins_its_pieces():
    def tiny(name):
        cls, _, presets = model_classes(name)
        return cls(presets["tiny"])

    assert tiny("glance").seams(40) == [12, 24, 36]  # 16-frame windows every 12
    assert tiny("davs").seams(40) == [9, 18, 27, 36]  # 12-frame word windows every 9
    assert tiny("crgan").seams(40) == []  # recurrent: no seams


def test_the_data_a_model_trains_on_is_its_data_spec_not_its_config():
    import dataclasses

    from lipgen.checkpoint import load_system, read_header
    from lipgen.train import split_overrides

    for name in MODELS:
        _, config_cls, _ = model_classes(name)
        assert not {f.name for f in dataclasses.fields(config_cls)} & set(OLD_CONFIG_DATA_FIELDS), name
    assert data_presets("davs") == {"cpu": {"silences": True}} and data_presets("glance") == {}
    fields = {f.name for f in dataclasses.fields(model_classes("davs")[1])}
    assert split_overrides({"lr": 1e-3, "silence_items": True, "faces": True}, fields, "davs") == (
        {"lr": 1e-3}, {"silences": True, "faces": True})  # the old names still set the data
    with pytest.raises(ValueError, match="not in the davs config nor its data"):
        split_overrides({"window": 9}, fields, "davs")  # window follows n_frames
    # the shipped files were written with data fields in the config: they load, without them
    path = shipped_checkpoint("davs")
    assert read_header(path)["config"]["silence_items"] is True
    system, _ = load_system(path, strict=False)  # the shipped file holds the inference parts
    assert not hasattr(system.config, "silence_items") and not system.data_spec().silences


@pytest.fixture
def toy_registered(monkeypatch):
    """The one registry line a new model needs."""
    monkeypatch.setitem(MODELS, "toy", ("tests.toy_model", "Toy", "ToyConfig"))


def test_a_new_model_trains_generates_and_evaluates_through_the_cli(toy_registered, grid_cache, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--model", "toy", "--preset", "tiny", "--cache", str(grid_cache), "--out", str(run),
                 "--steps", "3", "--batch-size", "2", "--workers", "0"]) == 0
    model = run / "model.safetensors"
    from lipgen.checkpoint import load_system

    system, header = load_system(model)
    assert header["model"] == "toy" and header["step"] == 3 and float(system.gain.detach()) != 0  # it trained

    clip = GRID / "s1" / "video" / "bbaf2n.mp4"
    assert main(["generate", "--checkpoint", str(model), "--audio", str(clip), "--face", str(clip),
                 "-o", str(tmp_path / "toy.mp4")]) == 0
    from lipgen import media

    assert len(media.read_video(tmp_path / "toy.mp4")) == len(media.read_video(clip))

    assert main(["evaluate", str(model), "--cache", str(grid_cache), "--out", str(tmp_path / "eval"),
                 "--split", "train", "--limit", "1", "--no-sync"]) == 0
    rows = json.loads((tmp_path / "eval" / "report.json").read_text())["rows"]
    toy = rows[next(r for r in rows if r.startswith("toy"))]
    # the toy's mouth changes shape at its own seams (every 7 frames) and nowhere else: measured there, the
    # seam jitter is about twice the clip's mean jitter or more (at frames unrelated to them, about equal)
    assert toy["seam_jitter"] > 1.8 * toy["jitter"], toy
    assert np.isfinite(rows["ground truth"]["seam_jitter"])


def test_train_set_changes_the_data_spec_by_its_old_config_names_too(toy_registered, grid_cache, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--model", "toy", "--preset", "tiny", "--cache", str(grid_cache), "--out", str(run),
                 "--steps", "1", "--batch-size", "2", "--workers", "0", "--val-every", "100",
                 "--set", '{"dataset": "words", "silences": true, "seam_every": 5}']) == 0
    record = json.loads((run / "config.json").read_text())
    assert record["data"] == {"kind": "words", "window": 8, "faces": False, "silences": True, "freq_mask": 0,
                              "speech": "mel", "versions": 6}
    assert record["model"]["seam_every"] == 5 and "dataset" not in record["model"]
