"""Self-describing checkpoints: safetensors weights with the model name, config, step, format version and
the word list of its training corpus (the label order of its word classifiers) in the header.

A model file needs nothing but itself to load: `load_system(path)` rebuilds the model from the
config stored in it. Resume state (optimizers, RNG) lives beside it in train_state.pt.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from dataclasses import asdict, fields, replace
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .errors import CheckpointError
from .models import model_classes
from .models.base import OLD_CONFIG_DATA_FIELDS, READS_LIPS, READS_WORDS, can

FORMAT_VERSION = 1


def save_model(path: str | os.PathLike, model_name: str, config, state_dict: dict, step: int = 0,
               half: bool = False, vocabulary: list[str] | None = None) -> Path:
    """Write weights + {model, config, step, format, vocabulary} atomically. half: store float tensors as fp16."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in state_dict.items()}
    meta = {"model": model_name, "config": json.dumps(asdict(config)), "step": str(step),
            "format": str(FORMAT_VERSION)}
    if vocabulary is not None:
        meta["vocabulary"] = json.dumps(list(vocabulary))
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    save_file(tensors, str(tmp), metadata=meta)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def read_header(path: str | os.PathLike) -> dict:
    """{model, config (dict), step, format, vocabulary (list or None)} of a checkpoint file. Raises CheckpointError for a file that is
    not a readable lipgen checkpoint of this FORMAT_VERSION."""
    path = Path(path)
    if path.is_dir():
        raise FileNotFoundError(f"{path}: a folder; give its model file, e.g. {path / 'model.safetensors'}.")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint. Train one with `lipgen train` or pass --checkpoint.")
    if path.suffix == ".pt":
        raise CheckpointError(f"{path}: a training state (what --resume continues from), not a model. Give the "
                              f"model.safetensors beside it: {path.with_name('model.safetensors')}.")
    with _readable(path) as f:
        meta = f.metadata() or {}
    if "model" not in meta or "config" not in meta:
        raise CheckpointError(f"{path}: not a lipgen checkpoint (no model/config in its header).")
    if meta.get("format") != str(FORMAT_VERSION):
        raise CheckpointError(f"{path}: checkpoint format {meta.get('format', 'missing')!r}, but this lipgen "
                              f"reads format {FORMAT_VERSION}. Use the lipgen version that wrote it, or train the "
                              "model again.")
    try:
        return {"model": meta["model"], "config": json.loads(meta["config"]), "step": int(meta.get("step", 0)),
                "format": FORMAT_VERSION,
                "vocabulary": json.loads(meta["vocabulary"]) if "vocabulary" in meta else None}
    except ValueError as e:
        raise CheckpointError(f"{path}: damaged checkpoint header ({e}). Download or train it again.") from e


@contextlib.contextmanager
def _readable(path: Path):
    """safe_open, with a damaged, cut-short or empty file reported as a CheckpointError."""
    try:
        with safe_open(str(path), framework="pt") as f:
            yield f
    except SafetensorError as e:
        raise CheckpointError(f"{path}: not a readable model file ({e}): it is damaged or incomplete (an interrupted "
                              "download or copy?). Download or train it again, or give another model file.") from e


def load_system(path: str | os.PathLike, strict: bool = True):
    """Rebuild the model a checkpoint describes and load its weights (float32). Returns (system, header).

    strict=False allows a checkpoint that holds only part of the system (e.g. the shipped
    generator-only models); the parts it holds must match exactly. Damage shows: weights that are not
    finite are refused here, and the loaded system raises CheckpointError as soon as any of its layers
    computes NaN or Inf (a flipped bit can turn a weight huge but finite).
    """
    header = read_header(path)
    system_cls, config_cls, _ = model_classes(header["model"])
    config = header["config"]
    # files written before the data fields moved to DataSpec (the shipped ones) hold them in the config:
    # training data, nothing the network is built from, so they are dropped
    old = set(OLD_CONFIG_DATA_FIELDS) - {f.name for f in fields(config_cls)}
    config = {k: v for k, v in config.items() if k not in old}
    try:
        system = system_cls(config_cls(**config))
    except TypeError as e:
        raise CheckpointError(f"{path}: its {header['model']} config does not fit this lipgen ({e}).") from e
    vocabulary = header["vocabulary"]
    if vocabulary is None and (can(system, READS_WORDS) or can(system, READS_LIPS)):
        from .data.corpora import GRID_VOCABULARY  # written before checkpoints kept their word list: GRID's

        vocabulary = GRID_VOCABULARY
    system.vocabulary = vocabulary
    load_weights(system, path, strict)
    for name, module in system.named_modules():
        if not any(True for _ in module.children()):  # every layer; a sum per output costs ~3% of inference
            module.register_forward_hook(functools.partial(_refuse_non_finite, path, name))
    system.eval()
    return system, header


