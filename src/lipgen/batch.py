"""Many generations with the model loaded once: a job list (CSV or JSON lines) or two folders.

    lipgen batch jobs.csv                                  # columns: audio, face, out and any options
    lipgen batch --audio-dir speech/ --face-dir faces/ --out-dir out/   # every speech onto every face

A job list has one job per row (CSV with a header) or line (JSON lines): `audio` and `face` (paths, relative
to the list's folder), optionally `out` (default: OUT_DIR/<face>_<audio>.mp4) and any of JOB_OPTIONS. Each
face source is tracked once (lipgen.Generator keeps it); a job that fails (unreadable audio, no face, ...)
is reported with its reason and the rest go on. Outputs are written atomically: a failed job leaves nothing.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from . import media
from .errors import LipgenError, one_line

log = logging.getLogger(__name__)

JOB_OPTIONS = {"face_index": int, "face_box": "box", "fps": float, "loop": str, "pad": float, "expressiveness": float}
JOB_KEYS = ("audio", "face", "out", *JOB_OPTIONS)


def read_jobs(path: str | os.PathLike) -> list[dict]:
    """Jobs from a CSV (header row) or JSON-lines file: dicts of JOB_KEYS, paths resolved against the file's
    folder, options converted to their types. Raises LipgenError for an unreadable list or an unknown column."""
    path = Path(path)
    if not path.is_file():
        raise LipgenError(f"{path}: no such job list. Give a .csv or .jsonl file of audio, face, out columns.")
    text = path.read_text()
    if path.suffix.lower() in (".jsonl", ".json"):
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise LipgenError(f"{path}, line {n}: not valid JSON ({e}).") from e
    else:
        rows = list(csv.DictReader(text.splitlines()))
    jobs = []
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise LipgenError(f"{path}, job {n}: expected an object of {', '.join(JOB_KEYS)}.")
        unknown = set(row) - set(JOB_KEYS)
        if unknown:
            raise LipgenError(f"{path}: unknown column(s) {', '.join(sorted(unknown))}; known: {', '.join(JOB_KEYS)}.")
        job = {k: v for k, v in row.items() if v not in (None, "")}
        for key in ("audio", "face", "out"):
            if key in job:
                job[key] = path.parent / job[key]
        jobs.append(job)
    return jobs


def folder_jobs(audio_dir: str | os.PathLike, face_dir: str | os.PathLike, out_dir: str | os.PathLike) -> list[dict]:
    """Every speech file of audio_dir onto every photo or video of face_dir (files directly in them, by name):
    out_dir/<face>_<audio>.mp4."""
    def files(folder, suffixes, what):
        folder = Path(folder)
        if not folder.is_dir():
            raise LipgenError(f"{folder}: not a folder. Give the folder of {what}.")
        found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
        if not found:
            raise LipgenError(f"{folder}: no {what} in it (looked for {', '.join(sorted(suffixes))}).")
        return found

    audios = files(audio_dir, media.AUDIO_SUFFIXES | media.VIDEO_SUFFIXES, "speech files")
    faces = files(face_dir, media.IMAGE_SUFFIXES | media.VIDEO_SUFFIXES, "face photos or videos")
    return [{"audio": a, "face": f, "out": Path(out_dir) / f"{f.stem}_{a.stem}.mp4"} for f in faces for a in audios]


def _options(job: dict) -> dict:
    out = {}
    for key, kind in JOB_OPTIONS.items():
        if key in job:
            value = job[key]
            if kind == "box":
                value = [float(v) for v in (value.split(",") if isinstance(value, str) else value)]
            else:
                try:
                    value = kind(value)
                except (TypeError, ValueError) as e:
                    raise ValueError(f"{key} {value!r} is not a {kind.__name__}") from e
            out[key] = value
    return out


def batch(jobs, out_dir: str | os.PathLike | None = None, model: str | None = None,
          checkpoint: str | os.PathLike | None = None, batch_size: int = 8, progress: bool = True,
          max_seconds: float = media.MAX_SECONDS, **defaults) -> dict:
    """Run jobs (a job-list path, or a list of job dicts) with one loaded model.

    out_dir: where jobs without `out` go (default: beside the job list, or the current folder); defaults: the
    options (JOB_OPTIONS) of jobs that do not set them. Returns {"jobs": n, "done": [out paths], "failed":
    [{"job": number from 1, "audio", "face", "reason"}], "seconds": wall time}.
    """
    from .generate import Generator

    if isinstance(jobs, (str, os.PathLike)):
        where = Path(jobs).parent
        jobs = read_jobs(jobs)
        out_dir = where if out_dir is None else out_dir
    out_dir = Path(out_dir or ".")
    if not jobs:
        raise LipgenError("no jobs to run: the job list is empty.")
    start = time.perf_counter()
    generator = Generator(model, checkpoint, batch_size=batch_size)
    done, failed = [], []
    with logging_redirect_tqdm():
        for n, job in enumerate(tqdm(jobs, desc="batch", unit="job", disable=not progress), 1):
            audio, face = job.get("audio"), job.get("face")
            try:
                if audio is None or face is None:
                    raise ValueError("the job needs both audio and face")
                out = job.get("out") or out_dir / f"{Path(face).stem}_{Path(audio).stem}.mp4"
                options = {**defaults, **_options(job)}
                done.append(generator.generate(audio, face, out, max_seconds=max_seconds, progress=False, **options))
            except (LipgenError, OSError, ValueError) as e:
                reason = one_line(e)
                log.warning("job %d (%s onto %s) failed: %s", n, audio, face, reason)
                failed.append({"job": n, "audio": str(audio), "face": str(face), "reason": reason})
    return {"jobs": len(jobs), "done": [str(p) for p in done], "failed": failed,
            "seconds": round(time.perf_counter() - start, 2)}
