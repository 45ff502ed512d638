import numpy as np
import pytest

from lipgen.cli import main
from lipgen.data import corpora
from lipgen.data.dataset import clip_ids
from lipgen.data.select import histogram_distance, phoneme_counts, phonemes, select_clips



def test_grid_words_are_phonemised():
    assert phonemes(["sil", "bin", "blue", "at", "f", "two", "now", "sil"]) == \
        ["B", "IH", "N", "B", "L", "UW", "AE", "T", "EH", "F", "T", "UW", "N", "AW"]
    assert all(phonemes([w]) for w in corpora.GRID_VOCABULARY)
    with pytest.raises(KeyError, match="qzxv"):
        phonemes(["qzxv"])


def _all_grid_sentences(n=400, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        words = [corpora.Word(list(slot.values())[rng.integers(len(slot))]) for slot in corpora.GRID_WORDS]
        out.append(corpora.Utterance(f"x/{i}", "x", "", words))
    return out


def test_selection_matches_the_phone_histogram_better_than_random():
    utts = _all_grid_sentences()
    counts = phoneme_counts(utts)
    ids = {u.id: i for i, u in enumerate(utts)}
    mask = lambda chosen: np.isin(np.arange(len(utts)), [ids[u.id] for u in chosen])
    matched = histogram_distance(counts, mask(select_clips(utts, 40, "match")))
    random = histogram_distance(counts, mask(select_clips(utts, 40, "random")))
    assert matched < 0.03  # the stated bound: L1 distance of phone distributions at 10% of the clips
    assert matched < random / 3
    chosen = mask(select_clips(utts, 40, "match"))
    assert ((counts[chosen].sum(0) > 0) == (counts.sum(0) > 0)).all()  # every phone stays covered


def test_select_cli_writes_a_manifest_training_accepts(grid_cache, tmp_path, capsys):
    out = tmp_path / "selected.jsonl"
    assert main(["select", "--cache", str(grid_cache), "--out", str(out), "--size", "1", "--split", "train"]) == 0
    assert "selected 1 of" in capsys.readouterr().out
    assert len(clip_ids(out)) == 1


def test_select_refuses_what_it_cannot_honour(grid_cache, tmp_path):
    from lipgen.data.select import select

    for options, words in (({"size": 0}, "--size"), ({"fraction": 1.5}, "--fraction 1.5"),
                           ({"fraction": 0}, "--fraction 0"), ({"size": 5, "fraction": 0.7}, "not both"),
                           ({"seed": -1}, "--seed")):
        with pytest.raises(ValueError, match=words):
            select(grid_cache, tmp_path / "selected.jsonl", **options)
    with pytest.raises(ValueError, match="is a folder: give the manifest's file path"):
        select(grid_cache, tmp_path, size=1)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="no such cache folder"):
        select(tmp_path / "nowhere", tmp_path / "selected.jsonl", size=1)
    manifest = grid_cache / "manifest.jsonl"
    before = manifest.read_bytes()
    with pytest.raises(ValueError, match="the cache's own manifest.jsonl"):
        select(grid_cache, manifest, size=1)
    assert manifest.read_bytes() == before


def test_words_the_dictionary_lacks_count_no_phones(caplog):
    utterances = _all_grid_sentences(3)
    utterances[1].words.append(corpora.Word("qwxyzk"))
    plain = phoneme_counts(_all_grid_sentences(3))
    with caplog.at_level("WARNING", logger="lipgen.data.select"):
        counts = phoneme_counts(utterances)
    assert np.array_equal(counts, plain) and "qwxyzk" in caplog.text
    assert len(select_clips(utterances, 2, "match")) == 2


def test_a_selection_of_another_split_is_named_when_training_refuses_it(heldout_cache):
    from lipgen.data.cache import clip_metas
    from lipgen.data.dataset import LipDataset

    test_ids = [m["id"] for m in clip_metas(heldout_cache, "test")]
    assert test_ids
    with pytest.raises(ValueError, match="no listed clips in split 'train': they are in test"):
        LipDataset(heldout_cache, "train", clips=test_ids)
