"""One training loop for every lipgen model, for one process or many (torchrun -> DDP).

    lipgen train --model glance --preset cpu --cache cache/grid --out runs/glance
    torchrun --nproc_per_node 2 -m lipgen train ...      # gloo on CPU, nccl on GPU

Distributed training averages gradients across processes after every backward, in a few flat buckets per
optimizer step (as DistributedDataParallel does, but called by the model's own `update(loss, name)`, so GANs
with several optimizers and frozen critics work as simply as one model); BatchNorm statistics are kept in
sync (SyncBatchNorm on GPU; on CPU, where torch has no SyncBatchNorm, the running statistics are averaged
after every step). Each process draws its own batches. Batches are a function of (seed, rank, step), and checkpoints hold the
optimizers and RNG state, so `--resume` continues exactly where a killed run stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from .checkpoint import load_weights, save_model
from .data.cache import missing_clips, read_vocabulary, reading_differs
from .data.dataset import LipDataset, WordDataset, clip_ids
from .errors import LipgenError, check_number, one_line
from .models import data_presets, model_classes
from .models.base import OLD_CONFIG_DATA_FIELDS, DataSpec
from .pixels import to_uint8

log = logging.getLogger(__name__)

CHECKPOINTS_KEPT = 3
BUCKET_BYTES = 25 * 2**20  # gradients all-reduced in flat buckets of this size (DistributedDataParallel's default)


@dataclass
class TrainConfig:
    model: str = "glance"
    preset: str = "cpu"
    cache: str = "cache/grid"
    out: str = "runs/glance"
    steps: int = 5000
    batch_size: int = 8  # per process
    seed: int = 0
    bf16: bool = False  # CPU/GPU bfloat16 autocast for the forward passes
    workers: int = 1  # DataLoader worker processes
    log_every: int = 10
    sample_every: int = 500
    val_every: int = 500
    ckpt_every: int = 250
    val_items: int = 64
    clips: str | None = None  # manifest of clip ids to train on (e.g. from `lipgen select`)
    add_caches: list[str] = field(default_factory=list)  # more caches trained on whole (more speakers; motion data)
    resume: bool = False
    overrides: dict = field(default_factory=dict)  # model config or DataSpec fields to change from the preset


class StepSampler(Sampler):
    """Indices for steps start..steps-1, each batch drawn from an RNG seeded by (seed, rank, step)."""

    def __init__(self, n: int, batch_size: int, start: int, steps: int, seed: int, rank: int):
        self.n, self.batch_size, self.start, self.steps, self.seed, self.rank = n, batch_size, start, steps, seed, rank

    def __iter__(self):
        for step in range(self.start, self.steps):
            yield from np.random.default_rng((self.seed, self.rank, step)).integers(0, self.n, self.batch_size).tolist()

    def __len__(self):
        return (self.steps - self.start) * self.batch_size


def _distributed() -> tuple[int, int]:
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _latest_checkpoint(out: Path) -> Path | None:
    done = sorted(p for p in (out / "checkpoints").glob("step_*") if (p / "train_state.pt").is_file())
    return done[-1] if done else None


def _save(out: Path, cfg: TrainConfig, system, step: int) -> None:
    final = out / "checkpoints" / f"step_{step:07d}"
    tmp = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(tmp / "model.safetensors", cfg.model, system.config, system.state_dict(), step,
               vocabulary=system.vocabulary)
    torch.save({"step": step, "optimizers": {k: o.state_dict() for k, o in system.opts.items()},
                "torch_rng": torch.get_rng_state(), "train_config": dataclasses.asdict(cfg),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
               tmp / "train_state.pt")
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)
    for old in sorted((out / "checkpoints").glob("step_*"))[:-CHECKPOINTS_KEPT]:
        shutil.rmtree(old, ignore_errors=True)


def sample_grid(real: torch.Tensor, fake: torch.Tensor, max_clips: int = 4, max_frames: int = 8) -> np.ndarray:
    """Picture of real (top) vs generated (bottom) rows for a few clips: (B, 3, T, H, W) -> (H', W', 3) uint8."""
    rows = []
    for r, f in zip(real[:max_clips], fake[:max_clips]):
        step = max(1, r.shape[1] // max_frames)
        for v in (r, f):
            frames = v[:, ::step][:, :max_frames]  # (3, t, H, W)
            rows.append(torch.cat(list(frames.unbind(1)), dim=2))  # (3, H, t*W)
    return to_uint8(torch.cat(rows, dim=1))


def train(cfg: TrainConfig) -> Path:
    """Train cfg.model on cfg.cache (and every training clip of cfg.add_caches); returns the path of the final model
    checkpoint."""
    rank, world = _distributed()
    out = Path(cfg.out)
    system_cls, config_cls, presets = model_classes(cfg.model)
    if cfg.preset not in presets:
        raise ValueError(f"unknown preset {cfg.preset!r} for {cfg.model}: choose one of {sorted(presets)}")
    if cfg.steps < 1:
        raise ValueError(f"--steps {cfg.steps}: train for at least 1 step")
    for flag in ("log_every", "val_every", "ckpt_every"):
        check_number(f"--{flag.replace('_', '-')}", getattr(cfg, flag), 1, integer=True)
    check_number("--sample-every (0: no samples)", cfg.sample_every, 0, integer=True)
    _check_out(out, cfg.resume)
    if world > 1:
        dist.barrier()  # every process has looked at --out before the first one writes there
    fields = {f.name for f in dataclasses.fields(presets[cfg.preset])}
    config_overrides, data_overrides = split_overrides(cfg.overrides, fields, cfg.model)
    check_types(config_overrides, presets[cfg.preset])
    model_cfg = dataclasses.replace(presets[cfg.preset], **config_overrides)
    vocabulary = read_vocabulary(cfg.cache)  # the corpus's words: the label order of word classifiers
    if "vocabulary_size" in fields and "vocabulary_size" not in config_overrides:
        if not vocabulary:
            raise ValueError(f"{cfg.cache}: no word list (vocabulary.json, or timed words in its clips), and "
                             f"{cfg.model} learns words. Preprocess a corpus with transcripts (GRID, LRW).")
        model_cfg = dataclasses.replace(model_cfg, vocabulary_size=len(vocabulary))
    torch.manual_seed(cfg.seed)  # same initial weights on every process
    system = system_cls(model_cfg)
    system.vocabulary = vocabulary
    device = torch.device("cuda", rank % torch.cuda.device_count()) if torch.cuda.is_available() else torch.device("cpu")
    if world > 1 and device.type == "cuda":
        system = torch.nn.SyncBatchNorm.convert_sync_batchnorm(system)  # the same modules, BN in sync
    system.opts = system.optimizers()
    system.to(device)

    start = 0
    latest = _latest_checkpoint(out) if cfg.resume else None
    if latest is not None:
        _check_same_run(out, cfg, world)
        load_weights(system, latest / "model.safetensors", model=cfg.model)
        state = torch.load(latest / "train_state.pt", weights_only=False)
        for k, o in system.opts.items():
            o.load_state_dict(state["optimizers"][k])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        start = state["step"]
        if cfg.steps < start:
            raise ValueError(f"--resume {out}: the run is already at step {start}; give --steps {start} or more")
    elif cfg.resume and rank == 0:
        print(f"--resume: no checkpoint in {out}/checkpoints, starting at step 0")

    clips = clip_ids(cfg.clips) if cfg.clips else None
    for cache in (cfg.cache, *cfg.add_caches):
        missing = missing_clips(cache)
        if missing and rank == 0:
            log.warning("%s: %d clips of its corpus are not processed yet (%s...): shards not run, or still running; "
                        "training goes on without them", cache, len(missing), ", ".join(missing[:3]))
        if (differs := reading_differs(cache)) and rank == 0:
            log.warning("%s: the model learns landmarks read otherwise than generation reads a face. Preprocess again "
                        "into a new --cache folder to train on the same reading", differs)
    check_types(data_overrides, system.data_spec())
    spec = dataclasses.replace(system.data_spec(), **{**data_presets(cfg.model).get(cfg.preset, {}), **data_overrides})
    if cfg.add_caches and spec.kind != "motion":
        raise ValueError(f"--add-cache: {cfg.model} learns from {spec.kind} of one corpus (its word list, its "
                         "crops); only the speech-and-motion models (motion, lmsync) train on several caches")
    data = make_dataset(spec, cfg.cache, "train", clips=clips, seed=cfg.seed, vocabulary=vocabulary)
    if cfg.add_caches:  # more speakers: every training clip of each added cache, beside --cache's
        data = torch.utils.data.ConcatDataset(
            [data, *(make_dataset(spec, c, "train", seed=cfg.seed) for c in cfg.add_caches)])
    # The loader gets its own RNG: starting its iterator draws a seed, and from torch's global RNG that draw
    # would come after the resume state was restored, shifting every random number of the resumed run.
    loader = DataLoader(data, batch_size=cfg.batch_size, num_workers=cfg.workers,
                        sampler=StepSampler(len(data), cfg.batch_size, start, cfg.steps, cfg.seed, rank),
                        persistent_workers=False, generator=torch.Generator().manual_seed(cfg.seed * 1000 + rank))
    val = _validation_set(cfg, spec, vocabulary)

    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if cfg.bf16 else contextlib.nullcontext

    update = make_update(system, world, device)

    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        out.mkdir(parents=True, exist_ok=True)
        record = {"train": {**dataclasses.asdict(cfg), "processes": world}, "model": dataclasses.asdict(model_cfg),
                  "data": dataclasses.asdict(spec)}
        (out / "config.json").write_text(json.dumps(record, indent=1))
        writer = SummaryWriter(str(out / "tensorboard"))
    bar = tqdm(total=cfg.steps, initial=start, desc=f"train {cfg.model}", disable=rank != 0, unit="step")
    system.train()
    step = start
    t0 = time.perf_counter()
    try:
        for step, batch in enumerate(_batches(loader, device), start=start + 1):
            with autocast():
                logs = system.training_step(batch, step, update)
            if world > 1 and device.type != "cuda":
                average_batchnorm_statistics(system, world)
            bar.update()
            logging_step = step % cfg.log_every == 0 or step == cfg.steps
            if logging_step and world > 1:  # every process's batch, not rank 0's alone
                logs = mean_over_processes(logs, device)
            if rank == 0 and logging_step:
                bar.set_postfix({k.split("/")[-1]: f"{v:.3f}" for k, v in logs.items()
                                 if k.endswith("loss") or "l1" in k})
                for k, v in logs.items():
                    writer.add_scalar(f"train/{k}", v, step)
                writer.add_scalar("train/steps_per_s", (step - start) / (time.perf_counter() - t0), step)
            if rank == 0 and val is not None and (step % cfg.val_every == 0 or step == cfg.steps):
                _validate(system, val, writer, step, device, out, cfg.sample_every and step % cfg.sample_every == 0
                          or step == cfg.steps)
            if rank == 0 and (step % cfg.ckpt_every == 0 or step == cfg.steps):
                _save(out, cfg, system, step)
            if world > 1:
                dist.barrier()
    except RuntimeError as e:
        if world > 1 and (isinstance(e, getattr(dist, "DistBackendError", ())) or "by peer" in str(e)):
            raise LipgenError(f"another process of this run stopped ({str(e).splitlines()[0][:120]}); the "
                              f"checkpoints are kept: --resume {out} to continue") from e
        raise
    bar.close()
    final = out / "model.safetensors"
    if rank == 0:
        save_model(final, cfg.model, system.config, system.state_dict(), step, vocabulary=system.vocabulary)
        writer.close()
    if world > 1:
        dist.barrier()
    return final


def _check_out(out: Path, resume: bool) -> None:
    """Refuse to train into a folder that holds something, unless resuming: a finished run's model would be replaced
    and two runs' checkpoints and logs mixed."""
    if resume or not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"--out {out} is a file: give a folder for the run")
    if (out / "config.json").is_file() or (out / "checkpoints").is_dir():
        raise ValueError(f"--out {out} holds a run: --resume to continue it, or give another --out")
    if any(out.iterdir()):
        raise ValueError(f"--out {out} is a folder with other files in it: give a new or empty folder for the run")


