"""lipgen batch (one model, each face tracked once, failures reported while the rest go on) and lipgen score
(sync offset found on a clip whose audio is shifted)."""

import json

import numpy as np
import pytest

from lipgen import cli, media
from lipgen.batch import batch, folder_jobs, read_jobs
from lipgen.errors import LipgenError
from lipgen.generate import SAMPLE_FACE
from lipgen.score import score, score_video

from .conftest import GRID, HELDOUT

CLIPS = sorted((GRID / "s1" / "video").glob("*.mp4"))


def test_batch_job_list_one_bad_job(tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    jobs = [{"audio": str(CLIPS[0]), "face": str(SAMPLE_FACE), "out": "a.mp4"},
            {"audio": "bad.wav", "face": str(SAMPLE_FACE), "out": "b.mp4"},
            {"audio": str(CLIPS[1]), "face": str(SAMPLE_FACE), "fps": 30, "pad": 0.1},
            {"audio": str(CLIPS[0]), "face": str(CLIPS[1]), "out": "d.mp4", "loop": "forward"}]
    (tmp_path / "jobs.jsonl").write_text("".join(json.dumps(j) + "\n" for j in jobs))
    code = cli.main(["batch", str(tmp_path / "jobs.jsonl"), "-q"])
    out = capsys.readouterr().out
    assert code == 1
    assert "3 of 4 jobs done, 1 failed" in out and "failed job 2" in out and "not a readable" in out
    assert (tmp_path / "a.mp4").is_file() and (tmp_path / "d.mp4").is_file() and not (tmp_path / "b.mp4").exists()
    third = tmp_path / f"astronaut_{CLIPS[1].stem}.mp4"  # default name, in the list's folder
    assert media.video_fps(third) == 30


def test_batch_folders_and_bad_lists(tmp_path):
    speech, faces = tmp_path / "speech", tmp_path / "faces"
    speech.mkdir(), faces.mkdir()
    for clip in CLIPS[:2]:
        (speech / clip.name).symlink_to(clip)
    (faces / "astronaut.png").symlink_to(SAMPLE_FACE)
    assert cli.main(["batch", "--audio-dir", str(speech), "--face-dir", str(faces), "--out-dir", str(tmp_path / "o"),
                     "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [f"astronaut_{c.stem}.mp4" for c in CLIPS[:2]]
    (tmp_path / "jobs.csv").write_text("audio,face,colour\nx.wav,y.png,red\n")
    with pytest.raises(LipgenError, match="unknown column"):
        read_jobs(tmp_path / "jobs.csv")
    (tmp_path / "ok.csv").write_text("audio,face,face_index\nx.wav,y.png,1\n")
    assert read_jobs(tmp_path / "ok.csv") == [{"audio": tmp_path / "x.wav", "face": tmp_path / "y.png",
                                                "face_index": "1"}]
    summary = batch(tmp_path / "ok.csv", progress=False)
    assert summary["done"] == [] and "no such file" in summary["failed"][0]["reason"]


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    """A real held-out clip, and the same frames with the audio 4 frames (160 ms) late."""
    clip = sorted(HELDOUT.glob("s1/video/*.mp4"))[0]
    frames, audio = media.read_video(clip), media.read_audio(clip)
    late = np.concatenate([np.zeros(4 * media.SAMPLES_PER_FRAME, np.float32), audio])[: audio.size]
    path = tmp_path_factory.mktemp("score") / "late.mp4"
    media.write_mp4(path, frames, late)
    return clip, path


def test_score_finds_the_offset_of_shifted_audio(shifted, tmp_path, capsys):
    clip, late = shifted
    rows = score([clip, late, SAMPLE_FACE], out=tmp_path / "s.json")
    real, moved, photo = rows
    assert real["sync_offset"] in (-1, 0, 1) and moved["sync_offset"] in (3, 4, 5)
    assert moved["sync_offset"] - real["sync_offset"] == 4
    assert moved["sync_conf"] < real["sync_conf"] and moved["sync_dist"] > real["sync_dist"]
    assert 0 < real["opening_silence"] < real["opening_speech"]  # a real speaker closes the mouth in silence
    assert real["jitter"] > 0 and 0 <= real["cpbd"] <= 1 and real["seconds"] == pytest.approx(3, abs=0.1)
    assert set(photo) == {"video", "error"}  # a photo cannot be scored; the others still were
    assert json.loads((tmp_path / "s.json").read_text())[1]["sync_offset"] == moved["sync_offset"]
    assert cli.main(["score", str(late)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert "offset (frames)" in table[0] and f"| {moved['sync_offset']} |" in table[2]
    with pytest.raises(media.MediaError, match="needs at least"):
        short = tmp_path / "short.mp4"
        media.write_mp4(short, media.read_video(clip)[:10], media.read_audio(clip)[:6400])
        score_video(short)


def test_score_never_writes_over_a_scored_video(tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(CLIPS[0].read_bytes())
    with pytest.raises(media.MediaError, match="would destroy the input"):
        score([video], out=video)
    assert video.read_bytes() == CLIPS[0].read_bytes()
    rows = score([video], out=tmp_path / "new" / "scores.json")  # a missing folder is made
    assert json.loads((tmp_path / "new" / "scores.json").read_text()) == json.loads(json.dumps(rows))
    assert rows[0]["video"] == str(video) and "error" not in rows[0]
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["scores.json"]
    assert score(str(video)) == score(video) == rows  # one path, not its letters


def test_job_lists_as_spreadsheets_save_them(tmp_path):
    (tmp_path / "excel.csv").write_text("\ufeffaudio, face ,out\n a.wav ,b.png, c.mp4\n,,\n", encoding="utf-8")
    assert read_jobs(tmp_path / "excel.csv") == [{"audio": tmp_path / "a.wav", "face": tmp_path / "b.png",
                                                  "out": tmp_path / "c.mp4"}]
    (tmp_path / "comma.csv").write_text("audio,face,out\na.wav,b.png,my clip, final.mp4\n")
    with pytest.raises(LipgenError, match="line 2: more values than columns"):
        read_jobs(tmp_path / "comma.csv")


def test_no_two_jobs_write_one_file(tmp_path, caplog):
    jobs = [{"audio": "a.wav", "face": "f.png", "out": tmp_path / "o.mp4"},
            {"audio": "b.wav", "face": "f.png", "out": tmp_path / "o.mp4"}]
    with pytest.raises(LipgenError, match="jobs 1 and 2 would both write"):
        batch(jobs, progress=False)
    (tmp_path / "speech").mkdir(), (tmp_path / "faces").mkdir()
    for name in ("speech/x.wav", "speech/x.mp3", "speech/notes.txt", "faces/p.png", "faces/p.jpg", "faces/q.png"):
        (tmp_path / name).touch()
    with caplog.at_level("WARNING"):
        outs = sorted(job["out"].name for job in folder_jobs(tmp_path / "speech", tmp_path / "faces", tmp_path))
    assert outs == ["p-jpg_x-mp3.mp4", "p-jpg_x-wav.mp4", "p-png_x-mp3.mp4", "p-png_x-wav.mp4", "q_x-mp3.mp4",
                    "q_x-wav.mp4"]
    assert "1 file not taken for speech files (by their names): notes.txt" in caplog.text  # said, not dropped


def test_no_job_writes_over_an_input_and_a_rerun_resumes(tmp_path, capsys):
    face = tmp_path / "face.png"
    face.write_bytes(SAMPLE_FACE.read_bytes())
    jobs = [{"audio": str(CLIPS[0]), "face": str(face), "out": tmp_path / "a.mp4"},
            {"audio": str(CLIPS[1]), "face": str(face), "out": tmp_path / "b.mp4"}]
    with pytest.raises(LipgenError, match="job 2 would write .*face.png, the face of job 1"):
        batch([jobs[0], {**jobs[1], "out": face}], progress=False)
    assert face.read_bytes() == SAMPLE_FACE.read_bytes()
    with pytest.raises(LipgenError, match="--out-dir is the --face-dir"):
        folder_jobs(CLIPS[0].parent, tmp_path, tmp_path)
    first = batch(jobs[:1], progress=False)
    made = (tmp_path / "a.mp4").stat().st_mtime_ns
    again = batch(jobs, progress=False, resume=True)  # as after an interruption: job 1 is done, job 2 is not
    assert first["done"] == [str(tmp_path / "a.mp4")] and again["skipped"] == [str(tmp_path / "a.mp4")]
    assert again["done"] == [str(tmp_path / "b.mp4")] and (tmp_path / "a.mp4").stat().st_mtime_ns == made


def test_job_lists_as_people_write_them(tmp_path):
    (tmp_path / "none.csv").write_text("a.wav,b.png,c.mp4\n")
    with pytest.raises(LipgenError, match="the first line must name the columns"):
        read_jobs(tmp_path / "none.csv")
    (tmp_path / "semi.csv").write_text("audio;face\na.wav;b.png\n")
    with pytest.raises(LipgenError, match="not semicolons"):
        read_jobs(tmp_path / "semi.csv")
    (tmp_path / "caps.csv").write_text("Audio,Face\na.wav,b.png\n")
    (tmp_path / "list.json").write_text(json.dumps([{"audio": "a.wav", "face": "b.png"}]))
    expected = [{"audio": tmp_path / "a.wav", "face": tmp_path / "b.png"}]
    assert read_jobs(tmp_path / "caps.csv") == expected and read_jobs(tmp_path / "list.json") == expected
