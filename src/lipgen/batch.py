"""Many generations with the model loaded once: a job list (CSV or JSON lines) or two folders.

    lipgen batch jobs.csv                                  # columns: audio, face, out and any options
    lipgen batch --audio-dir speech/ --face-dir faces/ --out-dir out/   # every speech onto every face

A job list has one job per row (CSV with a header) or line (JSON lines): `audio` and `face` (paths, relative
to the list's folder), optionally `out` (default: OUT_DIR/<face>_<audio>.mp4) and any of JOB_OPTIONS. Each
face source is tracked once (lipgen.Generator keeps it); a job that fails (unreadable audio, no face, ...)
is reported with its reason and the rest go on. Outputs are written atomically: a failed job leaves nothing;
two jobs that would write one file, or a job that would write over another's input, are refused before any work;
resume=True (--resume) skips jobs already done. A CSV may come from a spreadsheet (a
byte-order mark, spaces around names, empty rows); a value with a comma in it needs quotes.
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
KIND_NAMES = {int: "a whole number", float: "a number", str: "text"}


def read_jobs(path: str | os.PathLike) -> list[dict]:
    """Jobs from a CSV (header row) or JSON-lines file: dicts of JOB_KEYS, paths resolved against the file's
    folder, options converted to their types. Raises LipgenError for an unreadable list or an unknown column."""
    path = Path(path)
    if not path.is_file():
        raise LipgenError(f"{path}: no such job list. Give a .csv or .jsonl file of audio, face, out columns.")
    text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's CSV may start with a byte-order mark
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):  # a JSON array of jobs
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise LipgenError(f"{path}: not valid JSON ({e}).") from e
    elif path.suffix.lower() in (".jsonl", ".json"):
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise LipgenError(f"{path}, line {n}: not valid JSON ({e}).") from e
    else:
        reader = csv.DictReader(text.splitlines())
        header = reader.fieldnames or []
        reader.fieldnames = [name.strip().lower() for name in header]
        if reader.fieldnames and not set(reader.fieldnames) & {"audio", "face"}:
            hint = ("; columns are separated by commas, not semicolons" if ";" in ",".join(header) else
                    f"; it reads {','.join(header)[:80]!r}")
            raise LipgenError(f"{path}: the first line must name the columns, e.g. audio,face,out{hint}.")
        rows = []
        for row in reader:
            if None in row:  # more values than the header has columns
                raise LipgenError(f"{path}, line {reader.line_num}: more values than columns. A file name with a "
                                  'comma in it needs quotes: "my clip, final.mp4".')
            rows.append({k: v.strip() if isinstance(v, str) else v for k, v in row.items()})
    rows = [row for row in rows if not isinstance(row, dict) or any(v not in (None, "") for v in row.values())]
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
    out_dir/<face>_<audio>.mp4 (<stem>-<suffix> for files that share a stem: x.wav, x.mp3)."""
    def files(folder, suffixes, what):
        folder = Path(folder)
        if not folder.is_dir():
            raise LipgenError(f"{folder}: not a folder. Give the folder of {what}.")
        every = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        found = [p for p in every if p.suffix.lower() in suffixes]
        if not found:
            raise LipgenError(f"{folder}: no {what} in it (looked for {', '.join(sorted(suffixes))}).")
        if len(found) < len(every):
            skipped = [p.name for p in every if p.suffix.lower() not in suffixes]
            log.warning("%s: %d file%s not taken for %s (by their names): %s%s", folder, len(skipped),
                        "s" * (len(skipped) > 1), what, ", ".join(skipped[:5]), ", ..." * (len(skipped) > 5))
        return found

    def names(paths):  # a file's stem, or stem-suffix where two share a stem (x.wav, x.mp3)
        stems = [p.stem for p in paths]
        return [p.stem if stems.count(p.stem) == 1 else f"{p.stem}-{p.suffix[1:]}" for p in paths]

    for flag, folder in (("--audio-dir", audio_dir), ("--face-dir", face_dir)):
        if Path(out_dir).resolve() == Path(folder).resolve():
            raise LipgenError(f"{out_dir}: --out-dir is the {flag}; the next run would take the videos made as inputs. "
                              "Give another --out-dir.")
    audios = files(audio_dir, media.AUDIO_SUFFIXES | media.VIDEO_SUFFIXES, "speech files")
    faces = files(face_dir, media.IMAGE_SUFFIXES | media.VIDEO_SUFFIXES, "face photos or videos")
    return [{"audio": a, "face": f, "out": Path(out_dir) / f"{fn}_{an}.mp4"}
            for f, fn in zip(faces, names(faces)) for a, an in zip(audios, names(audios))]


