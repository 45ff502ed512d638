import json

import numpy as np
import pytest
import torch

from lipgen.data import corpora
from lipgen.data.dataset import LipDataset
from lipgen.data.preprocess import parse_shard, preprocess

from .conftest import GRID


def test_grid_manifest_reads_align_and_names():
    utts = {u.id: u for u in corpora.load_corpus("grid", GRID)}
    assert set(utts) == {"s1/bbaf2n", "s1/bbaf3s", "s1/bbaf4p", "s4/bbilzs", "s4/bbaf2a", "multi/lbax4n"}
    timed = utts["s1/bbaf2n"]
    assert timed.transcript == "bin blue at f two now"
    assert timed.words[0].word == "sil" and timed.words[0].end == pytest.approx(23.75)
    untimed = utts["s4/bbilzs"]  # no .align: words from the file name
    assert untimed.transcript == "bin blue in l zero soon" and untimed.words[0].start is None
    assert len(corpora.GRID_VOCABULARY) == 51


def test_splits_are_deterministic_and_by_speaker():
    a = corpora.load_corpus("grid", GRID, test_speakers=("s4",))
    b = corpora.load_corpus("grid", GRID, test_speakers=("s4",))
    assert [u.split for u in a] == [u.split for u in b]
    assert {u.speaker_split for u in a if u.speaker == "s4"} == {"test"}
    assert {u.speaker_split for u in a if u.speaker != "s4"} == {"train"}
    assert {u.split for u in a if u.speaker == "s4"} == {"test"}  # never trained on; evaluated in a row of its own
    plain = {u.id: u.split for u in corpora.load_corpus("grid", GRID)}
    assert all(u.split == plain[u.id] for u in a if u.speaker != "s4")


def test_lrw_and_folder_layouts(tmp_path):
    import shutil

    for split in ("train", "test"):
        (tmp_path / "lrw/ABOUT" / split).mkdir(parents=True)
        shutil.copy(GRID / "s1/video/bbaf2n.mp4", tmp_path / f"lrw/ABOUT/{split}/ABOUT_00001.mp4")
    (tmp_path / "lrw/ABOUT/test/ABOUT_00001.txt").write_text("Text:  ABOUT\nConf: 1\n\nDuration: 0.40 seconds\n")
    lrw = {u.id: u for u in corpora.load_corpus("lrw", tmp_path / "lrw")}
    assert lrw["ABOUT/test/ABOUT_00001"].split == "test"
    assert lrw["ABOUT/test/ABOUT_00001"].words[0].start == pytest.approx(14.5 - 5)
    (tmp_path / "talks/alice/day1").mkdir(parents=True)
    shutil.copy(GRID / "s1/video/bbaf2n.mp4", tmp_path / "talks/alice/intro.mp4")
    shutil.copy(GRID / "s1/video/bbaf3s.mp4", tmp_path / "talks/alice/day1/take 2.mp4")
    (tmp_path / "talks/alice/day1/take 2.txt").write_text("Bin blue, at F three -- soon!\n")
    talks = {u.id: u for u in corpora.load_corpus("folder", tmp_path / "talks")}
    assert {u.speaker for u in talks.values()} == {"alice"}  # the folder under the root, however deep the clip
    assert talks["alice/intro"].words == []
    assert talks["alice/day1/take 2"].transcript == "bin blue at f three soon"  # its .txt, untimed


def test_a_folder_corpus_with_transcripts_trains_word_models(tmp_path):
    """A folder corpus's <clip>.txt is forced-aligned: the cache gets timed words and a vocabulary."""
    import shutil

    from lipgen.data.cache import read_vocabulary

    (tmp_path / "mine/ann").mkdir(parents=True)
    for name, text in (("bbaf2n", "bin blue at f two now"), ("bbaf3s", "bin blue at f three soon")):
        shutil.copy(GRID / "s1/video" / f"{name}.mp4", tmp_path / "mine/ann" / f"{name}_mine.mp4")
        (tmp_path / "mine/ann" / f"{name}_mine.txt").write_text(text.upper() + "\n")
    shutil.copy(GRID / "s1/video/bbaf4p.mp4", tmp_path / "mine/ann/bbaf4p_mine.mp4")  # no transcript
    report = preprocess(tmp_path / "mine", tmp_path / "cache", corpus="folder", workers=1, progress=False)
    assert report["clips_ok"] == 3  # all three in the train split (by their ids' hashes)
    meta = json.loads((tmp_path / "cache/ann__bbaf3s_mine/meta.json").read_text())
    assert meta["timing"] == "forced alignment"
    assert [w["word"] for w in meta["words"] if w["word"] != "sil"] == "bin blue at f three soon".split()
    assert read_vocabulary(tmp_path / "cache") == sorted(set("bin blue at f two now three soon".split()))
    from lipgen.data.select import select

    assert select(tmp_path / "cache", tmp_path / "two.jsonl", size=2)["of"] == 2  # matching reads words
    assert select(tmp_path / "cache", tmp_path / "any.jsonl", size=3, method="random")["of"] == 3  # random: any clip
    with pytest.raises(ValueError, match="a cache of a folder corpus; --corpus grid would mix"):
        preprocess(GRID, tmp_path / "cache", workers=1, progress=False)