# what makes a run itself
RESUME_MUST_MATCH = ("model", "preset", "batch_size", "seed", "bf16", "clips", "add_caches", "overrides")


def _check_same_run(out: Path, cfg: TrainConfig, world: int = 1) -> None:
    """--resume continues exactly only with the run's own settings and number of processes (the batches each
    process draws); steps, logging and workers may change."""
    try:
        was = json.loads((out / "config.json").read_text())["train"]
    except (OSError, ValueError, KeyError):
        return  # a run from before config.json held these: nothing to compare
    if was.get("processes", world) != world:
        raise ValueError(f"--resume {out} with {world} processes, the run had {was['processes']}: each process draws "
                         "its own batches, so it would not continue the same run. Start it as it was started "
                         "(torchrun --nproc_per_node), or give another --out")
    now = dataclasses.asdict(cfg)
    for run in (was, now):  # the same caches however their paths are spelt
        if "add_caches" in run:
            run["add_caches"] = [str(Path(c).resolve()) for c in run["add_caches"]]
    changed = [f"{k} {was.get(k)!r} -> {now[k]!r}" for k in RESUME_MUST_MATCH if k in was and was[k] != now[k]]
    if changed:
        raise ValueError(f"--resume {out} with other settings than the run's ({'; '.join(changed)}): it would not "
                         "continue the same run. Give the run's own settings, or another --out")
    if "cache" in was and Path(was["cache"]).resolve() != Path(cfg.cache).resolve():
        log.warning("--resume %s: the run trained on %s and goes on with %s (a moved copy is fine; another corpus "
                    "makes it a fine-tuning, not the same run)", out, was["cache"], cfg.cache)


