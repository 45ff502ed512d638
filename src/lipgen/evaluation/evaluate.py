"""`lipgen evaluate`: every metric, for every model, on the same held-out clips, in one table.

For each test clip of a preprocessing cache, each "system" makes the clip's mouth crops from the
clip's own audio and its FIRST frame as identity:
- "ground truth": the real crops (the ceiling: LMD 0, SSIM 1);
- "static": the identity crop repeated (the floor: a face that never moves);
- each model: generated the way `lipgen generate` does (windows, cross-fade or recurrence).
Face-generating models are compared on the mouth crop cut from their face output.

Landmarks of every row are measured the same way: the 64x64 crop is pasted back into the original
frame, lipgen's tracker finds the 68 points there, and they are mapped into mouth-crop pixels; the
ground truth row measured so is the reference (its LMD is 0 by construction). So
LMD is in pixels of lipgen's 64x64 mouth crop (1 px = 1/96 of the mouth crop side at MOUTH_SIDE
= 1.5 mouth widths). Definitions: docs/metrics.md.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import face as geometry
from .. import media
from ..data import cache as cached
from ..data.dataset import LipDataset
from ..errors import EXPRESSIVENESS_RANGE, check_number
from ..files import json_text, save_figure, write_atomic
from ..inference import driven_crops, load_spec, model_crops, predicted_motion
from ..models.base import DRIVEN, READS_LIPS, READS_WORDS, WINDOW, can, window_seams
from . import metrics
from .cpbd import cpbd_video

log = logging.getLogger(__name__)

IDENTITY_EVERY = 5  # frames: identity descriptors on every 5th frame (dlib's network is the slow part)
REFERENCE_SEAM_WINDOW = WINDOW  # the reference rows' seam jitter is taken where a 16-frame window's seams fall
REFERENCE_ROWS = ("ground truth", "static")
COLUMNS = {  # key: (header, better)
    "lmd": ("LMD (px, per point)", "lower"),
    "lmd_authors": ("LMD authors (sum of 20)", "lower"),
    "ssim": ("SSIM", "higher"),
    "psnr": ("PSNR (dB)", "higher"),
    "cpbd": ("CPBD", "higher"),
    "lse_d": ("LSE-D", "lower"),
    "lse_c": ("LSE-C", "higher"),
    "sync_offset": ("|offset| (frames)", "lower"),
    "identity": ("identity cos", "higher"),
    "silence_opening": ("opening in silence", "lower"),
    "speech_opening": ("opening in speech", "higher"),
    "opening_corr": ("opening corr. with real", "higher"),
    "jitter": ("jitter (px)", "lower"),
    "seam_jitter": ("seam jitter (px)", "lower"),
}

MEANINGS = {  # a line each, under every report (the full definitions: docs/metrics.md)
    "lmd": "mouth landmark distance to the real frame's: mean over the 20 mouth points, in 64 px mouth-crop pixels",
    "lmd_authors": "the same summed over the 20 points, as the papers' code reports it",
    "ssim": "structural similarity of the 64 px mouth crop to the real one",
    "psnr": "peak signal-to-noise ratio of the 64 px mouth crop against the real one",
    "cpbd": "CPBD sharpness of the mouth crop (no reference)",
    "lse_d": "sync distance (LSE-D) of lipgen's GRID pixel sync expert at the best offset",
    "lse_c": "sync confidence (LSE-C) of that expert",
    "sync_offset": "the size of its best offset, in frames",
    "identity": "cosine similarity of the clip's mean dlib face descriptor to the real clip's",
    "silence_opening": "inner-lip gap over the mouth's width in the silent frames of the word timings",
    "speech_opening": "the same in spoken frames",
    "opening_corr": "Pearson correlation of that opening, frame by frame, with the real clip's",
    "jitter": "mean acceleration (second difference) of the 20 centred mouth points: flicker, in mouth-crop pixels",
    "seam_jitter": "the same at the frames where a windowed model starts a new window (none for one-pass models)",
}


@dataclass
class ClipResult:
    row: str
    clip: str
    speaker: str
    values: dict = field(default_factory=dict)
    opening: list = field(default_factory=list)


def _face_to_mouth(face_crops: np.ndarray, face_matrix: np.ndarray, mouth_matrix: np.ndarray) -> np.ndarray:
    """Mouth crops cut from aligned face crops: (T, 128, 128, 3) -> (T, 64, 64, 3)."""
    full = lambda m: np.concatenate([m, np.broadcast_to([[0, 0, 1]], (len(m), 1, 3))], axis=1)
    relation = (full(mouth_matrix) @ np.linalg.inv(full(face_matrix)))[:, :2]  # face crop -> mouth crop
    return geometry.crop(face_crops, relation, geometry.MOUTH_SIZE)


def _motion_crops(system, meta: dict, frames: np.ndarray, arrays: dict, expressiveness: float | None = None) -> np.ndarray:
    """Mouth crops of the motion model: the clip's first frame, at its own resolution, moved by the motion
    predicted from the clip's audio (times expressiveness; None: the default), cut by the first frame's mouth matrix
    like the static row: (T, 64, 64, 3)."""
    from .. import render

    lead = meta.get("trimmed_start_frames", 0) * media.SAMPLES_PER_FRAME
    audio = media.fit_audio(media.read_audio(cached.source_path(meta))[lead:], len(frames))
    points = np.load(Path(meta["cache_dir"]) / f"{cached.LANDMARKS}.npy")[:1].astype(np.float64)
    face_matrix = arrays["face_matrix"][:1].astype(np.float64)
    tracked = ((frames[0], points[0], face_matrix[0]) for _ in range(len(frames)))
    moved = render.animate(tracked, render.rest_of(points, face_matrix),
                           predicted_motion(system, audio, len(frames), expressiveness), photo=True)
    matrix = arrays["mouth_matrix"][:1].astype(np.float64)
    return np.concatenate([geometry.crop(f[None], matrix, geometry.MOUTH_SIZE) for f in moved])


def _clip_frames(meta: dict) -> np.ndarray:
    frames = media.read_video(cached.source_path(meta))
    return frames[meta.get("trimmed_start_frames", 0):][: meta["n_frames"]]


def _landmarks(mouths: np.ndarray, frames: np.ndarray, matrices: np.ndarray, where: str):
    """Crops pasted into their frames, and the tracker's landmarks there in mouth-crop pixels (T, 68, 2)."""
    pasted = np.stack([geometry.paste_back(f, m, mm) for f, m, mm in zip(frames, mouths, matrices)])
    landmarks, _ = geometry.track_landmarks(pasted, face_index=0, where=where)
    return pasted, geometry.transform_points(landmarks.astype(np.float64), matrices)


