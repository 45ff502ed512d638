"""lipgen evaluate on the fixture cache: reference rows behave as defined, reports are written."""

import json
import math

import pytest

from lipgen.cli import main
from lipgen.evaluation.evaluate import evaluate



def test_evaluate_reference_rows_and_reports(grid_cache, tiny_glance, tmp_path):
    summary = evaluate([str(tiny_glance)], grid_cache, tmp_path, split=None, clips=["s1/bbaf2n"], progress=False)
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
    glossary = (tmp_path / "report.md").read_text().split("## Columns")[1]
    assert "- **LMD (px, per point)** (lower is better): " in glossary and "- **SSIM** (higher" in glossary


def test_evaluate_cli(grid_cache, tiny_glance, tmp_path, capsys):
    assert main(["evaluate", str(tiny_glance), "--cache", str(grid_cache), "--out", str(tmp_path),
                 "--split", "train", "--limit", "1", "--no-sync"]) == 0
    assert "| ground truth |" in capsys.readouterr().out


def test_evaluate_refuses_before_any_work(grid_cache, tmp_path, capsys):
    out = tmp_path / "report"
    for args, error in [(["missing.safetensors"], "no such checkpoint file"), (["lmsync"], "sync expert"),
                        (["motion", "--limit", "0"], "at least 1"), (["motion", "--expressiveness", "nan"], "nan"),
                        (["motion", "--expert", "missing.safetensors"], "no such sync expert")]:
        assert main(["evaluate", *args, "--cache", str(grid_cache), "--out", str(out), "--split", "train"]) == 2
        assert error in capsys.readouterr().err
    assert not out.exists()  # a refused run leaves no folder


def test_a_cache_with_relative_sources_says_where_to_run(grid_cache, tmp_path):
    from lipgen.data.cache import source_path

    meta = {"id": "s1/x", "path": "../elsewhere/x.mp4"}
    with pytest.raises(FileNotFoundError, match="relative to the folder preprocessing ran in"):
        source_path(meta)
    with pytest.raises(FileNotFoundError, match="moved or deleted"):
        source_path({**meta, "path": str(tmp_path / "x.mp4")})


def test_evaluate_davs_adds_video_driven_row_and_representation(grid_cache, tiny_davs, tmp_path):
    summary = evaluate([str(tiny_davs)], grid_cache, tmp_path, split=None, clips=["s1/bbaf2n"], expert=None,
                       progress=False)
    names = list(summary["rows"])
    assert any(n.startswith("davs") and n.endswith("from video") for n in names)
    (rep,) = summary["representation"].values()
    assert rep["words"] > 0 and 0 <= rep["accuracy_both"] <= 1 and rep["audio_to_video_median_rank"] >= 1
    assert rep["words"] <= 6  # the evaluated clip's words (a GRID sentence has six), not the whole cache's
    assert "lip reading and retrieval" in (tmp_path / "report.md").read_text()