SIZES = ("channels", "size", "dim", "frames", "hidden", "members", "versions", "layers", "blocks")  # fields of >= 1


def check_types(overrides: dict, defaults) -> None:
    """--set values of the kind the field holds (a whole number where the preset has one, true/false, text, a list),
    and sizes and counts (SIZES) of at least 1."""
    for k, v in overrides.items():
        default = getattr(defaults, k, None)
        if default is None:
            continue
        kinds, name = _kind(default)
        if not isinstance(v, kinds) or (isinstance(v, bool) and kinds is not bool):
            raise ValueError(f"--set {k}: {json.dumps(v)} is not {name} (the preset has {json.dumps(default)})")
        if kinds is int and k.endswith(SIZES) and v < 1:
            raise ValueError(f"--set {k}: {v}; it is a count or size, at least 1 (the preset has {default})")


def _kind(default) -> tuple:
    """(the types a --set value may have, their name) for a field, by its preset's value."""
    if isinstance(default, bool):
        return bool, "true or false"
    if isinstance(default, int):
        return int, "a whole number"
    if isinstance(default, float):
        return (int, float), "a number"
    if isinstance(default, (list, tuple)):
        return (list, tuple), "a list"
    return type(default), f"a {type(default).__name__}"


def split_overrides(overrides: dict, config_fields: set[str], model: str) -> tuple[dict, dict]:
    """--set fields -> (model config fields, DataSpec fields). The data fields model configs used to hold
    (OLD_CONFIG_DATA_FIELDS: dataset, silence_items, ...) still work, as the DataSpec field they became."""
    data_fields = {f.name for f in dataclasses.fields(DataSpec)} - {"window"}  # window follows n_frames
    config, data = {}, {}
    for k, v in overrides.items():
        if k in config_fields:
            config[k] = v
        elif k in data_fields or k in OLD_CONFIG_DATA_FIELDS:
            data[OLD_CONFIG_DATA_FIELDS.get(k, k)] = v
        else:
            config[k] = v
    unknown = sorted(set(config) - config_fields)
    if unknown:
        raise ValueError(f"--set: {', '.join(unknown)} not in the {model} config nor its data (DataSpec); "
                         f"config fields: {', '.join(sorted(config_fields))}; data: {', '.join(sorted(data_fields))}")
    return config, data