def _measure(row: str, meta: dict, mouths: np.ndarray, frames: np.ndarray, arrays: dict, expert,
             real_lm: np.ndarray, seams: list[int]) -> tuple[ClipResult, np.ndarray]:
    """All metrics of one clip's mouth crops against the real clip (real_lm: the ground truth row's
    landmarks, measured the same way; None when this is that row). seams: the frames where the row's
    generation joins two pieces (its model's seams); none: no seam jitter."""
    matrices = arrays["mouth_matrix"].astype(np.float64)
    pasted, lm = _landmarks(mouths, frames, matrices, meta["id"])
    real_lm = lm if real_lm is None else real_lm
    real = arrays["mouth"]
    silent = arrays["silent"]
    opening, real_opening = metrics.mouth_opening(lm), metrics.mouth_opening(real_lm)
    v = {
        "lmd": metrics.lmd(lm, real_lm),
        "lmd_authors": metrics.lmd_authors(lm, real_lm),
        "ssim": metrics.ssim(mouths, real),
        "psnr": metrics.psnr(mouths, real),
        "cpbd": cpbd_video(mouths),
        "identity": metrics.identity_similarity(pasted[::IDENTITY_EVERY], frames[::IDENTITY_EVERY]),
        "silence_opening": metrics.silence_opening(lm, silent) if silent.any() else float("nan"),
        "speech_opening": float(opening[~silent].mean()) if (~silent).any() else float("nan"),
        "opening_corr": float(np.corrcoef(opening, real_opening)[0, 1]) if opening.std() > 1e-9 else 0.0,
        "jitter": metrics.mouth_jitter(lm),
        "seam_jitter": metrics.seam_jitter(lm, seams) if seams else float("nan"),
    }
    if expert is not None:
        from .sync import sync_scores

        s = sync_scores(expert, mouths, arrays["mel"])
        v.update(lse_d=s["lse_d"], lse_c=s["lse_c"], sync_offset=abs(s["offset"]))
    if not np.isfinite(v["psnr"]):
        v["psnr"] = float("nan")  # identical crops: PSNR is infinite; left out of the means
    return ClipResult(row, meta["id"], meta["speaker"], v, opening.tolist()), lm


