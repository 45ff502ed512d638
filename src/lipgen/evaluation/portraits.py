"""Evaluation on a folder of still portraits, with no preprocessing cache and no ground truth.

    lipgen evaluate-portraits FOLDER --out DIR [--models glance crgan] [--speech a.wav b.mp4 ...]

Every photo (longer side brought to at most MAX_SIDE pixels) says the same speech: the speech files one
after another, with word timings (a GRID .align file, or forced alignment of a transcript: the GRID
sentence its name spells, or a .txt beside it). Rows: "static" (the photo held) and one per model. With no
real video to compare with, the measures ask whether the mouth opens in speech and closes in silence (word
timings), follows the speech envelope, is in sync, keeps the person, and is as sharp as the photo's mouth.
The landmarks are read in the photo's face box in every frame, turned upright first where the head is tilted
by more than wild.ROLL_LIMIT degrees.
A photo where no face is found is listed as "no face found". Measures and report files are those of
lipgen.evaluation.wild; column definitions: docs/metrics.md, "In the wild".
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cv2
import numpy as np

from .. import face as geometry
from .. import media
from ..data.align import align_words
from ..data.corpora import SILENCE, Word, grid_words_from_name, read_align
from ..errors import FaceNotFoundError, LipgenError, check_number
from ..files import save_figure
from .. import ASSETS
from .wild import (
    COLUMNS,
    MAX_SIDE,
    REFERENCE,
    check_folders,
    correlation,
    downscale,
    evaluate_all,
    face_descriptors,
    face_index_of,
    file_key,
    fresh_folder,
    frame_rms,
    generated,
    held,
    inputs_in,
    load_sync_expert,
    measure,
    model_key,
    model_specs,
    mouth_sharpness,
    prepared_face_index,
    pyplot,
    read_face_indices,
    slug,
    shade_silence,
    summarise,
    tracked,
    library_versions,
    versions_line,
    write_reports,
)

DEFAULT_SPEECH = tuple(sorted((ASSETS / "clips").glob("*.mp*")))  # the bundled GRID clips: 3 sentences, 9 s
RATIO_ENOUGH = 2.0  # a portrait "opens in speech" if its mean opening in speech is at least twice that in silence

PORTRAIT_COLUMNS = {  # key: (header, better); the others come from wild.COLUMNS
    "opening_speech": COLUMNS["opening_speech"],
    "opening_silence": COLUMNS["opening_silence"],
    "opening_ratio": COLUMNS["opening_ratio"],
    "ratio_at_least_2": ("share speech/silence >= 2", "higher"),
    "envelope_corr": ("opening corr. with envelope", "higher"),
    "wild_conf": COLUMNS["wild_conf"],
    "wild_dist": COLUMNS["wild_dist"],
    "wild_abs_offset": COLUMNS["wild_abs_offset"],
    "wild_offset": COLUMNS["wild_offset"],
    "sync_conf": COLUMNS["sync_conf"],
    "sync_dist": COLUMNS["sync_dist"],
    "sync_abs_offset": COLUMNS["sync_abs_offset"],
    "sync_offset": COLUMNS["sync_offset"],
    "identity_distance": COLUMNS["identity_distance"],
    "identity_kept": COLUMNS["identity_kept"],
    "cpbd": COLUMNS["cpbd"],
    "cpbd_vs_photo": ("CPBD vs photo", "higher"),
    "frames": ("frames", ""),
}
PORTRAIT_TABLE = ("opening_ratio", "envelope_corr", "wild_conf", "wild_offset", "identity_kept", "cpbd_vs_photo")


def speech_words(path: Path, audio: np.ndarray) -> list[Word]:
    """Word timings (video frames) of a speech file: its GRID .align (beside it, or in ../align/ as GRID lays
    them out), else forced alignment of the sentence its name spells (GRID: 'bbaf2n', or '<prefix>_bbaf2n')
    or of the transcript in a .txt beside it."""
    for align in (path.with_suffix(".align"), path.parent.parent / "align" / f"{path.stem}.align"):
        if align.is_file():
            return read_align(align)
    words = grid_words_from_name(path.stem) or grid_words_from_name(path.stem.split("_")[-1])
    transcript = path.with_suffix(".txt")
    if words is None and transcript.is_file():
        words = [Word(w) for w in transcript.read_text().split()]
    if words is None:
        raise LipgenError(f"{path}: no word timings. Put its GRID .align file or a .txt transcript beside it.")
    return align_words(audio, [w.word for w in words])


def prepare_speech(paths) -> tuple[np.ndarray, np.ndarray]:
    """The speech files one after another: (audio (T * SAMPLES_PER_FRAME,) float32, silent (T,) bool: frames
    whose centre lies in a sil/sp span of the word timings)."""
    audios, silent = [], []
    for path in map(Path, paths):
        audio = media.read_audio(path)
        n = -(-audio.size // media.SAMPLES_PER_FRAME)  # ceil: the last partial frame is kept
        centres = np.arange(n) + 0.5
        mask = np.zeros(n, bool)
        for w in speech_words(path, audio):
            if w.word in SILENCE:
                mask |= (centres >= w.start) & (centres < w.end)
        audios.append(media.fit_audio(audio, n))
        silent.append(mask)
    return np.concatenate(audios), np.concatenate(silent)


def prepare_photo(path: Path, folder: Path, max_side: int, face_index: int | None) -> tuple[Path, int | None]:
    """The photo as every row uses it: (folder/photo.png, longer side at most max_side (lossless); the face
    index in it, see wild.prepared_face_index)."""
    photo, index_file = folder / "photo.png", folder / "face_index.json"
    key = file_key(path, max_side=max_side, face_index=face_index)
    if fresh_folder(folder, key) and photo.is_file() and index_file.is_file():
        return photo, json.loads(index_file.read_text())
    original = media.read_image(path)
    prepared = downscale(original, max_side)
    index = prepared_face_index(original, prepared, face_index)
    cv2.imwrite(str(photo), cv2.cvtColor(prepared, cv2.COLOR_RGB2BGR))
    index_file.write_text(json.dumps(index))
    (folder / "prepared.key").write_text(key)
    return photo, index


def evaluate_portrait(path: Path, work: Path, specs: dict, expert, audio: np.ndarray, silent: np.ndarray,
                      speech_key: str, max_side: int, face_index: int | None) -> tuple[list[dict], dict]:
    """All rows of one portrait: ([row dicts], plot data: {"curves": {row: opening (T,)}, "envelope": (T,),
    "silent": (T,) bool}). Raises FaceNotFoundError ("no face found ...") when the photo shows no face."""
    folder = work / slug(path.name)
    photo_path, face_index = prepare_photo(path, folder, max_side, face_index)
    photo = media.read_image(photo_path)
    index = 0 if face_index is None else face_index  # a photo with several faces: the largest, unless listed
    try:
        box = geometry.choose_face(geometry.detect_faces(photo), index, path.name)  # every row: the photo's head
    except FaceNotFoundError as e:
        raise FaceNotFoundError(f"no face found ({e})") from e
    landmarks = geometry.landmarks_in_box(photo, box)[None]  # (1, 68, 2)
    reference = face_descriptors(photo[None], landmarks)[0]
    photo_cpbd = mouth_sharpness(photo[None], landmarks)
    n = len(silent)
    envelope = frame_rms(audio, n)
    videos = {"static": (folder / f"static-{speech_key}.mp4", held(photo, audio, n))}
    for label, spec in specs.items():
        videos[label] = (folder / f"{slug(label)}-{model_key(spec, speech=speech_key)}.mp4",
                         generated(spec, audio, photo_path, index))
    rows, curves = [], {}
    for label, (video, make) in videos.items():
        row = {"input": path.name, "row": label, "mode": REFERENCE if label == "static" else "from photo", "reason": ""}
        try:
            if not video.is_file():
                make(video)  # written atomically: an interrupted run leaves no half file
            frames, marks = tracked(video, index, path.name, box, upright=True)
            values, curves[label] = measure(frames, marks, audio, expert, reference, ~silent)
            row.update(values, frames=len(frames), envelope_corr=correlation(curves[label], envelope[:len(frames)]),
                       ratio_at_least_2=float(values["opening_ratio"] >= RATIO_ENOUGH),
                       cpbd_vs_photo=values["cpbd"] / photo_cpbd if photo_cpbd > 0 else float("nan"))
        except Exception as e:  # reported in the row; the other rows and portraits go on
            row["reason"] = f"{type(e).__name__}: {e}"
        rows.append(row)
    return rows, {"curves": curves, "envelope": envelope, "silent": silent}


def evaluate_portraits(folder: str | os.PathLike, out: str | os.PathLike, models: list[str] | None = None,
                       speech: list[str | os.PathLike] | None = None, manifest: str | os.PathLike | None = None,
                       work: str | os.PathLike | None = None, limit: int | None = None, max_side: int = MAX_SIDE,
                       expert: str | None = "default", progress: bool = True,
                       expressiveness: float | None = None) -> dict:
    """Evaluate models on a folder of still portraits (module doc: rows and measures).

    speech: files with word timings (see speech_words), said one after another by every portrait (default:
    the bundled GRID clips, 9 s). models, manifest, work, limit, expressiveness: as
    lipgen.evaluation.wild.evaluate_videos.
    Writes <out>/report.md, report.csv, report.json and opening.png. Returns the JSON summary.
    """
    started = time.time()
    if limit is not None:
        check_number("limit (images to evaluate)", limit, 1, integer=True)
    check_folders(folder, out, work, max_side)
    specs = model_specs(models, expressiveness)
    found = inputs_in(folder, media.IMAGE_SUFFIXES, "images")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)  # before any work: a file in the way is said at once
    paths = found[:limit]
    speech = [Path(p) for p in (speech or DEFAULT_SPEECH)]
    audio, silent = prepare_speech(speech)
    speech_key = file_key(*speech)
    indices = read_face_indices(manifest, found)
    sync_expert = load_sync_expert(expert)
    rows, plotted, skipped = evaluate_all(
        paths, work, "evaluate portraits",
        lambda path, work_dir: evaluate_portrait(path, work_dir, specs, sync_expert, audio, silent, speech_key,
                                                 max_side, face_index_of(path, indices)), progress)
    order = [("static", REFERENCE)] + [(label, "from photo") for label in specs]
    summary = summarise(rows, order, skipped, PORTRAIT_COLUMNS)
    summary["no_face_found"] = [name for name, reason in skipped.items() if "no face found" in reason]
    summary["settings"] = {"folder": str(folder), "models": {k: str(v[1]) for k, v in specs.items()},
                           "expressiveness": expressiveness,
                           "speech": [str(p) for p in speech], "speech_seconds": len(silent) / media.VIDEO_FPS,
                           "silent_frames": int(silent.sum()), "max_side": max_side, "sync_expert": expert,
                           "run_seconds": round(time.time() - started, 1), "versions": library_versions()}
    notes = [f"{summary['complete']} of {len(paths)} images of `{folder}` evaluated with every row "
             f"({len(summary['no_face_found'])} with no face found), longer side at most {max_side} px. Each says "
             f"{len(silent) / media.VIDEO_FPS:.1f} s of speech ({', '.join(p.name for p in speech)}; "
             f"{int(silent.sum())} of {len(silent)} frames silent by the word timings). Means over the images "
             "where the row was measured (n). What each column means: \"Columns\", at the end.", "",
             versions_line(summary["settings"]["versions"])]
    write_reports(out, "lipgen evaluation on portraits", notes, summary, {"from photo": order}, rows,
                  PORTRAIT_COLUMNS, PORTRAIT_TABLE)
    plot_portraits(out / "opening.png", plotted)
    return summary


def plot_portraits(path: Path, plotted: dict) -> None:
    """Opening curves of every row over the speech envelope, one panel per portrait; grey = silence."""
    plt = pyplot()
    fig, axes = plt.subplots(max(len(plotted), 1), 1, figsize=(10, 2.6 * max(len(plotted), 1)), squeeze=False)
    for (name, extra), (ax,) in zip(plotted.items(), axes):
        shade_silence(ax, extra["silent"])
        top = max(c.max() for c in extra["curves"].values())
        envelope = extra["envelope"]
        ax.fill_between(np.arange(len(envelope)), 0, envelope / max(envelope.max(), 1e-9) * top, color="tab:blue",
                        alpha=0.15, label="speech envelope (scaled)")
        for label, curve in extra["curves"].items():
            ax.plot(curve, lw=1.2, label=label, **({"color": "0.5", "ls": "--"} if label == "static" else {}))
        ax.set(title=name, xlabel="frame (25 fps)", ylabel="opening / IOD")
        ax.legend(fontsize=7, ncol=4)
    fig.suptitle("mouth opening of portraits; grey = silence (word timings)")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
