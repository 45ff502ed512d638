"""lipgen evaluate on the fixture cache: reference rows behave as defined, reports are written."""

import json
import math

import pytest

from lipgen.cli import main
from lipgen.evaluation.evaluate import evaluate
from lipgen.train import TrainConfig, train


@pytest.fixture(scope="module")
def tiny_model(grid_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_eval")
    return train(TrainConfig(model="glance", preset="tiny", cache=str(grid_cache), out=str(out), steps=1,
                             batch_size=2, workers=0, val_every=1000, sample_every=1000))


def test_evaluate_reference_rows_and_reports(grid_cache, tiny_model, tmp_path):
    summary = evaluate([str(tiny_model)], grid_cache, tmp_path, split=None, limit=1, progress=False)
    rows = summary["rows"]
    truth, static = rows["ground truth"], rows["static"]
    model = rows[next(r for r in rows if r.startswith("glance"))]
    assert truth["lmd"] == 0 and truth["ssim"] == pytest.approx(1.0)
    assert static["lmd"] > 0.3 and static["ssim"] < 1 and math.isfinite(static["psnr"])
    assert truth["opening_corr"] == pytest.approx(1.0)
    assert truth["speech_opening"] > truth["silence_opening"]  # real mouths open for words, close in silence
    assert math.isfinite(model["lmd"]) and model["lmd"] > 0
    for name in ("report.md", "report.csv", "report.json", "mouth_opening.png"):
        assert (tmp_path / name).is_file()
    assert json.loads((tmp_path / "report.json").read_text())["clips"] == 1


def test_evaluate_cli(grid_cache, tiny_model, tmp_path, capsys):
    assert main(["evaluate", str(tiny_model), "--cache", str(grid_cache), "--out", str(tmp_path),
                 "--split", "train", "--limit", "1", "--no-sync"]) == 0
    assert "| ground truth |" in capsys.readouterr().out
