"""Cache-free evaluation on a folder of videos (lipgen.evaluation.wild) and of portraits (.portraits)."""

import csv
import json
import shutil

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from lipgen import face, media
from lipgen.cli import main
from lipgen.data.corpora import SILENCE, grid, read_align
from lipgen.evaluation.portraits import PORTRAIT_COLUMNS, evaluate_portraits, prepare_speech
from lipgen.evaluation.wild import (COLUMNS, downscale, evaluate_videos, mouth_opening, prepared_face_index,
                                   read_face_indices, roll_degrees, slug, speech_frames, still_landmarks)
from lipgen.generate import SAMPLE_FACE

from .conftest import FIXTURES, GRID, HELDOUT, SHARED, needs_shared

WILD = FIXTURES / "wild"
CLIP = WILD / "videos" / "s1_bbaf2n_2s.mp4"  # 2 s of GRID s1: 0.5 s of silence, then speech
SPEECH = GRID / "s1" / "video" / "bbaf2n.mp4"  # 3 s, word timings in ../align/bbaf2n.align


def silent_in_align(align, n_frames: int) -> np.ndarray:
    centres = np.arange(n_frames) + 0.5
    silent = np.zeros(n_frames, bool)
    for w in read_align(align):
        if w.word in SILENCE:
            silent |= (centres >= w.start) & (centres < w.end)
    return silent


@pytest.fixture(scope="module")
def reference_rows(tmp_path_factory):
    """The ground truth and static rows of the fixture clip, cut to 1.6 s and downscaled to 320 px."""
    out = tmp_path_factory.mktemp("videos")
    summary = evaluate_videos(WILD / "videos", out / "report", models=[], seconds=1.6, max_side=320,
                              work=out / "work", progress=False)
    return out, summary


def test_ground_truth_is_perfect_and_static_is_worse(reference_rows):
    _, summary = reference_rows
    truth, static = summary["means"]["ground truth | reference"], summary["means"]["static | reference"]
    assert truth["n"] == static["n"] == 1 and summary["complete"] == 1
    assert truth["lmd_iod"] == 0 and truth["opening_corr"] == pytest.approx(1)
    assert static["lmd_iod"] > 0.01 and static["lmd_vs_static"] == pytest.approx(1)
    # a held frame keeps its landmarks, up to the codec's noise read between pixels (face.LANDMARK_SIDE)
    work = reference_rows[0] / "work" / CLIP.name
    held, real = (mouth_opening(np.load(work / name)) for name in ("static.still-landmarks.npy", "clip.landmarks.npy"))
    assert np.ptp(held) < 0.02 < 0.05 < np.ptp(real)  # eye distances
    assert truth["identity_kept"] == static["identity_kept"] == 1
    assert truth["sync_conf"] > static["sync_conf"] and truth["sync_abs_offset"] <= 1