def test_a_moved_corpus_and_held_out_speakers_reach_the_done_clips(grid_cache, tmp_path):
    """Preprocessing again where a corpus now is (or with --test-speakers) updates the done clips' records."""
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(grid_cache, cache)
    moved = tmp_path / "moved"
    shutil.copytree(GRID, moved)
    again = preprocess(moved, cache, workers=1, progress=False, test_speakers=("s4",))
    assert again["this_run"]["clips"] == 0
    metas = [json.loads(p.read_text()) for p in cache.glob("*/meta.json")]
    assert metas and all(m["path"].startswith(str(moved)) for m in metas)
    assert {m["split"] for m in metas if m["speaker"] == "s4"} == {"test"}


def test_preprocess_caches_clips_and_reports_the_damaged_one(grid_cache):
    report = json.loads((grid_cache / "report.json").read_text())
    assert report["clips_ok"] == 5 and list(report["failed"]) == ["s4/bbaf2a"]
    assert "damaged video" in report["failed"]["s4/bbaf2a"]
    clip = grid_cache / "s1__bbaf2n"
    meta = json.loads((clip / "meta.json").read_text())
    mouth, mel = np.load(clip / "mouth.npy"), np.load(clip / "mel.npy")
    assert mouth.shape == (meta["n_frames"], 64, 64, 3) and mouth.dtype == np.uint8
    assert np.load(clip / "face.npy").shape == (meta["n_frames"], 128, 128, 3)
    assert mel.shape == (4 * meta["n_frames"], 80)
    assert np.load(clip / "landmarks_mouth.npy").shape == (meta["n_frames"], 68, 2)
    assert meta["timing"] == "given"  # from the .align file
    untimed = json.loads((grid_cache / "s4__bbilzs" / "meta.json").read_text())  # no .align: forced alignment
    assert untimed["timing"] == "forced alignment"
    spoken = [w for w in untimed["words"] if w["word"] != "sil"]
    assert [w["word"] for w in spoken] == "bin blue in l zero soon".split()
    assert all(0 <= w["start"] < w["end"] <= untimed["n_frames"] for w in spoken)
    assert all(a["end"] <= b["start"] for a, b in zip(spoken, spoken[1:]))


def test_rerun_skips_done_clips_and_shards_split_work(grid_cache, tmp_path):
    again = preprocess(GRID, grid_cache, workers=1, progress=False)
    assert again["this_run"]["clips"] == 0  # 5 done, 1 failed before (not tried again without --retry-failed)
    assert again["this_run"]["skipped_done"] == 5 and again["this_run"]["skipped_failed"] == 1
    assert parse_shard("1/3") == (1, 3)
    with pytest.raises(ValueError, match="i/N"):
        parse_shard("3")
    a = preprocess(GRID, tmp_path, workers=1, shard="0/2", limit=1, progress=False)
    b = preprocess(GRID, tmp_path, workers=1, shard="1/2", limit=1, progress=False)
    assert a["this_run"]["clips"] == b["this_run"]["clips"] == 1
    assert a["clips_ok"] + a["clips_failed"] == 1 and b["clips_ok"] + b["clips_failed"] == 2
    assert len(b["missing"]) == 6 - 2 and again["missing"] == []  # the fixture corpus has 6 clips; 2 are done


def test_dataset_items_have_the_documented_shapes(grid_cache):
    data = LipDataset(grid_cache, split=None, faces=True)
    item = data[3]
    assert item["identity"].shape == (3, 64, 64)
    assert item["mouth"].shape == (3, 16, 64, 64)
    assert item["mel"].shape == item["mel_wrong"].shape == (1, 64, 80)
    assert item["face"].shape == (3, 16, 128, 128) and item["face_identity"].shape == (3, 128, 128)
    assert item["landmarks"].shape == (16, 68, 2) and item["silent"].dtype == torch.bool
    assert -1 <= item["mouth"].min() and item["mouth"].max() <= 1
    assert not torch.equal(item["mel"], item["mel_wrong"])
    # the same index gives the same item (fixed validation sets); the window matches the cache
    assert torch.equal(data[3]["identity"], item["identity"])
    clip = grid_cache / item["clip"].replace("/", "__")
    mel = torch.from_numpy(np.load(clip / "mel.npy"))[item["start"] * 4:item["start"] * 4 + 64]
    assert torch.equal(item["mel"][0], mel)


def test_dataset_marks_silence_from_word_timings(grid_cache):
    data = LipDataset(grid_cache, split=None, clips=["s1/bbaf2n"], stride=16)
    silent = data.silent_frames(0)
    assert silent[:23].all() and not silent[24:53].any() and silent[53:74].all()  # sil 0-23.75, words, sil 53-74.5


