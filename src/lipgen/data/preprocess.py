"""Corpus -> training cache: per clip, arrays a Dataset reads without decoding video or computing spectrograms.

Cache layout (one folder per clip, named by its id with '/' -> '__'):
    <cache>/<clip>/mouth.npy          (T, 64, 64, 3) uint8   mouth crops
    <cache>/<clip>/face.npy           (T, 128, 128, 3) uint8 aligned face crops
    <cache>/<clip>/mel.npy            (4T, 80) float32       log-mel, 4 rows per frame
    <cache>/<clip>/landmarks.npy      (T, 68, 2) float32     in original frame pixels
    <cache>/<clip>/landmarks_mouth.npy, landmarks_face.npy   the same in crop pixels
    <cache>/<clip>/mouth_matrix.npy, face_matrix.npy         (T, 2, 3) frame -> crop
    <cache>/<clip>/meta.json          id, speaker, words (frames), timing (their source), splits, source, sizes
    <cache>/manifest.jsonl            the corpus manifest
    <cache>/vocabulary.json           the corpus's word list (the label order of word classifiers)
    <cache>/_failed/<clip>.json       a clip that could not be used, and why
    <cache>/report.json               summary of the whole cache (all shards)

A clip folder appears only when complete (written under a temporary name, then renamed), so a
killed run loses at most the clips in flight, and a re-run skips what is done.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import logging
import os
import shutil
import time
import traceback
from dataclasses import asdict, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import face, media
from ..errors import FaceNotFoundError, LipgenError
from ..files import remove_leftovers, temporary_suffix, write_atomic
from ..models.base import WINDOW
from .align import align_words
from .cache import CORPUS_FILE, FAILED, clip_dir_name, landmark_side, missing_clips, reading_differs, write_vocabulary
from .corpora import SILENCE, Utterance, load_corpus, vocabulary, write_manifest

log = logging.getLogger(__name__)

MIN_FRAMES = WINDOW  # a clip shorter than one training window is of no use for training
MAX_LEAD_TRIM = 0.6  # share of a clip that may be dropped at its start for having no face (corrupt opening frames)
NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}  # disk full, over quota, read-only: the run's fault, not the clip's


def process_clip(utt: Utterance, folder: str | os.PathLike,
                 max_seconds: float = media.MAX_SECONDS) -> dict[str, np.ndarray | dict]:
    """Decode, track, crop and featurise one clip: the crops are written to `folder` (mouth.npy, face.npy)
    as they are made; the rest is returned (the arrays to save, and "meta"). Raises LipgenError (with the
    reason) if unusable.

    Two passes over the video, a frame at a time: landmarks, then crops. Memory holds neither the decoded
    video nor the crops, so it does not depend on the frame size, and grows with the clip's length only by
    the landmarks, audio and log-mel (about 2.5 kB per frame).
    """
    landmarks, detections = face.track_landmarks(media.iter_video(utt.path, max_seconds=max_seconds), face_index=0,
                                                 where=utt.path,
                                                 allow_missing=True)
    if len(landmarks) < MIN_FRAMES:
        raise LipgenError(f"too short: {len(landmarks)} frames, need at least {MIN_FRAMES}")
    audio = media.read_audio(utt.path, max_seconds=max_seconds)
    audio_frames = audio.size / media.SAMPLES_PER_FRAME
    if audio_frames < 0.5 * len(landmarks):
        raise LipgenError(f"audio covers {audio_frames:.0f} of {len(landmarks)} video frames: audio track cut short")
    seen = ~np.isnan(landmarks[:, 0, 0])
    lead = int(np.argmax(seen))  # some corpus clips open on grey or corrupt frames: drop them, with their audio
    limit = int(MAX_LEAD_TRIM * len(landmarks))
    if lead > limit:
        raise FaceNotFoundError(f"no face found in the first {limit + 1} frames of {utt.path}. Use a frontal, "
                                "well-lit video where the face is at least ~40 pixels wide.")
    if not seen[lead:].all():
        raise LipgenError(f"the face is missing from {int((~seen[lead:]).sum())} frames after frame {lead} (a cut "
                          "away?): a training clip needs the face throughout")
    n_frames = len(landmarks) - lead
    if n_frames < MIN_FRAMES:
        raise LipgenError(f"too short: {n_frames} frames with a face, need at least {MIN_FRAMES}")
    if lead:
        audio = audio[lead * media.SAMPLES_PER_FRAME:]
        utt = replace(utt, words=[replace(w, start=max(w.start - lead, 0), end=max(w.end - lead, 0))
                                  if w.start is not None else w for w in utt.words])
    face_matrix, mouth_matrix = face.crop_matrices(landmarks[lead:])
    track = face.FaceTrack(landmarks[lead:], face_matrix, mouth_matrix, detections)
    done = 0
    with _npy_stream(Path(folder) / "mouth.npy", (n_frames, face.MOUTH_SIZE, face.MOUTH_SIZE, 3)) as mouths, \
            _npy_stream(Path(folder) / "face.npy", (n_frames, face.FACE_SIZE, face.FACE_SIZE, 3)) as faces:
        for t, frame in enumerate(itertools.islice(media.iter_video(utt.path, max_seconds=max_seconds), lead, lead + n_frames)):
            mouths.write(face.crop(frame[None], mouth_matrix[t:t + 1], face.MOUTH_SIZE)[0].tobytes())
            faces.write(face.crop(frame[None], face_matrix[t:t + 1], face.FACE_SIZE)[0].tobytes())
            done = t + 1
    if done != n_frames:
        raise LipgenError(f"the video gave {lead + done} frames on a second reading, {len(landmarks)} on the first")
    utt, timing = timed(utt, audio)
    # times within the video (sound often runs a little past the last frame: AAC padding)
    utt = replace(utt, words=[replace(w, end=min(w.end, n_frames)) if w.start is not None else w
                              for w in utt.words if w.start is None or w.start < n_frames])
    meta = dict(asdict(utt), n_frames=n_frames, fps=media.VIDEO_FPS, frame_size=list(frame.shape[:2]),
                audio_frames=round(audio.size / media.SAMPLES_PER_FRAME, 2), detections=track.detections,
                trimmed_start_frames=lead, timing=timing)
    return {
        "mel": media.log_mel(audio, n_frames),
        "landmarks": track.landmarks,
        "landmarks_mouth": track.landmarks_in(track.mouth_matrix),
        "landmarks_face": track.landmarks_in(track.face_matrix),
        "mouth_matrix": track.mouth_matrix.astype(np.float32),
        "face_matrix": track.face_matrix.astype(np.float32),
        "meta": meta,
    }


@contextlib.contextmanager
def _npy_stream(path: Path, shape: tuple[int, ...]):
    """An open .npy file of uint8 `shape` whose data the caller writes in order (raw bytes)."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": shape})
        yield f