def make_update(system, world: int, device: torch.device):
    """The `update(loss, name)` a model's training_step calls: backward (in float32), gradients averaged
    across processes, then that optimizer's step."""

    def update(loss: torch.Tensor, name: str) -> None:
        opt = system.opts[name]
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, enabled=False):
            loss.backward()
        if world > 1:
            average_gradients([p for group in opt.param_groups for p in group["params"]], world)
        opt.step()

    return update


def average_gradients(params: list[torch.Tensor], world: int) -> None:
    """Mean of every parameter's gradient across processes, in flat buckets of up to BUCKET_BYTES. A parameter
    without a gradient on this process counts as zero (another process's batch may have reached it), so every
    process steps the same parameters by the same amount."""
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    bucket, size = [], 0
    for p in params + [None]:
        if p is not None:
            bucket.append(p.grad)
            size += p.grad.numel() * p.grad.element_size()
        if bucket and (p is None or size >= BUCKET_BYTES):
            flat = torch.cat([g.flatten() for g in bucket])
            dist.all_reduce(flat)
            flat /= world
            for g, part in zip(bucket, flat.split([g.numel() for g in bucket])):
                g.copy_(part.view_as(g))
            bucket, size = [], 0


def mean_over_processes(logs: dict, device: torch.device) -> dict[str, float]:
    """A training step's logged values, each the mean over the processes where it is a number (a process whose
    batch had nothing to measure logs NaN); one all-reduce, as every process logs the same names at each step."""
    names = sorted(logs)
    values = torch.tensor([float(logs[k]) for k in names], dtype=torch.float64, device=device)
    measured = values.isfinite()
    sums = torch.stack([values.where(measured, 0.0), measured.double()])
    dist.all_reduce(sums)
    return dict(zip(names, (sums[0] / sums[1]).tolist()))  # 0 / 0: NaN, measured nowhere