def test_clip_opening_without_a_face_is_trimmed_with_its_audio_and_words(tmp_path):
    import shutil

    from lipgen import media

    source = GRID / "s1/video/bbaf2n.mp4"
    frames, audio = media.read_video(source), media.read_audio(source)
    frames[:10] = 128  # a grey opening, as 11 of GRID s1's clips have
    (tmp_path / "grid/s9/video").mkdir(parents=True)
    (tmp_path / "grid/s9/align").mkdir()
    media.write_mp4(tmp_path / "grid/s9/video/bbaf2n.mp4", frames, audio)
    shutil.copy(GRID / "s1/align/bbaf2n.align", tmp_path / "grid/s9/align/")
    report = preprocess(tmp_path / "grid", tmp_path / "cache", workers=1, progress=False)
    assert report["clips_ok"] == 1
    meta = json.loads((tmp_path / "cache/s9__bbaf2n/meta.json").read_text())
    assert meta["trimmed_start_frames"] == 10 and meta["n_frames"] == 65
    assert meta["words"][1]["start"] == pytest.approx(23.75 - 10)  # "bin" moved with the cut
    assert np.load(tmp_path / "cache/s9__bbaf2n/mel.npy").shape == (4 * 65, 80)


def test_two_clips_with_one_id_are_refused_before_any_work(tmp_path):
    clip = GRID / "s1" / "video" / "bbaf2n.mp4"
    for folder in ("video", "hq"):  # the same name in two folders of one speaker: one cache id
        (tmp_path / "corpus" / "s1" / folder).mkdir(parents=True)
        (tmp_path / "corpus" / "s1" / folder / clip.name).symlink_to(clip)
    with pytest.raises(ValueError, match="two clips have the id s1/bbaf2n"):
        preprocess(tmp_path / "corpus", tmp_path / "cache", workers=1, progress=False)
    assert not (tmp_path / "cache").exists()


def test_leftovers_of_killed_workers_are_removed_and_sources_stored_whole(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from lipgen.files import temporary_suffix

    cache = tmp_path / "cache"
    cache.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = cache / f".s1__bbaf9x{temporary_suffix(gone.pid)}"  # a worker killed while writing this clip
    alive = cache / f".s1__bbaf8x{temporary_suffix()}"  # a clip another process is writing now
    stale.mkdir(), alive.mkdir()
    preprocess(GRID, cache, workers=1, limit=1, progress=False)
    assert not stale.exists() and alive.exists()
    paths = [Path(json.loads(line)["path"]) for line in (cache / "manifest.jsonl").read_text().splitlines()]
    assert paths and all(p.is_absolute() and p.is_file() for p in paths)  # the cache is read from any folder


def test_a_clip_another_run_finished_meanwhile_is_taken_as_done(grid_cache):
    """Two runs of one shard at once (a scheduler resubmitting a job): the second to finish a clip keeps the first's."""
    from lipgen import media
    from lipgen.data.preprocess import _work

    utt = next(u for u in corpora.load_corpus("grid", GRID.absolute()) if u.id == "s1/bbaf2n")
    before = (grid_cache / "s1__bbaf2n" / "meta.json").read_text()
    clip_id, reason, _ = _work((utt, str(grid_cache), media.MAX_SECONDS))
    assert (clip_id, reason) == ("s1/bbaf2n", None)
    assert (grid_cache / "s1__bbaf2n" / "meta.json").read_text() == before
    assert not [p for p in grid_cache.iterdir() if p.name.startswith(".s1__bbaf2n")]  # its own copy removed


def test_a_cache_read_in_whole_pixels_is_not_mixed_with_a_new_reading(grid_cache, tmp_path):
    """Caches made before lipgen read small faces between pixels keep their whole-pixel landmarks; going on with
    one would mix two readings, so it is refused (and training and evaluation on it say so)."""
    import shutil

    from lipgen.data.cache import CORPUS_FILE, WHOLE_PIXELS, landmark_side, reading_differs
    from lipgen.face import LANDMARK_SIDE

    assert json.loads((grid_cache / CORPUS_FILE).read_text())["landmark_side"] == LANDMARK_SIDE
    cache = tmp_path / "old"
    shutil.copytree(grid_cache, cache)
    (cache / CORPUS_FILE).write_text(json.dumps({"corpus": "grid"}))  # as caches recorded before
    assert landmark_side(cache) == LANDMARK_SIDE and reading_differs(cache) is None  # GRID's small faces, between
    for path in cache.glob("*/landmarks.npy"):  # as read in whole pixels
        np.save(path, np.round(np.load(path)))
    assert landmark_side(cache) == WHOLE_PIXELS and "read in whole pixels" in reading_differs(cache)
    assert preprocess(GRID, cache, workers=1, progress=False)["this_run"]["clips"] == 0  # nothing to do: no mixing
    assert json.loads((cache / CORPUS_FILE).read_text()) == {"corpus": "grid", "landmark_side": WHOLE_PIXELS}
    shutil.rmtree(cache / "s1__bbaf2n")
    with pytest.raises(ValueError, match="whole pixels.*mix the two readings in one cache. Preprocess into a new"):
        preprocess(GRID, cache, workers=1, progress=False)
    assert not (cache / "s1__bbaf2n").exists()
