"""lipgen lipread / retrieve and the representation measures, on a tiny DAVS model and the fixtures."""

import numpy as np
import pytest
import torch
from PIL import Image

from lipgen.cli import main
from lipgen.evaluation.representation import linear_probe, retrieval
from lipgen.lipread import lipread, retrieve

from .conftest import GRID, HELDOUT


def test_lipread_reads_windows_into_words(tiny_davs, capsys):
    clip = GRID / "s1/video/bbaf2n.mp4"
    for kwargs in ({"video": clip}, {"audio": clip}, {"video": clip, "audio": clip}):
        words = lipread(checkpoint=tiny_davs, **kwargs)
        assert words and all(0 <= w.probability <= 1 and w.start < w.end <= 3.1 for w in words)
        assert all(a.word != b.word or a.end < b.start for a, b in zip(words, words[1:]))  # runs are merged
        assert all(a.end <= b.start for a, b in zip(words, words[1:]))  # one word at a time
        assert 0.6 < words[0].start and words[-1].end < 2.5  # the silence around the sentence (0.95-2.12 s) unread
    assert main(["lipread", "--video", str(clip), "--checkpoint", str(tiny_davs)]) == 0
    assert " s  " in capsys.readouterr().out


def test_retrieve_ranks_every_candidate(tiny_davs, capsys):
    videos = [GRID / "s1/video/bbaf2n.mp4", GRID / "s1/video/bbaf3s.mp4", GRID / "s1/video/bbaf4p.mp4"]
    ranked = retrieve(videos[1], videos, query_is_audio=True, checkpoint=tiny_davs)
    assert sorted(p for p, _ in ranked) == sorted(map(str, videos))
    assert all(-1 - 1e-5 <= s <= 1 + 1e-5 for _, s in ranked)
    assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)
    assert main(["retrieve", "--video", str(videos[0]), "--audios", *map(str, videos),
                 "--checkpoint", str(tiny_davs)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_retrieval_and_probe_measures_on_known_inputs():
    torch.manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(20, 8), dim=1)
    words = torch.arange(20)
    perfect = retrieval(x, x, words)
    assert perfect["R@1"] == 1 and perfect["median_rank"] == 1 and perfect["word_R@1"] == 1
    shuffled = retrieval(x, x[torch.randperm(20)], words)
    assert shuffled["R@1"] < 0.5
    y = torch.randint(0, 5, (400,))
    informative = torch.nn.functional.one_hot(y, 5).float() + 0.1 * torch.randn(400, 5)
    noise = torch.randn(400, 5)
    assert linear_probe(informative[:300], y[:300], informative[300:], y[300:], classes=5) > 0.9
    assert linear_probe(noise[:300], y[:300], noise[300:], y[300:], classes=5) < 0.45


def _common_subsequence(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def test_shipped_davs_reads_held_out_clips(heldout_cache):
    """The shipped DAVS on GRID clips it never saw: word accuracy on their timed words, and `lipread`'s
    running transcript against the sentence."""
    from lipgen.data.corpora import SILENCE, read_align
    from lipgen.data.dataset import WordDataset
    from lipgen.evaluation.representation import _features, lipreading
    from lipgen.generate import load_generator

    system = load_generator("davs")
    words = WordDataset(heldout_cache, "test", window=system.config.n_frames, faces=True)
    accuracy = lipreading(_features(system, words))  # 18 words, chance 1/51
    assert accuracy["accuracy_video"] > 0.5 and accuracy["accuracy_audio"] > 0.8, accuracy
    assert accuracy["accuracy_both"] >= max(accuracy["accuracy_video"], accuracy["accuracy_audio"]), accuracy
    for video in sorted((HELDOUT / "s1" / "video").glob("*.mp4")):
        sentence = [w.word for w in read_align(HELDOUT / "s1" / "align" / f"{video.stem}.align")
                    if w.word not in SILENCE]
        heard = [w.word for w in lipread(audio=video)]
        seen = [w.word for w in lipread(video=video)]
        assert _common_subsequence(heard, sentence) >= 5, (sentence, heard)  # of 6 words, in order
        assert _common_subsequence(seen, sentence) >= 3, (sentence, seen)


def test_lips_and_sound_of_different_lengths_are_refused(tiny_davs, tmp_path):
    from lipgen import media

    clip = GRID / "s1/video/bbaf2n.mp4"
    short = media.write_wav(tmp_path / "short.wav", media.read_audio(clip)[:media.SAMPLE_RATE // 2])  # 0.5 s for 3 s
    with pytest.raises(media.MediaError, match=r"0\.5 s of sound for 3\.0 s of video"):
        lipread(video=clip, audio=short, checkpoint=tiny_davs)


def test_retrieve_leaves_out_an_unreadable_candidate_and_takes_one_query(tiny_davs, tmp_path, capsys):
    import numpy as np

    from lipgen import media

    clip = GRID / "s1/video/bbaf2n.mp4"
    faceless = media.write_mp4(tmp_path / "faceless.mp4", np.full((40, 128, 128, 3), 90, np.uint8),
                               media.read_audio(clip)[:40 * media.SAMPLES_PER_FRAME])
    ranked = retrieve(clip, [faceless, clip], query_is_audio=True, checkpoint=tiny_davs)
    assert [p for p, _ in ranked] == [str(clip)]
    with pytest.raises(media.MediaError, match="no candidate could be read"):
        retrieve(clip, [faceless], query_is_audio=True, checkpoint=tiny_davs)
    assert main(["retrieve", "--audio", str(clip), "--videos", str(clip), "--video", str(clip),
                 "--checkpoint", str(tiny_davs)]) == 2
    assert "one query at a time" in capsys.readouterr().err


def test_a_video_with_a_silent_sound_track_is_read_from_its_lips(tiny_davs, tmp_path, caplog):
    from lipgen import media

    clip = GRID / "s1/video/bbaf2n.mp4"
    frames = media.read_video(clip)
    mute = media.write_mp4(tmp_path / "mute.mp4", frames, np.zeros(len(frames) * media.SAMPLES_PER_FRAME))
    with caplog.at_level("WARNING", logger="lipgen.lipread"):
        words = lipread(video=mute, checkpoint=tiny_davs)
    assert words and "sound track is silent" in caplog.text
    assert words[0].start < 0.3 and words[-1].end > 2.7  # every window read: no silence left out


def test_a_still_image_a_sound_file_or_no_name_as_the_video_is_refused_for_what_it_is(tiny_davs, tmp_path):
    from lipgen import media

    clip = GRID / "s1/video/bbaf2n.mp4"
    photo = tmp_path / "face.png"
    Image.fromarray(media.read_video(clip)[0]).save(photo)
    sound = media.write_wav(tmp_path / "speech.wav", media.read_audio(clip))
    for video, said in ((photo, "a still image"), (sound, "sound only"), ("", "an empty file name")):
        with pytest.raises(media.MediaError, match=said):
            lipread(video=video, checkpoint=tiny_davs)
    assert lipread(audio=sound, checkpoint=tiny_davs)  # the same sound read as audio