def load_weights(system, path: str | os.PathLike, strict: bool = True, model: str | None = None) -> None:
    """Load a checkpoint's weights (float32) into a built system, after checking its header (format version;
    the model name, if given). Sets system.loaded_parts, the top-level modules the file held (the rest stay
    as built). strict=False: the file may hold only some parts, but those completely."""
    header = read_header(path)
    if model is not None and header["model"] != model:
        raise CheckpointError(f"{path}: a {header['model']} checkpoint, not a {model} one.")
    with _readable(Path(path)) as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    broken = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise CheckpointError(f"{path}: damaged weights, NaN or Inf in {broken[:3]}. Download or train it again.")
    missing, unexpected = system.load_state_dict(state, strict=False)
    if unexpected:
        raise ValueError(f"{path}: weights that the {header['model']} model does not have: {unexpected[:5]}")
    parts = {k.split(".")[0] for k in state}
    incomplete = [k for k in missing if strict or k.split(".")[0] in parts]
    if incomplete:
        raise ValueError(f"{path}: incomplete {header['model']} weights, missing {incomplete[:5]}")
    system.loaded_parts = frozenset(parts)


def _refuse_non_finite(path, name: str, module, inputs, output) -> None:
    for out in output if isinstance(output, (tuple, list)) else (output,):
        if torch.is_tensor(out) and out.is_floating_point() and not torch.isfinite(out.sum()):
            raise CheckpointError(f"{path}: the model computed NaN/Inf (in {name}): its weights are damaged "
                                  "(a flipped bit, a bad copy?). Download or train it again.")


def export(checkpoint: str | os.PathLike | list, out: str | os.PathLike, parts: tuple[str, ...] | None = None,
           half: bool = True, members: int = 1) -> Path:
    """Write the inference parts of a trained system (default: the model's own `parts`, e.g. only the
    generator; in fp16) as a small model file. Several checkpoints of one run (a list): their weights are
    averaged (checkpoint averaging, as in Vaswani et al. 2017), which smooths out where the last steps
    happened to leave them; the header (step included) is the last one's.

    members > 1 (a model whose config has `members`, e.g. motion): the list is that many equal groups, one
    training run each (in order), each group averaged as above; the file is an ensemble of every run's networks
    (a run of one network: its parts' weights under `PART.members.i.`; a run that trained an ensemble brings all
    its members), predicting their mean."""
    paths = [checkpoint] if isinstance(checkpoint, (str, os.PathLike)) else list(checkpoint)
    if members > 1:
        if len(paths) % members:
            raise ValueError(f"{len(paths)} checkpoints do not split into {members} equal groups (one per run)")
        size = len(paths) // members
        groups = [_averaged(paths[i:i + size], parts) for i in range(0, len(paths), size)]
        system, header, _ = groups[0]
        if not hasattr(system.config, "members"):
            raise CheckpointError(f"{paths[0]}: a {header['model']} model of single networks has no ensembles")
        if len({json.dumps(asdict(replace(g[0].config, members=1)), sort_keys=True) for g in groups}) > 1:
            raise CheckpointError("the runs of an ensemble must share one model config: these differ")
        state, joined = {}, 0
        for run, _, run_state in groups:
            for k, v in run_state.items():
                part, rest = k.split(".", 1)
                if run.config.members > 1:  # PART.members.j.REST: the run's own member j
                    j, rest = rest.removeprefix("members.").split(".", 1)
                    state[f"{part}.members.{joined + int(j)}.{rest}"] = v
                else:
                    state[f"{part}.members.{joined}.{rest}"] = v
            joined += run.config.members
        config = replace(system.config, members=joined)
    else:
        system, header, state = _averaged(paths, parts)
        config = system.config
    return save_model(out, header["model"], config, state, header["step"], half=half,
                      vocabulary=header["vocabulary"])


def _averaged(paths: list, parts: tuple[str, ...] | None) -> tuple:
    """(system, header, state of its parts averaged over the checkpoints of one run) of the last path."""
    system, header = load_system(paths[-1])
    parts = tuple(parts or type(system).parts)
    state = {k: v for k, v in system.state_dict().items() if k.split(".")[0] in parts}
    if not state:
        raise ValueError(f"{paths[-1]}: no weights under {parts}")
    for path in paths[:-1]:
        other, other_header = load_system(path)
        if (other_header["model"], other_header["config"]) != (header["model"], header["config"]):
            raise CheckpointError(f"{path}: not the same model and config as {paths[-1]}; average checkpoints of "
                                  "one training run only.")
        for k, v in other.state_dict().items():
            if k in state and v.is_floating_point():
                state[k] = state[k] + v
    return system, header, {k: v / len(paths) if v.is_floating_point() else v for k, v in state.items()}