def _check_outputs(jobs: list[dict], out_dir: Path) -> list[dict]:
    """The jobs, each with its output path (None for a job without audio or face: it fails alone); refuses two jobs
    that would write the same file."""
    jobs = [{**job, "out": job.get("out") or (out_dir / f"{Path(job['face']).stem}_{Path(job['audio']).stem}.mp4"
                                              if job.get("face") and job.get("audio") else None)} for job in jobs]
    first, read = {}, {}
    for n, job in enumerate(jobs, 1):
        for key in ("audio", "face"):
            if job.get(key):
                read.setdefault(os.path.realpath(job[key]), (n, key))
    for n, job in enumerate(jobs, 1):
        if job["out"] is None:
            continue
        key = os.path.realpath(job["out"])
        if key in first:
            raise LipgenError(f"jobs {first[key]} and {n} would both write {job['out']}: give each its own out.")
        if key in read:
            raise LipgenError(f"job {n} would write {job['out']}, the {read[key][1]} of job {read[key][0]}: it would "
                              "be destroyed while still used. Give that job another out.")
        first[key] = n
    return jobs


def _done(job: dict) -> bool:
    """Whether a job's output exists and is newer than its inputs (outputs are written whole or not at all)."""
    out = Path(job["out"])
    if not out.is_file():
        return False
    made = out.stat().st_mtime
    return all(Path(job[k]).is_file() and Path(job[k]).stat().st_mtime <= made for k in ("audio", "face"))


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
                    raise ValueError(f"{key} {value!r} is not {KIND_NAMES[kind]}") from e
            out[key] = value
    return out


def batch(jobs, out_dir: str | os.PathLike | None = None, model: str | None = None,
          checkpoint: str | os.PathLike | None = None, batch_size: int = 8, progress: bool = True,
          max_seconds: float = media.MAX_SECONDS, resume: bool = False, **defaults) -> dict:
    """Run jobs (a job-list path, or a list of job dicts) with one loaded model.

    out_dir: where jobs without `out` go (default: beside the job list, or the current folder); resume: skip jobs
    whose output exists and is newer than their audio and face (a run interrupted, then started again); defaults:
    the options (JOB_OPTIONS) of jobs that do not set them. Returns {"jobs": n, "done": [out paths], "skipped":
    [out paths already made], "failed": [{"job": number from 1, "audio", "face", "reason"}], "seconds": wall time}.
    """
    from .generate import Generator

    if isinstance(jobs, (str, os.PathLike)):
        where = Path(jobs).parent
        jobs = read_jobs(jobs)
        out_dir = where if out_dir is None else out_dir
    out_dir = Path(out_dir or ".")
    if not jobs:
        raise LipgenError("no jobs to run: the job list is empty.")
    jobs = _check_outputs(jobs, out_dir)
    start = time.perf_counter()
    generator = Generator(model, checkpoint, batch_size=batch_size)
    done, skipped, failed = [], [], []
    with logging_redirect_tqdm():
        try:
            for n, job in enumerate(tqdm(jobs, desc="batch", unit="job", disable=not progress), 1):
                audio, face = job.get("audio"), job.get("face")
                if resume and audio is not None and face is not None and _done(job):
                    skipped.append(str(job["out"]))
                    continue
                try:
                    if audio is None or face is None:
                        raise ValueError("the job needs both audio and face")
                    options = {**defaults, **_options(job)}
                    done.append(generator.generate(audio, face, job["out"], max_seconds=max_seconds,
                                                   progress=False, **options))
                except (LipgenError, OSError, ValueError) as e:
                    reason = one_line(e)
                    log.warning("job %d (%s onto %s) failed: %s", n, audio or "no audio", face or "no face", reason)
                    failed.append({"job": n, "audio": str(audio), "face": str(face), "reason": reason})
        except KeyboardInterrupt:
            log.warning("interrupted at job %d of %d (%d done, %d failed); run again with --resume (resume=True) to "
                        "skip the jobs done", n, len(jobs), len(done) + len(skipped), len(failed))
            raise
    return {"jobs": len(jobs), "done": [str(p) for p in done], "skipped": skipped, "failed": failed,
            "seconds": round(time.perf_counter() - start, 2)}