def evaluate(models: list[str], cache: str | os.PathLike, out: str | os.PathLike, split: str | None = "test",
             limit: int | None = None, expert: str | None = "default", clips: list[str] | None = None,
             progress: bool = True, expressiveness: float | None = None) -> dict:
    """Evaluate models (names of shipped models or checkpoint paths) on a cache split. expressiveness: the motion
    models' (lipgen generate --expressiveness; default: theirs), named in their rows when given.

    Writes <out>/report.md, report.csv (per clip), report.json (means per row and per speaker) and
    mouth_opening.png. Returns the JSON summary.
    """
    if limit is not None:
        check_number("limit (clips to evaluate)", limit, 1, integer=True)
    if expressiveness is not None:
        check_number("expressiveness", expressiveness, *EXPRESSIVENESS_RANGE)
    out = Path(out)
    data = LipDataset(cache, split, window=1, stride=10**9, clips=clips)
    clips = data.clips[:limit]
    if differs := cached.reading_differs(cache):
        log.warning("%s: the real mouths are read otherwise than the generated ones, which biases LMD. Preprocess "
                    "again into a new --cache folder to compare like with like", differs)
    systems = {}
    for spec in models:
        system = load_spec(spec)
        if system.crop == "none":
            raise ValueError(f"{spec} is a sync expert: it scores lip sync and draws nothing. Evaluate motion, "
                             "glance, crgan, davs or a generator from `lipgen train`.")
        if Path(spec).is_file():  # a training run's model: named by its run folder
            label = Path(spec).parent.name if Path(spec).name == "model.safetensors" else Path(spec).name
            label = f"{_model_name(spec)} ({label})"
        else:
            label = spec
        if system.crop == "motion" and expressiveness is not None:
            label = f"{label}, expressiveness {expressiveness:g}"
        systems[label] = system
    sync_expert = _load_expert(expert)
    out.mkdir(parents=True, exist_ok=True)  # after every check: a refused run leaves no folder
    results: list[ClipResult] = []
    bar = tqdm(clips, desc="evaluate", unit="clip", disable=not progress)
    for index, meta in enumerate(bar):
        folder = cached.clip_folder(cache, meta["id"])
        arrays = {k: cached.load_array(cache, meta["id"], k, mmap=False) for k in
                  (cached.MOUTH, cached.FACE, cached.MEL, cached.LANDMARKS_MOUTH, cached.MOUTH_MATRIX,
                   cached.FACE_MATRIX)}
        arrays["silent"] = data.silent_frames(data.clips.index(meta))
        frames = _clip_frames(meta)
        meta = {**meta, "cache_dir": str(folder)}
        reference_seams = window_seams(REFERENCE_SEAM_WINDOW, len(frames))
        rows = {"ground truth": (arrays["mouth"], reference_seams),
                "static": (np.repeat(arrays["mouth"][:1], len(frames), 0), reference_seams)}
        for name, system in systems.items():
            seams = system.seams(len(frames)) if system.crop != "motion" else []  # motion: one pass, no seams
            if system.crop == "motion":  # the first frame moved, its mouth crop cut out
                rows[name] = (_motion_crops(system, meta, frames, arrays, expressiveness), seams)
                continue
            kind, crops = model_crops(system, arrays["mel"], arrays["mouth"][0], arrays["face"][0])
            crops = np.stack(list(crops))[: len(frames)]
            if kind == "face":
                crops = _face_to_mouth(crops, arrays["face_matrix"].astype(np.float64),
                                       arrays["mouth_matrix"].astype(np.float64))
            rows[name] = (crops, seams)
            if can(system, DRIVEN):  # also driven by the clip's own lips instead of its audio
                driven = np.stack(list(driven_crops(system, arrays["mouth"], arrays["face"][0])))[: len(frames)]
                rows[f"{name} from video"] = (_face_to_mouth(driven, arrays["face_matrix"].astype(np.float64),
                                                             arrays["mouth_matrix"].astype(np.float64)), seams)
        real_lm = None
        for name, (mouths, seams) in rows.items():  # ground truth first: its landmarks are the reference
            result, lm = _measure(name, meta, mouths, frames, arrays, sync_expert, real_lm, seams)
            real_lm = lm if real_lm is None else real_lm
            results.append(result)
    summary = _summarise(results, list(rows))
    summary.update(cache=str(cache), split=split, clips=len(clips), models=models,
                   sync_expert=None if sync_expert is None else str(expert))
    from .wild import library_versions  # wild imports this module

    summary["versions"] = library_versions()
    summary["representation"] = {}
    from .representation import evaluate_representation, lip_reader_accuracy

    ids = [m["id"] for m in clips]  # the clips evaluated above (--limit, --clips)
    has_timings = any(w["start"] is not None for m in clips for w in m["words"])
    for name, system in systems.items():  # what the models' encoders know
        if not has_timings and (can(system, READS_WORDS) or can(system, READS_LIPS)):
            log.warning("%s: the clips evaluated have no word timings: its lip-reading measures are left out.", name)
            continue
        if can(system, READS_WORDS):  # a word-ID space: lip reading, retrieval, probe
            summary["representation"][name] = evaluate_representation(system, str(cache), split,
                                                                       probe_split="train" if split else None,
                                                                       clips=ids)
        elif can(system, READS_LIPS) and "lip_reader" in system.loaded_parts:
            summary["representation"][name] = lip_reader_accuracy(system, str(cache), split, clips=ids)
    _write(out, results, summary)
    timed = [m for m in clips if data.silent_frames(data.clips.index(m)).any()]
    _plot_opening(out / "mouth_opening.png", results, (timed or clips)[0], data)
    return summary