def test_video_reports(reference_rows):
    out, _ = reference_rows
    assert media.read_video(out / "work" / CLIP.name / "clip.mp4").shape == (40, 256, 320, 3)  # trimmed, downscaled
    for name in ("report.md", "report.csv", "report.json", "opening.png"):
        assert (out / "report" / name).stat().st_size > 0
    with open(out / "report" / "report.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["input"], r["row"]) for r in rows] == [(CLIP.name, "ground truth"), (CLIP.name, "static")]
    assert set(COLUMNS) <= set(rows[0]) and all(r["reason"] == "" for r in rows)
    report = (out / "report" / "report.md").read_text()
    assert "## from photo" in report
    glossary = report.split("## Columns")[1]  # a report says what its columns mean, docs or not
    assert f"av {av.__version__}" in report and "dlib " in report  # and what its numbers were made with,
    assert ", cpu " in report  # on which processor (Whisper's int8 features differ by ~2% between CPUs)
    assert all(f"- **{header}**" in glossary for header, _ in COLUMNS.values())


def test_silence_from_audio_agrees_with_grid_word_timings():
    agreement = []
    for video in sorted(GRID.glob("s1/video/*.mp4")) + sorted(HELDOUT.glob("s1/video/*.mp4")):
        audio = media.read_audio(video)
        n = audio.size // media.SAMPLES_PER_FRAME
        silent = silent_in_align(video.parent.parent / "align" / f"{video.stem}.align", n)
        agreement.append(np.mean(~speech_frames(audio, n) == silent))
    assert min(agreement) > 0.85 and np.mean(agreement) > 0.9, agreement


def test_speech_timings_from_align_file_or_forced_alignment(tmp_path):
    audio, silent = prepare_speech([SPEECH])
    assert audio.size == len(silent) * media.SAMPLES_PER_FRAME
    assert np.array_equal(silent, silent_in_align(GRID / "s1" / "align" / "bbaf2n.align", len(silent)))
    shutil.copy(SPEECH, tmp_path / "s1_bbaf2n.mp4")  # no .align beside it: the name spells the GRID sentence
    _, aligned = prepare_speech([tmp_path / "s1_bbaf2n.mp4"])
    assert np.mean(aligned == silent) > 0.9
    (tmp_path / "speech.mp4").symlink_to(SPEECH)
    with pytest.raises(Exception, match="no word timings"):
        prepare_speech([tmp_path / "speech.mp4"])


def test_several_faces_need_a_manifest(tmp_path, caplog):
    frames = media.read_video(CLIP)[:20]
    folder = tmp_path / "videos"
    media.write_mp4(folder / "two.mp4", np.concatenate([frames, frames[:, :, ::-1]], axis=2),
                    media.read_audio(CLIP)[:20 * media.SAMPLES_PER_FRAME])
    summary = evaluate_videos(folder, tmp_path / "report", models=[], seconds=0.8, work=tmp_path / "work",
                              expert=None, progress=False)
    assert summary["complete"] == 0 and "manifest" in summary["skipped"]["two.mp4"]
    assert "two.mp4" in (tmp_path / "report" / "report.md").read_text()
    (tmp_path / "faces.csv").write_text("# file, face index\ntwo.mp4, 1\ntow.mp4, 0\n")  # and a typo
    with caplog.at_level("WARNING", logger="lipgen.evaluation.wild"):
        summary = evaluate_videos(folder, tmp_path / "report", models=[], seconds=0.8, work=tmp_path / "work",
                                  manifest=tmp_path / "faces.csv", expert=None, progress=False)
    assert summary["complete"] == 1 and summary["means"]["ground truth | reference"]["lmd_iod"] == 0
    assert "1 entry names no input in the folder: tow.mp4" in caplog.text


def test_face_index_follows_the_face_through_downscaling():
    frame = media.read_video(CLIP)[0]
    bigger = np.asarray(Image.fromarray(frame).resize((468, 374)))[:288, :360]  # the same face, 1.3x larger
    original = np.concatenate([bigger, frame[:, ::-1]], axis=1)  # (288, 720, 3): face 0 (largest) is on the left
    prepared = downscale(original, 360)
    from lipgen.face import detect_faces

    left = prepared_face_index(original, prepared, 0)
    right = prepared_face_index(original, prepared, 1)
    boxes = detect_faces(prepared)
    assert {left, right} == {0, 1} and boxes[left][0] < boxes[right][0]


def test_portraits_end_to_end(tmp_path):
    folder = tmp_path / "portraits"
    folder.mkdir()
    shutil.copy(WILD / "portraits" / "s4_bbilzs_frame0.jpg", folder)
    Image.fromarray(np.full((120, 160, 3), 128, np.uint8)).save(folder / "wall.png")  # no face in it
    summary = evaluate_portraits(folder, tmp_path / "report", models=["glance"], speech=[SPEECH],
                                 work=tmp_path / "work", progress=False)
    assert summary["no_face_found"] == ["wall.png"] and "no face found" in summary["skipped"]["wall.png"]
    with open(tmp_path / "report" / "report.csv") as f:
        rows = list(csv.DictReader(f))
    measured = [r for r in rows if r["input"] == "s4_bbilzs_frame0.jpg"]
    assert [r["row"] for r in measured] == ["static", "glance"]
    assert set(PORTRAIT_COLUMNS) <= set(rows[0]) and all(r["reason"] == "" for r in measured)
    assert all(int(float(r["frames"])) == 75 for r in measured)  # 3 s of speech at 25 fps
    static, glance = summary["means"]["static | reference"], summary["means"]["glance | from photo"]
    assert static["opening_ratio"] == pytest.approx(1) and static["envelope_corr"] == 0
    assert glance["opening_ratio"] > 1 and glance["envelope_corr"] > 0 and glance["identity_kept"] > 0.5
    report = (tmp_path / "report" / "report.md").read_text()
    assert "wall.png: FaceNotFoundError: no face found" in report
    assert all(f"- **{header}**" in report.split("## Columns")[1] for header, _ in PORTRAIT_COLUMNS.values())
    assert json.loads((tmp_path / "report" / "report.json").read_text())["no_face_found"] == ["wall.png"]


def test_portraits_at_another_expressiveness(tmp_path):
    folder = tmp_path / "portraits"
    folder.mkdir()
    shutil.copy(WILD / "portraits" / "s4_bbilzs_frame0.jpg", folder)
    run = lambda gain: evaluate_portraits(folder, tmp_path / f"report{gain}", models=["motion"], speech=[SPEECH],
                                          work=tmp_path / "work", expert=None, progress=False, expressiveness=gain)
    still, default = run(0.0), run(None)
    held, moving = still["means"]["motion, expressiveness 0 | from photo"], default["means"]["motion | from photo"]
    assert moving["opening_speech"] > 2 * held["opening_speech"]  # no motion: the closed rest shape throughout
    assert still["settings"]["expressiveness"] == 0.0 and default["settings"]["expressiveness"] is None
    assert len(list((tmp_path / "work").glob("*/motion*.mp4"))) == 2  # each its own video, not the other's reused


def test_cli_evaluate_videos_with_a_model(tmp_path, capsys):
    assert main(["evaluate-videos", str(WILD / "videos"), "--out", str(tmp_path / "report"), "--models", "glance",
                 "--seconds", "1", "--max-side", "320", "--no-sync"]) == 0
    printed = capsys.readouterr().out
    assert "glance (from photo)" in printed and "glance (dubbing)" in printed
    rows = {r["mode"]: r for r in csv.DictReader(open(tmp_path / "report" / "report.csv")) if r["row"] == "glance"}
    assert float(rows["from photo"]["cpbd"]) > 0
    assert rows["voice only"]["cpbd"] in ("", "nan")  # another face's sharpness is not the clip's to compare
    with pytest.raises(SystemExit) as help_exit:
        main(["evaluate-portraits", "--help"])
    assert help_exit.value.code == 0


@needs_shared
def test_an_unseen_clip(tmp_path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "clip.mp4").symlink_to(SHARED / "unseen" / "videos" / "vexpress_RD_Radio10.mp4")
    summary = evaluate_videos(tmp_path / "videos", tmp_path / "report", models=[], seconds=2, expert=None,
                              progress=False)
    assert summary["complete"] == 1 and summary["means"]["ground truth | reference"]["lmd_iod"] == 0


def test_a_tilted_still_head_is_read_upright():
    """The astronaut turned 30 degrees: her landmarks read turned upright land nearer the upright photo's own,
    turned with her, than those read on the tilted face; an upright head is read as before."""
    image = media.read_image(SAMPLE_FACE)
    box = face.choose_face(face.detect_faces(image), 0)
    points = face.landmarks_in_box(image, box)
    assert abs(roll_degrees(points)) < 5
    assert np.array_equal(still_landmarks(image[None], box, upright=True)[0], points)
    turn = cv2.getRotationMatrix2D(tuple(float(v) for v in points[27:36].mean(0)), 30, 1.0)
    tilted = cv2.warpAffine(image, turn, image.shape[1::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    expected = face.transform_points(points[None], turn[None])[0]
    tilted_box = face.choose_face(face.detect_faces(tilted), 0)
    plain, upright = (still_landmarks(tilted[None], tilted_box, upright=u)[0] for u in (False, True))
    assert roll_degrees(upright) == pytest.approx(roll_degrees(expected), abs=3)
    error = {name: np.linalg.norm(p - expected, axis=1).mean() for name, p in (("plain", plain), ("upright", upright))}
    assert error["upright"] < 0.7 * error["plain"]


def test_an_output_in_the_way_is_said_before_any_work(tmp_path):
    (tmp_path / "report").write_text("keep")
    for evaluate, folder in ((evaluate_videos, WILD / "videos"), (evaluate_portraits, SAMPLE_FACE.parent)):
        with pytest.raises(FileExistsError):
            evaluate(folder, tmp_path / "report", models=[])
    assert (tmp_path / "report").read_text() == "keep"


def test_folders_that_would_mix_inputs_and_outputs_are_refused(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.full((120, 160, 3), 128, np.uint8)).save(folder / "wall.png")
    for evaluate in (evaluate_videos, evaluate_portraits):
        for options, error in [({"out": folder}, "--out is the input folder"),
                               ({"out": tmp_path / "r", "work": folder / "."}, "--work is the input folder"),
                               ({"out": tmp_path / "r", "max_side": 0}, "--max-side")]:
            with pytest.raises(ValueError, match=error):
                evaluate(folder, models=[], **options)
    assert sorted(p.name for p in folder.iterdir()) == ["wall.png"] and not (tmp_path / "r").exists()
    # a run that evaluates nothing writes its report and still fails
    assert main(["evaluate-portraits", str(folder), "--out", str(tmp_path / "r"), "--models", "glance",
                 "--speech", str(SPEECH), "--no-sync"]) == 2
    assert "no input was evaluated with every row" in capsys.readouterr().err
    assert "wall.png: FaceNotFoundError" in (tmp_path / "r" / "report.md").read_text()


def test_work_folders_of_names_that_differ_only_in_odd_characters_are_apart():
    assert slug("clip_1.mp4") == "clip_1.mp4"  # plain names keep their folders
    assert len({slug(n) for n in ("a b.png", "a_b.png", "a-b.png", "日本.png", "中国.png")}) == 5


def test_manifests_in_the_forms_users_write_them(tmp_path):
    forms = {"faces.csv": '"my clip, take 2.mp4",1\nother.mp4 0  # spaces\n', "faces.json": '{"my clip.mp4": 2}'}
    for name, text in forms.items():
        (tmp_path / name).write_text(text)
    assert read_face_indices(tmp_path / "faces.csv") == {"my clip, take 2.mp4": 1, "other.mp4": 0}
    assert read_face_indices(tmp_path / "faces.json") == {"my clip.mp4": 2}
    for name, text, error in [("list.json", '[["a.mp4", 1]]', "holds a JSON list"),
                              ("broken.json", '{"a.mp4": 1,', "not valid JSON"),
                              ("half.csv", "a.mp4,0.7\n", "'0.7' is not a face index"),
                              ("minus.csv", "a.mp4,-1\n", "'-1' is not a face index"),
                              ("endless.csv", "a.mp4,inf\n", "a whole number")]:
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=f"{name}.*{error}"):
            read_face_indices(tmp_path / name)


def test_a_bad_align_file_is_named_and_does_not_end_a_corpus(tmp_path, caplog):
    (tmp_path / "bad.align").write_text("0 23750 sil\n23750 garbage bin\n")
    with pytest.raises(ValueError, match=r"bad.align, line 2: not a GRID alignment line"):
        read_align(tmp_path / "bad.align")
    (tmp_path / "empty.align").write_text("")
    with pytest.raises(ValueError, match="empty.align: no words in it"):
        read_align(tmp_path / "empty.align")
    root = tmp_path / "grid"
    (root / "s1" / "video").mkdir(parents=True)
    (root / "s1" / "align").mkdir()
    shutil.copy(SPEECH, root / "s1" / "video" / "bbaf2n.mp4")
    shutil.copy(tmp_path / "bad.align", root / "s1" / "align" / "bbaf2n.align")
    with caplog.at_level("WARNING", logger="lipgen.data.corpora"):
        utterances = grid(root)
    assert [w.word for w in utterances[0].words] == "bin blue at f two now".split()
    assert "bbaf2n.align, line 2" in caplog.text


def test_what_cannot_be_judged_is_refused_before_any_work_or_skipped(tmp_path):
    for seconds in (0, -5, 0.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="seconds"):
            evaluate_videos(WILD / "videos", tmp_path / "r", models=[], seconds=seconds)
    with pytest.raises(ValueError, match="unknown model 'nosuch'"):
        evaluate_videos(WILD / "videos", tmp_path / "r", models=["nosuch"])
    with pytest.raises(NotADirectoryError, match="is a file"):
        evaluate_videos(CLIP, tmp_path / "r", models=[])
    assert not (tmp_path / "r").exists()
    folder = tmp_path / "videos"
    frames, audio = media.read_video(CLIP), media.read_audio(CLIP)
    media.write_mp4(folder / "short.mp4", frames[:12], audio[:12 * media.SAMPLES_PER_FRAME])  # 0.48 s
    shutil.copy(CLIP, folder / "whole.mp4")
    summary = evaluate_videos(folder, tmp_path / "r", models=[], seconds=1, work=tmp_path / "w", expert=None,
                              progress=False)
    assert summary["complete"] == 1 and "too short to judge" in summary["skipped"]["short.mp4"]
    assert summary["means"]["static | reference"]["n"] == 1