def timed(utt: Utterance, audio: np.ndarray) -> tuple[Utterance, str]:
    """The utterance with word timings, and where they came from: the corpus ("given"), forced alignment of
    its transcript to the audio ("forced alignment"), or nowhere ("none", with the reason; the clip is still
    used, only not for word-level training)."""
    spoken = [w.word for w in utt.words if w.word not in SILENCE]
    if not spoken:
        return utt, "none: no transcript"
    if all(w.start is not None for w in utt.words):
        return utt, "given"
    try:
        return replace(utt, words=align_words(audio, spoken)), "forced alignment"
    except LipgenError as e:
        return utt, f"none: {e}"


def _work(args: tuple[Utterance, str, float]) -> tuple[str, str | None, float]:
    """Process one clip into the cache. Returns (id, failure reason or None, seconds).

    A clip that cannot be used is recorded under _failed/ and skipped by later runs. A failure to write the
    cache (disk full, permissions) is no fault of the clip: it is raised, ending the run, and the clip is
    tried again by the next one.
    """
    utt, cache, max_seconds = args
    cache = Path(cache)
    start = time.perf_counter()
    final = cache / clip_dir_name(utt.id)
    tmp = cache / f".{final.name}{temporary_suffix()}"
    try:
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            arrays = process_clip(utt, tmp, max_seconds)  # writes the crops into tmp as it goes
        except Exception as e:  # one bad clip never ends a corpus run: record it and go on
            if isinstance(e, OSError) and (e.errno in NO_ROOM or not tmp.is_dir()):
                raise  # the cache cannot be written: not the clip's fault
            shutil.rmtree(tmp, ignore_errors=True)
            reason = str(e) if isinstance(e, LipgenError) else f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"
            (cache / FAILED).mkdir(exist_ok=True)
            write_atomic(cache / FAILED / f"{final.name}.json", json.dumps({"id": utt.id, "path": utt.path, "reason": reason}, indent=1))
            return utt.id, reason, time.perf_counter() - start
        meta = arrays.pop("meta")
        for name, value in arrays.items():
            np.save(tmp / f"{name}.npy", value)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            os.rename(tmp, final)
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not (final / "meta.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another run of the same shard finished this clip meanwhile
    except OSError as e:  # numpy reports a short write (a full disk) without an errno
        shutil.rmtree(tmp, ignore_errors=True)
        code = e.errno or errno.ENOSPC
        raise OSError(code, f"{os.strerror(code)} while writing the cache ({e}); the clips done so far are "
                            "kept, run again to go on", str(tmp)) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (cache / FAILED / f"{final.name}.json").unlink(missing_ok=True)  # a retried clip that now worked
    return utt.id, None, time.perf_counter() - start


def _init_worker():
    import cv2

    cv2.setNumThreads(1)


def _init_pool_worker():
    import signal

    _init_worker()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle: it stops the workers


def parse_shard(shard: str | None) -> tuple[int, int]:
    """'i/N' -> (i, N), 0 <= i < N; None -> (0, 1)."""
    if not shard:
        return 0, 1
    try:
        i, n = (int(x) for x in shard.split("/"))
    except ValueError:
        raise ValueError(f"--shard {shard!r}: write it as i/N, e.g. 0/4 for the first of four shards") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard {shard!r}: need 0 <= i < N")
    return i, n


def preprocess(root: str | os.PathLike, cache: str | os.PathLike, corpus: str = "grid", workers: int = 2,
               shard: str | None = None, retry_failed: bool = False, limit: int | None = None,
               test_speakers: tuple[str, ...] = (), progress: bool = True,
               max_seconds: float = media.MAX_SECONDS) -> dict:
    """Fill `cache` from the corpus at `root`. Resumable; `shard='i/N'` takes every N-th clip from i.

    Returns the report: counts, failures with reasons, seconds, clips/s and real-time factor.
    """
    i, n = parse_shard(shard)
    if limit is not None and limit < 1:
        raise ValueError(f"--limit {limit}: give a number of clips, at least 1")
    if workers < 1:
        raise ValueError(f"--workers {workers}: give a number of processes, at least 1")
    utterances = load_corpus(corpus, Path(root).absolute(), test_speakers)  # the cache works from any folder
    _refuse_duplicate_ids(utterances, root)
    if corpus == "grid" and not any(u.words for u in utterances):
        log.warning("%s: no file name of its %d clips is a GRID sentence and there are no .align files: for clips "
                    "of your own, give --corpus folder (a <clip>.txt beside a clip gives its words)", root,
                    len(utterances))
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    _check_corpus(cache, corpus)
    remove_leftovers(cache)
    mine = utterances[i::n][:limit]
    failed_dir = cache / FAILED
    todo = []
    failed_before = 0
    for utt in mine:
        name = clip_dir_name(utt.id)
        if (cache / name / "meta.json").is_file():
            _follow(cache / name / "meta.json", utt)
            continue
        if (failed_dir / f"{name}.json").is_file() and not retry_failed:
            failed_before += 1
            continue
        todo.append(utt)
    if todo and (differs := reading_differs(cache)):
        raise ValueError(f"{differs}; going on would mix the two readings in one cache. Preprocess into a new "
                         "--cache folder.")
    if i == 0:  # after the refusal above: a refused run leaves the cache as it was
        write_manifest(utterances, cache / "manifest.jsonl")
        write_vocabulary(cache, vocabulary(corpus, utterances))
    start = time.perf_counter()
    done_frames = 0
    failures = {}
    jobs = [(u, str(cache), max_seconds) for u in todo]
    bar = tqdm(total=len(jobs), desc=f"preprocess{' shard ' + shard if shard else ''}", unit="clip",
               disable=not progress)
    if workers <= 1:
        _init_worker()
        results = map(_work, jobs)
        pool = None
    else:
        pool = get_context("spawn").Pool(workers, initializer=_init_pool_worker)
        results = pool.imap_unordered(_work, jobs, chunksize=1)
    try:
        for clip_id, reason, _ in results:
            if reason:
                failures[clip_id] = reason
                bar.write(f"skipped {clip_id}: {reason.splitlines()[0]}")
            else:
                meta = json.loads((cache / clip_dir_name(clip_id) / "meta.json").read_text())
                done_frames += meta["n_frames"]
            bar.update()
            bar.set_postfix(failed=len(failures))
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
            remove_leftovers(cache)  # what the stopped workers were writing
    seconds = time.perf_counter() - start
    run = {"clips": len(jobs), "ok": len(jobs) - len(failures), "failed": len(failures), "seconds": round(seconds, 2),
           "clips_per_s": round(len(jobs) / seconds, 3) if seconds else None,
           "realtime_factor": round(done_frames / media.VIDEO_FPS / seconds, 2) if seconds and done_frames else None,
           "skipped_done": len(mine) - len(todo) - failed_before, "skipped_failed": failed_before}
    report = write_report(cache)
    report["this_run"] = run
    return report


def _check_corpus(cache: Path, corpus: str) -> None:
    """One cache, one corpus layout: training reads every clip in a cache, so another corpus preprocessed into it
    would be mixed in (and its manifest and word list would replace the first's). The record also says how the
    cache's landmarks are read (a cache made before it did: as its landmarks show)."""
    record = cache / CORPUS_FILE
    made = json.loads(record.read_text()) if record.is_file() else {}
    if made.get("corpus", corpus) != corpus:
        raise ValueError(f"{cache}: a cache of a {made['corpus']} corpus; --corpus {corpus} would mix other clips "
                         "into it. Give another --cache.")
    if "landmark_side" not in made:
        side = landmark_side(cache)  # None: no clips yet, so they will be read as this lipgen reads
        write_atomic(record, json.dumps({"corpus": corpus, "landmark_side": face.LANDMARK_SIDE if side is None
                                         else side}))


def _follow(meta_path: Path, utt: Utterance) -> None:
    """A done clip's record brought up to the corpus as it is now: its source path (a corpus moved, and
    preprocessed again where it is) and its splits (--test-speakers given again)."""
    meta = json.loads(meta_path.read_text())
    now = {"path": utt.path, "split": utt.split, "speaker_split": utt.speaker_split}
    if any(meta.get(k) != v for k, v in now.items()):
        write_atomic(meta_path, json.dumps({**meta, **now}, indent=1))


def _refuse_duplicate_ids(utterances, root) -> None:
    """The cache keys clips by id: two clips with one id would overwrite each other."""
    seen = {}
    for utt in utterances:
        if utt.id in seen:
            raise ValueError(f"{root}: two clips have the id {utt.id} ({seen[utt.id]} and {utt.path}); the cache keys "
                             "clips by id, so move or rename one")
        seen[utt.id] = utt.path


def write_report(cache: str | os.PathLike) -> dict:
    """Summarise the whole cache (every shard's work) into <cache>/report.json."""
    cache = Path(cache)
    ok = sorted(p.parent.name for p in cache.glob("*/meta.json") if not p.parent.name.startswith((".", "_")))
    failed = [json.loads(p.read_text()) for p in sorted((cache / FAILED).glob("*.json"))]
    failed = [f for f in failed if clip_dir_name(f["id"]) not in set(ok)]
    report = {"cache": str(cache), "clips_ok": len(ok), "clips_failed": len(failed),
              "failed": {f["id"]: f["reason"] for f in failed}, "missing": missing_clips(cache)}
    write_atomic(cache / "report.json", json.dumps(report, indent=1))
    return report