def average_batchnorm_statistics(system: torch.nn.Module, world: int) -> None:
    """Mean of every BatchNorm's running mean and variance across processes (in one all-reduce)."""
    stats = [t for m in system.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
             and m.track_running_stats for t in (m.running_mean, m.running_var)]
    if stats:
        flat = torch.cat([t.flatten() for t in stats])
        dist.all_reduce(flat)
        flat /= world
        for t, part in zip(stats, flat.split([t.numel() for t in stats])):
            t.copy_(part.view_as(t))


def make_dataset(spec: DataSpec, cache: str, split: str, clips: list[str] | None = None, seed: int = 0,
                 stride: int = 4, vocabulary: list[str] | None = None):
    """The Dataset a model's DataSpec asks for: "windows" (LipDataset of spec.window-frame windows every
    `stride` frames), "words" (WordDataset: one window centred on each timed word, and with spec.silences on
    each long pause) or "motion" (MotionDataset, augmented in training); spec.faces adds face crops.
    vocabulary: the word list labels index (default the cache's)."""
    if spec.kind == "motion":  # speech features and lower-face motion, augmented in training
        from .data.motion import MotionDataset

        return MotionDataset(cache, split, window=spec.window, augment=split == "train", clips=clips,
                             seed=seed, progress=split == "train", freq_mask=spec.freq_mask, speech=spec.speech,
                             versions=spec.versions)
    if spec.kind == "words":
        return WordDataset(cache, split, window=spec.window, faces=spec.faces, clips=clips, seed=seed,
                           silences=spec.silences, vocabulary=vocabulary)
    return LipDataset(cache, split, window=spec.window, stride=stride, faces=spec.faces, clips=clips, seed=seed,
                      vocabulary=vocabulary)


def _batches(loader, device):
    for batch in loader:
        yield {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def _validation_set(cfg: TrainConfig, spec: DataSpec, vocabulary: list[str]) -> list[dict] | None:
    """A fixed list of validation batches (same windows every time), or None if the cache has no val split."""
    try:
        data = make_dataset(spec, cfg.cache, "val", seed=1, stride=spec.window, vocabulary=vocabulary)
    except ValueError as e:
        log.warning("no validation (nor validation samples): %s", one_line(e))
        return None
    n = min(len(data), cfg.val_items)
    loader = DataLoader(torch.utils.data.Subset(data, range(n)), batch_size=cfg.batch_size,
                        generator=torch.Generator().manual_seed(cfg.seed))  # leaves the global RNG alone
    return list(loader)


@torch.no_grad()
def _validate(system, val, writer, step, device, out: Path, with_samples: bool) -> None:
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # validation's random numbers never shift training's
        _validate_once(system, val, writer, step, device, out, with_samples)


def _validate_once(system, val, writer, step, device, out: Path, with_samples: bool) -> None:
    system.eval()
    sums: dict[str, float] = {}
    for batch in val:
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        for k, v in system.validation_step(batch).items():
            sums[k] = sums.get(k, 0.0) + v / len(val)
    for k, v in sums.items():
        writer.add_scalar(k if k.startswith("val/") else f"val/{k}", v, step)
    if with_samples and system.crop in ("mouth", "face"):  # models that generate: a picture of real vs generated
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in val[0].items()}
        real_key = system.crop
        grid = sample_grid(batch[real_key].cpu(), system.sample(batch).cpu())
        writer.add_image("samples/real_vs_generated", grid, step, dataformats="HWC")
        from PIL import Image

        (out / "samples").mkdir(exist_ok=True)
        Image.fromarray(grid).save(out / "samples" / f"step_{step:07d}.png")
    system.train()