def _model_name(path: str) -> str:
    from ..checkpoint import read_header

    return read_header(path)["model"]


def _load_expert(expert: str | None):
    if expert is None:
        return None
    from .sync import load_expert

    if expert != "default" and not Path(expert).is_file():
        raise FileNotFoundError(f"{expert}: no such sync expert checkpoint. Give a file from `lipgen train --model "
                                "syncnet`, leave --expert out (the shipped one), or pass --no-sync.")
    return load_expert(None if expert == "default" else expert)


def _mean(values) -> float:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def _summarise(results: list[ClipResult], rows: list[str]) -> dict:
    speakers = sorted({r.speaker for r in results})
    table = {row: {k: _mean(r.values.get(k) for r in results if r.row == row) for k in COLUMNS} for row in rows}
    per_speaker = {s: {row: {k: _mean(r.values.get(k) for r in results if r.row == row and r.speaker == s)
                             for k in COLUMNS} for row in rows} for s in speakers}
    return {"rows": table, "per_speaker": per_speaker}


def _markdown(table: dict, columns: list[str]) -> str:
    head = "| row | " + " | ".join(f"{COLUMNS[k][0]} {'↓' if COLUMNS[k][1] == 'lower' else '↑'}" for k in columns) + " |"
    lines = [head, "|" + "---|" * (len(columns) + 1)]
    for row, values in table.items():
        lines.append(f"| {row} | " + " | ".join("-" if not np.isfinite(values[k]) else f"{values[k]:.3f}"
                                              for k in columns) + " |")
    return "\n".join(lines)


