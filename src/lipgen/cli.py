"""The `lipgen` command: each subcommand is a thin wrapper over a function of the Python API."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from .errors import LipgenError, one_line


def _preprocess(args) -> None:
    from .data.preprocess import preprocess

    report = preprocess(args.root, args.cache, corpus=args.corpus, workers=args.workers, shard=args.shard,
                        retry_failed=args.retry_failed, limit=args.limit, test_speakers=tuple(args.test_speakers),
                        max_seconds=args.max_seconds)
    run = report["this_run"]
    speed = f" ({run['clips_per_s']} clips/s, {run['realtime_factor']}x real time)" if run["realtime_factor"] else ""
    print(f"{run['ok']} clips done, {run['failed']} failed, {run['skipped_done']} already done; {run['seconds']} s"
          f"{speed}. Cache: {report['clips_ok']} ok, {report['clips_failed']} failed"
          + (f", {len(report['missing'])} not processed yet ("
             + ("--limit" if args.limit is not None else "shards not run or still running") + ")"
             if report["missing"] else "")
          + f" -> {Path(args.cache) / 'report.json'}")
    for clip, reason in report["failed"].items():
        print(f"  failed {clip}: {reason.splitlines()[0]}")
    if run["skipped_failed"]:
        print(f"{run['skipped_failed']} clips that failed before were not tried again: --retry-failed tries them "
              "(after their cause is fixed)")
    if not report["clips_ok"]:
        print(f"error: no clip of {args.root} could be used (reasons above); the cache holds nothing to train on",
              file=sys.stderr)
        sys.exit(1)


def _preview(args) -> None:
    from .preview import preview

    print(preview(args.inputs, args.out))


def _train(args) -> None:
    from .train import TrainConfig, train

    try:
        overrides = json.loads(args.set) if args.set else {}
    except json.JSONDecodeError as e:
        raise ValueError(f"--set is not valid JSON ({e}); write it like '{{\"use_corr\": false}}'") from e
    if not isinstance(overrides, dict):
        raise ValueError(f"--set takes a JSON object of fields, like '{{\"use_corr\": false}}', not {args.set}")
    cfg = TrainConfig(model=args.model, preset=args.preset, cache=args.cache, out=args.out, steps=args.steps,
                      batch_size=args.batch_size, seed=args.seed, bf16=args.bf16, workers=args.workers,
                      log_every=args.log_every, sample_every=args.sample_every, val_every=args.val_every,
                      ckpt_every=args.ckpt_every, clips=args.clips, add_caches=args.add_cache, resume=args.resume,
                      overrides=overrides)
    final = train(cfg)
    if int(os.environ.get("RANK", 0)) == 0:  # under torchrun, said once
        print(f"model: {final}")


def _generate(args) -> None:
    from .generate import SAMPLE_AUDIO, SAMPLE_FACE, generate

    audio = args.audio or (None if args.drive_video else SAMPLE_AUDIO)
    out = generate(audio, args.face or SAMPLE_FACE, args.out, model=args.model, checkpoint=args.checkpoint,
                   drive_video=args.drive_video, max_seconds=args.max_seconds,
                   expressiveness=args.expressiveness, progress=not args.quiet, **_controls(args))
    print(out)


def _batch(args) -> int:
    from .batch import batch, folder_jobs

    if args.jobs and (args.audio_dir or args.face_dir):
        raise ValueError("give a job list, or --audio-dir and --face-dir, not both")
    if args.jobs:
        jobs = args.jobs
    elif args.audio_dir and args.face_dir and args.out_dir:
        jobs = folder_jobs(args.audio_dir, args.face_dir, args.out_dir)
    else:
        raise ValueError("give a job list (CSV or JSON lines), or --audio-dir, --face-dir and --out-dir")
    summary = batch(jobs, args.out_dir, model=args.model, checkpoint=args.checkpoint, progress=not args.quiet,
                    max_seconds=args.max_seconds, resume=args.resume, expressiveness=args.expressiveness,
                    **_controls(args))
    failed, skipped = summary["failed"], summary["skipped"]
    print(f"{len(summary['done'])} of {summary['jobs']} jobs done"
          + (f" ({len(skipped)} more done before, skipped)" if skipped else "")
          + f", {len(failed)} failed, in {summary['seconds']} s")
    for f in failed:
        print(f"  failed job {f['job']} ({f['audio']} onto {f['face']}): {f['reason']}")
    return 1 if failed else 0


def _score(args) -> int:
    from .score import score, table

    rows = score(args.videos, face_index=args.face_index, max_seconds=args.max_seconds, out=args.json)
    print(table(rows))
    return 1 if any("error" in r for r in rows) else 0


def _stream(args) -> None:
    import numpy as np

    from .generate import SAMPLE_FACE
    from .stream import file_chunks, mic_chunks, pcm_chunks, stream

    if args.mic == (args.audio is not None):
        raise ValueError("give one speech source: --audio FILE (played at real-time pace), --audio - (raw 16 kHz "
                         "mono s16le PCM on stdin) or --mic")
    live, from_file = args.mic or args.audio == "-", args.audio not in (None, "-")
    if args.seconds is not None and not args.mic:
        raise ValueError("--seconds is for --mic: a file or stdin ends where its speech ends")
    if args.fast and not from_file:
        raise ValueError("--fast is for --audio FILE: a microphone or stdin arrives at its own pace")
    chunks = (mic_chunks(args.seconds) if args.mic else pcm_chunks() if args.audio == "-" else
              file_chunks(args.audio, realtime=not args.fast, max_seconds=args.max_seconds))
    result = stream(chunks, args.face or SAMPLE_FACE, args.out, model=args.model, checkpoint=args.checkpoint,
                    face_index=args.face_index, face_box=args.face_box, loop=args.loop, pad=args.pad,
                    expressiveness=args.expressiveness, lookahead=args.lookahead, progress=not args.quiet,
                    sound=args.audio if from_file else None, finish_on_interrupt=live)
    latency = result["latency_s"] * 1000
    what = ("wait behind the speech handed over at once (--fast: not a latency)" if args.fast else
            "latency from a frame's last audio sample to the frame out")
    print(f"{result['out']}: {result['frames']} frames; look-ahead {result['lookahead_frames']} frames "
          f"({result['lookahead_frames'] * 1000 // 25} ms); {what}: median {np.median(latency):.0f} ms, "
          f"95th percentile {np.percentile(latency, 95):.0f} ms")


def _demo(args) -> None:
    import importlib.util

    if importlib.util.find_spec("gradio") is None:  # demo.py imports it only when serving
        raise ValueError("the web page needs Gradio, which is not installed: pip install \"lipgen[demo]\" (in a "
                         "checkout: pip install -e \".[demo]\")")
    from .demo import check_settings, demo

    check_settings(args.host, args.port, args.max_seconds, args.max_upload_mb)  # before the address is printed
    print(f"lipgen demo: http://{args.host}:{args.port}/ (Ctrl-C to stop)", flush=True)
    demo(args.host, args.port, max_seconds=args.max_seconds, max_upload_mb=args.max_upload_mb)


def _controls(args) -> dict:
    """The generation controls shared by generate, batch and stream, as API arguments."""
    return {"fps": args.fps, "loop": args.loop, "pad": args.pad, "face_index": args.face_index,
            "face_box": args.face_box, "batch_size": args.batch_size}


def _face_box(text: str) -> tuple[float, ...]:
    """--face-box x0,y0,x1,y1 -> four numbers."""
    try:
        box = tuple(float(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4:
        raise argparse.ArgumentTypeError(f"expected x0,y0,x1,y1 (four numbers, pixels), got {text!r}")
    return box


def add_controls(p, batch: bool = True) -> None:
    """The model and the controls every generating command has (see _controls); stream (batch=False) has no
    --fps (it makes media.VIDEO_FPS), --max-seconds nor --batch-size."""
    p.add_argument("--model", help="motion (default: any face, any voice), glance, crgan or davs"
                                   + ("" if batch else " (only motion streams)"))
    p.add_argument("--checkpoint", help="model file from `lipgen train` (default: the shipped model)")
    _expressiveness_arg(p)
    if batch:
        p.add_argument("--max-seconds", type=float, default=600,
                       help="longest input accepted, in seconds (default 600)")
        p.add_argument("--fps", type=float,
                       help="output frame rate, 1-240 (default: a video face's own rate, 25 for a photo or a video "
                            "slower than 20 fps)")
    p.add_argument("--loop", default="pingpong", choices=["pingpong", "forward"],
                   help="a face video shorter than the speech plays back and forth (pingpong, default) or from its "
                        "start again (forward)")
    p.add_argument("--pad", type=float, default=0.0,
                   help="share of the changed region added around it, 0-1 (crop models: the mouth/face crop; "
                        "motion: how far beyond the jaw the warp fades out); default 0")
    p.add_argument("--face-index", type=int, help="which face when there are several (0 = largest)")
    p.add_argument("--face-box", type=_face_box, metavar="X0,Y0,X1,Y1",
                   help="pin the face that overlaps this box (pixels of the first frame) instead of --face-index")
    if batch:
        p.add_argument("--batch-size", type=int, default=8, help="windows per forward pass (glance, davs; default 8)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or notes, only warnings and errors")


def _evaluate(args) -> None:
    from .evaluation.evaluate import evaluate

    summary = evaluate(args.models, args.cache, args.out, split=args.split, limit=args.limit,
                       expert=None if args.no_sync else args.expert, expressiveness=args.expressiveness)
    print((Path(args.out) / "report.md").read_text().split("\n## ")[0])
    print(f"written: {args.out}/report.md, report.csv, report.json, mouth_opening.png ({summary['clips']} clips)")


def _evaluate_videos(args) -> None:
    from .evaluation.wild import evaluate_videos

    summary = evaluate_videos(args.folder, args.out, models=args.models, seconds=args.seconds, manifest=args.manifest,
                              work=args.work, limit=args.limit, max_side=args.max_side,
                              expert=None if args.no_sync else args.expert, expressiveness=args.expressiveness)
    print((Path(args.out) / "report.md").read_text().split("\n## per input")[0])
    print(f"written: {args.out}/report.md, report.csv, report.json, opening.png ({summary['complete']} clips with "
          f"every row, {len(summary['skipped'])} skipped)")
    _some_evaluated(summary, args.out)


def _evaluate_portraits(args) -> None:
    from .evaluation.portraits import evaluate_portraits

    summary = evaluate_portraits(args.folder, args.out, models=args.models, speech=args.speech,
                                 manifest=args.manifest, work=args.work, limit=args.limit, max_side=args.max_side,
                                 expert=None if args.no_sync else args.expert, expressiveness=args.expressiveness)
    print((Path(args.out) / "report.md").read_text().split("\n## per input")[0])
    others = len(summary["skipped"]) - len(summary["no_face_found"])
    print(f"written: {args.out}/report.md, report.csv, report.json, opening.png ({summary['complete']} images with "
          f"every row; no face found: {', '.join(summary['no_face_found']) or 'none'}"
          + (f"; {others} others not evaluated, each with its reason in report.md)" if others else ")"))
    _some_evaluated(summary, args.out)


def _some_evaluated(summary: dict, out) -> None:
    """A run in which no input got every row ends in an error (exit code 2), its report still written."""
    if not summary["complete"]:
        raise LipgenError(f"no input was evaluated with every row; {out}/report.md says why for each")


def _select(args) -> None:
    from .data.select import select

    result = select(args.cache, args.out, size=args.size, fraction=args.fraction, method=args.method,
                    split=args.split, seed=args.seed)
    phones = (f": phone-histogram L1 distance {result['distance']}, phone coverage {result['coverage']:.0%}"
              if result["distance"] is not None else " (no transcripts: no phones to compare)")
    print(f"selected {result['size']} of {result['of']} clips ({result['method']}){phones} -> {args.out}")


def _lipread(args) -> None:
    from .lipread import lipread

    for w in lipread(args.video, args.audio, model=args.model, checkpoint=args.checkpoint):
        print(f"{w.start:6.2f}-{w.end:6.2f} s  {w.word:<8} p={w.probability:.2f}")


def _retrieve(args) -> None:
    from .lipread import retrieve

    query, candidates = (args.audio, args.videos) if args.audio else (args.video, args.audios)
    if not query or not candidates or ((args.audio or args.videos) and (args.video or args.audios)):
        raise ValueError("give --audio with --videos, or --video with --audios (one query at a time)")
    for rank, (path, score) in enumerate(retrieve(query, candidates, bool(args.audio), args.model, args.checkpoint), 1):
        print(f"{rank:3d}  {score:+.3f}  {path}")


_AGAIN = {  # how an interrupted long job goes on
    "train": "; the last checkpoint is kept: the same command with --resume goes on from it",
    "preprocess": "; the clips done are kept: the same command goes on with the rest",
    "batch": "; the jobs done are kept: the same command with --resume does the rest",
}


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="lipgen", description="Audio-driven lip and talking-face generation.")
    parser.add_argument("--version", action="version", version=f"lipgen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("preprocess", help="corpus -> training cache (crops, landmarks, log-mel)",
                       description="Turn a talking-face corpus into a cache of per-clip arrays. Resumable: a "
                                   "re-run skips finished clips; unusable clips are reported and skipped.")
    p.add_argument("--root", required=True, help="corpus folder")
    p.add_argument("--cache", required=True, help="output cache folder")
    p.add_argument("--corpus", default="grid", choices=["grid", "lrw", "folder"], help="corpus layout (default grid): grid, lrw (WORD/{train,val,test}/WORD_00001.mp4) or folder "
                        "(your own videos: the speaker is the folder under --root, a <clip>.txt its transcript)")
    p.add_argument("--workers", type=int, default=2, help="parallel processes (default 2)")
    p.add_argument("--shard", help="i/N: process every N-th clip starting at i, for running on N machines")
    p.add_argument("--retry-failed", action="store_true", help="try again the clips that failed before")
    p.add_argument("--limit", type=int, help="process at most this many clips (of this shard)")
    p.add_argument("--test-speakers", nargs="*", default=[], help="speakers whose clips all go to the test split (never trained on)")
    p.add_argument("--max-seconds", type=float, default=600,
                   help="longest clip accepted, seconds (default 600); a longer one is reported and skipped")
    p.set_defaults(func=_preprocess)

    p = sub.add_parser("preview", help="picture of face/mouth crops with landmarks for some videos",
                       description="Track faces in videos and write one picture of their aligned face and mouth "
                                   "crops with landmarks drawn (default: the bundled GRID clips).")
    p.add_argument("inputs", nargs="*", help="videos (default: bundled GRID sample clips)")
    p.add_argument("-o", "--out", default="preview.png", help="output picture (default preview.png)")
    p.set_defaults(func=_preview)

    p = sub.add_parser("train", help="train a model on a cache (1 process, or DDP under torchrun)",
                       description="Train a lipgen model. Under torchrun, runs DDP (gloo on CPU, nccl on GPU).")
    p.add_argument("--model", default="glance", help="model name (default glance)")
    p.add_argument("--preset", default="cpu", help="model config preset (default cpu): paper, cpu or tiny; each "
                                                   "model file's PRESETS lists its own (motion also mel, the sync "
                                                   "experts no paper)")
    p.add_argument("--cache", required=True, help="preprocessed cache folder")
    p.add_argument("--out", required=True, help="run folder: checkpoints, TensorBoard logs, samples")
    p.add_argument("--steps", type=int, default=5000, help="total optimisation steps (default 5000)")
    p.add_argument("--batch-size", type=int, default=8, help="clips per step per process (default 8)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (about 2x faster on CPUs with bf16)")
    p.add_argument("--workers", type=int, default=1, help="data-loading processes (default 1)")
    p.add_argument("--log-every", type=int, default=10, help="steps between TensorBoard scalars")
    p.add_argument("--sample-every", type=int, default=500, help="steps between sample grids (0: none but the last)")
    p.add_argument("--val-every", type=int, default=500, help="steps between validation passes")
    p.add_argument("--ckpt-every", type=int, default=250, help="steps between checkpoints")
    p.add_argument("--clips", help="manifest of clip ids to train on (e.g. from `lipgen select`)")
    p.add_argument("--add-cache", action="append", default=[], metavar="CACHE",
                   help="also train on every training clip of this cache (repeatable; motion and lmsync): more "
                        "speakers, e.g. your own recordings preprocessed with --corpus folder. Validation stays "
                        "--cache's")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.add_argument("--set", help='JSON of model config fields to override, e.g. \'{"use_corr": false}\'')
    p.set_defaults(func=_train)

    p = sub.add_parser("generate", help="speech + face photo/video -> talking mp4",
                       description="Make an mp4 of the face in --face saying --audio. Without arguments, uses "
                                   "the bundled sample speech and face.")
    p.add_argument("--audio", help="speech file (wav, flac, mp3, m4a, or a video's sound); default: bundled sample")
    p.add_argument("--face", help="photo or video of the face; default: bundled sample photo")
    p.add_argument("-o", "--out", default="out.mp4",
                   help="output mp4 (default out.mp4), with the speech's own sound (its rate up to 48 kHz, mono or "
                        "stereo)")
    p.add_argument("--drive-video", help="drive the face with this video's mouth movements instead of audio "
                                         "(--model davs); its sound is used unless --audio is given")
    add_controls(p)
    p.set_defaults(func=_generate)

    p = sub.add_parser("batch", help="many speech + face jobs with the model loaded once",
                       description="Run a job list (CSV with a header, or JSON lines: audio, face, and optionally "
                                   "out, face_index, face_box, fps, loop, pad, expressiveness; paths relative to "
                                   "the list) or every speech file of --audio-dir onto every face of --face-dir. "
                                   "The model is loaded once and each face tracked once; a failed job is reported "
                                   "with its reason and the rest go on. Exit code 1 if any job failed.")
    p.add_argument("jobs", nargs="?", help="job list (.csv or .jsonl)")
    p.add_argument("--audio-dir", help="folder of speech files (with --face-dir)")
    p.add_argument("--face-dir", help="folder of face photos or videos (with --audio-dir)")
    p.add_argument("--out-dir", help="folder for outputs of jobs without `out` (default: the job list's folder)")
    p.add_argument("--resume", action="store_true", help="skip jobs whose output exists and is newer than their "
                                                         "audio and face (after an interruption)")
    add_controls(p)
    p.set_defaults(func=_batch)

    p = sub.add_parser("score", help="sync, opening in silence, jitter and sharpness of any talking-face video",
                       description="Score talking-face videos without a cache or reference: sync confidence, "
                                   "distance and offset by the landmark sync expert, mouth opening in speech and "
                                   "silence, mouth jitter and mouth CPBD. Read at 25 fps. Exit code 1 if a video "
                                   "could not be scored.")
    p.add_argument("videos", nargs="+", help="videos with sound")
    p.add_argument("--face-index", type=int, help="which face when there are several (0 = largest)")
    p.add_argument("--json", help="also write the scores to this JSON file")
    p.add_argument("--max-seconds", type=float, default=600, help="longest video accepted, in seconds (default 600)")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors besides the table")
    p.set_defaults(func=_score)

    p = sub.add_parser("stream", help="real time: speech in chunks -> frames out as they are made",
                       description="Generate while speech arrives (motion model): from a file played at "
                                   "real-time pace, raw 16 kHz mono 16-bit PCM on stdin (--audio -), or a "
                                   "microphone (--mic, needs the sounddevice package). Each frame is written to the "
                                   "mp4 when made (at 25 fps, whatever the face video's rate); the sound is muxed "
                                   "when the speech ends; Ctrl-C on a microphone or stdin ends the speech there and "
                                   "finishes the video. Every audio step is causal; the model waits for --lookahead "
                                   "frames of audio after a frame (default its whole future context: 11 frames, "
                                   "440 ms, for the shipped model).")
    p.add_argument("--audio", help="speech file played at real-time pace, or - for raw PCM on stdin")
    p.add_argument("--mic", action="store_true", help="listen to the microphone until Ctrl-C (the video is then "
                                                      "finished with what was heard) or --seconds")
    p.add_argument("--seconds", type=float, help="with --mic: stop after this many seconds")
    p.add_argument("--fast", action="store_true", help="with a file: hand it over as fast as it is used, not at "
                                                       "real-time pace")
    p.add_argument("--max-seconds", type=float, default=600,
                   help="with a file: longest speech accepted, in seconds (default 600)")
    p.add_argument("--face", help="photo or video of the face; default: bundled sample photo")
    p.add_argument("-o", "--out", default="live.mp4", help="output mp4 (default live.mp4)")
    p.add_argument("--lookahead", type=int, help="frames of audio waited for after a frame (default: the model's "
                                                 "whole context; fewer = lower latency, motion a little off; under "
                                                 "8 the lips no longer part before a word's sound)")
    add_controls(p, batch=False)
    p.set_defaults(func=_stream)

    p = sub.add_parser("demo", help="a local web page: speech + face -> video, in the browser",
                       description="Serve lipgen's web page (needs the demo extra: pip install \"lipgen[demo]\"): "
                                   "upload or record speech, upload a photo or video or pick a sample, choose the model "
                                   "and face, watch and download the result, or watch it live as it is made (motion "
                                   "model). One job at a time; no analytics.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--max-seconds", type=float, default=60, help="longest speech or face video taken (default 60)")
    p.add_argument("--max-upload-mb", type=int, default=50, help="largest upload in MB (default 50)")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    p.set_defaults(func=_demo)

    p = sub.add_parser("select", help="phoneme-based training-sample selection (CRGAN)",
                       description="Pick a subset of cached training clips whose phoneme distribution (from "
                                   "transcripts and the CMU pronouncing dictionary) matches the full set's, and "
                                   "write a manifest for `lipgen train --clips`.")
    p.add_argument("--cache", required=True, help="preprocessed cache folder")
    p.add_argument("--out", required=True, help="manifest to write (JSON lines)")
    p.add_argument("--size", type=int, help="number of clips (default: --fraction of them)")
    p.add_argument("--fraction", type=float, help="share of clips to keep (default 0.5; or --size)")
    p.add_argument("--method", default="match", choices=["match", "random"], help="match (default) or random")
    p.add_argument("--split", default="train", help="split to select from (default train)")
    p.add_argument("--seed", type=int, default=0, help="random seed (ties, random method)")
    p.set_defaults(func=_select)

    p = sub.add_parser("lipread", help="read words from lips, audio, or both (DAVS)",
                       description="Words spoken in a video (from the lips) and/or in audio, with times, read by "
                                   "a DAVS model's shared word classifier over 12-frame windows, in the vocabulary "
                                   "of the corpus it was trained on (GRID's 51 words for the shipped model).")
    p.add_argument("--video", help="video of a talking face")
    p.add_argument("--audio", help="speech audio (or a video's sound)")
    p.add_argument("--model", help="shipped model name (default davs, or the checkpoint's model)")
    p.add_argument("--checkpoint", help="model file (default: the shipped model)")
    p.set_defaults(func=_lipread)

    p = sub.add_parser("retrieve", help="rank videos for speech, or speech for a video (DAVS)",
                       description="Audio-video retrieval in a DAVS model's word-ID space: candidates ranked by "
                                   "the cosine similarity of their word features (averaged over each file's word "
                                   "windows) to the query's. The shipped model finds a held-out GRID word's video "
                                   "among 258 at R@1 0.29 (README, Results): GRID's sentences, all of one form, "
                                   "are often confused.")
    p.add_argument("--audio", help="speech query")
    p.add_argument("--videos", nargs="*", help="candidate videos for an audio query")
    p.add_argument("--video", help="video query")
    p.add_argument("--audios", nargs="*", help="candidate audio files for a video query")
    p.add_argument("--model", help="shipped model name (default davs, or the checkpoint's model)")
    p.add_argument("--checkpoint", help="model file (default: the shipped model)")
    p.set_defaults(func=_retrieve)

    p = sub.add_parser("evaluate", help="all metrics for models on a held-out split, in one table",
                       description="Generate each test clip from its own audio and first frame with every model, "
                                   "and measure LMD, SSIM, PSNR, CPBD, sync (LSE-D/C), identity, mouth opening "
                                   "in silence and speech, and jitter, beside the ground truth and a static "
                                   "baseline. Writes report.md/.csv/.json and a mouth-opening plot.")
    p.add_argument("models", nargs="*", default=["motion"],
                   help="shipped model names or checkpoint files (default: motion, what lipgen generate uses)")
    p.add_argument("--cache", required=True, help="preprocessed cache folder")
    p.add_argument("--out", default="eval", help="report folder (default eval)")
    p.add_argument("--split", default="test", help="split to evaluate (default test)")
    p.add_argument("--limit", type=int, help="evaluate at most this many clips (the first by name; DAVS's and "
                                             "CRGAN's word measures too)")
    _expressiveness_arg(p)
    _sync_args(p)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("evaluate-videos", help="evaluate models on any folder of talking-face videos (no cache)",
                       description="For each video with sound in FOLDER (its first --seconds, at 25 fps, longer side "
                                   "at most --max-side px), make the rows ground truth, static (first frame held) and, "
                                   "per model, 'from photo' (first frame + the clip's audio) and 'dubbing' (the "
                                   "clip's frames + its audio); measure mouth LMD / inter-ocular distance, opening "
                                   "correlation, opening in speech and silence, identity, mouth CPBD and sync "
                                   "against the real clip. Writes report.md/.csv/.json and opening.png.")
    _folder_args(p, "videos with sound")
    p.add_argument("--seconds", type=float, default=8.0, help="seconds of each clip, from its start (default 8)")
    p.add_argument("--manifest", help="JSON or CSV of file name -> face index, for clips with several faces "
                                      "(without an entry such a clip is skipped)")
    p.add_argument("--work", help="folder for prepared clips, generated videos and landmarks, reused by later "
                                  "runs (default: a temporary folder)")
    p.add_argument("--limit", type=int, help="evaluate at most this many clips (the first by name)")
    p.add_argument("--max-side", type=int, default=720, help="downscale frames whose longer side is larger (default 720)")
    _expressiveness_arg(p)
    _sync_args(p)
    p.set_defaults(func=_evaluate_videos)

    p = sub.add_parser("evaluate-portraits", help="evaluate models on a folder of still portraits (no cache)",
                       description="Make every image in FOLDER say the same speech with each model (and a static "
                                   "row), and measure mouth opening in speech vs silence (word timings), its "
                                   "correlation with the speech envelope, sync, identity kept and mouth CPBD vs "
                                   "the photo. Images with no face are listed. Writes report.md/.csv/.json and "
                                   "opening.png.")
    _folder_args(p, "face images")
    p.add_argument("--speech", nargs="+", help="speech files said one after another, each with a GRID .align beside it "
                                               "(or in ../align/), a GRID sentence name, or a .txt transcript "
                                               "(default: the bundled GRID clips, 9 s)")
    p.add_argument("--manifest", help="JSON or CSV of file name -> face index (default: the largest face)")
    p.add_argument("--work", help="folder for generated videos and landmarks, reused by later runs "
                                  "(default: a temporary folder)")
    p.add_argument("--limit", type=int, help="evaluate at most this many images (the first by name)")
    p.add_argument("--max-side", type=int, default=720, help="downscale images whose longer side is larger (default 720)")
    _expressiveness_arg(p)
    _sync_args(p)
    p.set_defaults(func=_evaluate_portraits)
    return parser


def _folder_args(p, what: str) -> None:
    """The arguments the no-cache evaluations share: the folder, the report folder, the models."""
    p.add_argument("folder", help=f"folder of {what} (the files directly in it)")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--models", nargs="+", help="shipped model names or checkpoint files (default: every shipped model)")


def _expressiveness_arg(p) -> None:
    p.add_argument("--expressiveness", type=float, help="motion model: how far the mouth moves, times the prediction "
                                                        "(default 1.5; 1 = as GRID's speakers, mostly s1; 0 to 10)")


def _sync_args(p) -> None:
    p.add_argument("--expert", default="default", help="sync expert checkpoint (default: the shipped one)")
    p.add_argument("--no-sync", action="store_true", help="skip the sync columns")


def main(argv: list[str] | None = None) -> int:
    """Run one command. Every expected failure - an input or setting lipgen cannot use, a file system
    problem, Ctrl-C, SIGTERM or SIGHUP - ends it with one line on stderr and a non-zero exit code
    (2; 130 for Ctrl-C; 128 + the signal's number), after the half-written output is removed. A bug
    keeps its traceback."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="lipgen: %(message)s")
    logging.getLogger("lipgen").setLevel(logging.WARNING if getattr(args, "quiet", False) else logging.INFO)
    try:
        with _signals_stop():
            code = args.func(args)
    except KeyboardInterrupt:
        _say(f"lipgen {args.command}: interrupted; unfinished output removed{_AGAIN.get(args.command, '')}")
        return 130
    except _Stopped as e:
        _say(f"lipgen {args.command}: stopped by {e.name}; unfinished output removed{_AGAIN.get(args.command, '')}")
        return e.code
    except (LipgenError, OSError, ValueError) as e:
        _say(f"lipgen {args.command}: error: {one_line(e)}")
        return 2
    return code or 0


def _say(line: str) -> None:
    """Print a line on stderr, on a line of its own: a progress bar the failure interrupted is closed first."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()
    print(line, file=sys.stderr)


class _Stopped(SystemExit):
    """Raised by SIGTERM/SIGHUP, so that `with` blocks (the mp4 writer's temporary file) clean up on the way out."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.name = signal.Signals(signum).name


@contextlib.contextmanager
def _signals_stop():
    """SIGTERM and SIGHUP raise _Stopped instead of killing the process outright (main thread only)."""
    def stop(signum, frame):
        raise _Stopped(signum)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {sig: signal.signal(sig, stop) for sig in wanted}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
