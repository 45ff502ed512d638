"""A corpus in LRW's layout (tests/fixtures/lrw: 3 words x 4 clips cut from GRID) end to end: its word list
is kept with the cache and the checkpoints, DAVS and CRGAN train on it, lipread answers in its words."""

import pytest

from lipgen.checkpoint import read_header
from lipgen.cli import main
from lipgen.data.cache import read_vocabulary
from lipgen.data.dataset import LipDataset, WordDataset

from .conftest import FIXTURES

LRW = FIXTURES / "lrw"
WORDS = ["blue", "green", "white"]


@pytest.fixture(scope="module")
def lrw_cache(tmp_path_factory):
    from lipgen.data.preprocess import preprocess

    cache = tmp_path_factory.mktemp("lrw_cache")
    report = preprocess(LRW, cache, corpus="lrw", workers=1, progress=False)
    assert report["clips_failed"] == 0, report
    return cache


def test_an_lrw_cache_keeps_its_word_list_and_labels_every_word(lrw_cache):
    assert read_vocabulary(lrw_cache) == WORDS
    words = WordDataset(lrw_cache, "train", faces=True)
    assert len(words) == 9 and sorted(set(words.labels)) == [0, 1, 2]  # no LRW word dropped
    item = words[0]
    assert WORDS[item["word"]] == words.clips[words.items[0][0]]["id"].split("/")[0].lower()
    frames = LipDataset(lrw_cache, "train", window=8, stride=8)
    assert set(frames[0]["words"].tolist()) <= {-1, 0, 1, 2}


def test_davs_and_crgan_train_on_an_lrw_corpus_and_lipread_answers_in_its_words(lrw_cache, tmp_path, capsys):
    runs = {}
    for model in ("davs", "crgan"):
        runs[model] = tmp_path / model
        assert main(["train", "--model", model, "--preset", "tiny", "--cache", str(lrw_cache), "--out",
                     str(runs[model]), "--steps", "2", "--batch-size", "3", "--workers", "0"]) == 0
        header = read_header(runs[model] / "model.safetensors")
        assert header["vocabulary"] == WORDS and header["config"]["vocabulary_size"] == 3
    capsys.readouterr()
    clip = LRW / "GREEN" / "test" / "GREEN_00004.mp4"
    assert main(["lipread", "--video", str(clip), "--audio", str(clip), "--checkpoint",
                 str(runs["davs"] / "model.safetensors")]) == 0
    said = [line.split()[-2] for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert said and set(said) <= set(WORDS), said