def _write(out: Path, results: list[ClipResult], summary: dict) -> None:
    from .wild import glossary, versions_line  # wild imports this module

    columns = [k for k in COLUMNS if any(np.isfinite(v[k]) for v in summary["rows"].values())]
    md = [f"# lipgen evaluation: {summary['clips']} {summary['split']} clips of {summary['cache']}", "",
          "Mouth crops 64x64; landmarks in mouth-crop pixels; what each column means: \"Columns\", at the end. "
          "Reference rows: ground truth (real crops) and static (the first frame repeated).", "",
          versions_line(summary["versions"]), "",
          _markdown(summary["rows"], columns), ""]
    for speaker, table in summary["per_speaker"].items():
        md += [f"## speaker {speaker}", "", _markdown(table, columns), ""]
    for name, rep in summary.get("representation", {}).items():
        unit = f"{rep['words']} words" if "words" in rep else f"{rep['frames']} frames"
        md += [f"## {name}: lip reading{' and retrieval' if 'words' in rep else ''} ({unit} of real "
               f"{summary['split']} clips, chance {rep['chance']:.3f})",
               "", "| measure | value |", "|---|---|"]
        md += [f"| {k} | {v:.3f} |" for k, v in rep.items() if k not in ("words", "frames", "chance")] + [""]
    md += ["![mouth opening](mouth_opening.png)", "", *glossary({k: COLUMNS[k] for k in columns}, MEANINGS), ""]
    write_atomic(out / "report.md", "\n".join(md))
    table = io.StringIO(newline="")
    writer = csv.writer(table)
    writer.writerow(["row", "clip", "speaker", *COLUMNS])
    for r in results:
        writer.writerow([r.row, r.clip, r.speaker, *(r.values.get(k, "") for k in COLUMNS)])
    write_atomic(out / "report.csv", table.getvalue())
    write_atomic(out / "report.json", json_text(summary))


def _plot_opening(path: Path, results: list[ClipResult], meta: dict, data: LipDataset) -> None:
    """Per-frame mouth opening of every row on one clip, over the audio envelope and silence spans."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mel = cached.load_array(data.cache, meta["id"], cached.MEL)
    envelope = mel.reshape(-1, media.MELS_PER_FRAME, mel.shape[1]).mean((1, 2))
    envelope = (envelope - envelope.min()) / max(np.ptp(envelope), 1e-9)
    fig, ax = plt.subplots(figsize=(10, 3.5))
    silent = data.silent_frames(data.clips.index(meta))
    for t in np.flatnonzero(silent):
        ax.axvspan(t, t + 1, color="0.92", lw=0)
    top = max(max(r.opening) for r in results if r.clip == meta["id"])
    ax.fill_between(np.arange(len(envelope)), 0, envelope * top, color="tab:blue", alpha=0.15,
                    label="audio envelope (scaled)")
    for r in results:
        if r.clip == meta["id"]:
            ax.plot(r.opening, lw=2 if r.row == "ground truth" else 1.2, label=r.row,
                    color="black" if r.row == "ground truth" else None)
    ax.set(xlabel="frame (25 fps)", ylabel="mouth opening (inner gap / width)",
           title=f"{meta['id']}: grey = silence in the word timings")
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
