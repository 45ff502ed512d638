"""One file per paper model; shared small layers in layers.py; the contract every model keeps in base.py.

MODELS maps a model name to (module, system class, config class): adding a model is one file here and one
line in MODELS (see lipgen.models.base for what the file must hold). The shipped models live in ASSETS.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from .. import ASSETS
from .base import check_model

MODELS = {
    "glance": ("lipgen.models.glance", "Glance", "GlanceConfig"),
    "syncnet": ("lipgen.models.syncnet", "SyncNet", "SyncNetConfig"),
    "crgan": ("lipgen.models.crgan", "CRGAN", "CRGANConfig"),
    "davs": ("lipgen.models.davs", "DAVS", "DAVSConfig"),
    "motion": ("lipgen.models.motion", "Motion", "MotionConfig"),
    "lmsync": ("lipgen.models.lmsync", "LmSync", "LmSyncConfig"),
}
DEFAULT_MODEL = "motion"  # what `lipgen generate` uses: the any-face path (README, "Any face")


def model_classes(name: str):
    """(system class, config class, presets dict) of a model name."""
    if name not in MODELS:
        hint = " (a trained model file goes to --checkpoint)" if Path(name).suffix or os.sep in name else ""
        raise ValueError(f"unknown model {name!r}: choose one of {sorted(MODELS)}{hint}")
    module, system, config = MODELS[name]
    mod = importlib.import_module(module)
    return check_model(getattr(mod, system)), getattr(mod, config), getattr(mod, "PRESETS")


def data_presets(name: str) -> dict[str, dict]:
    """A model's DATA_PRESETS (preset name -> DataSpec fields that preset trains with); {} if it has none."""
    model_classes(name)
    return getattr(importlib.import_module(MODELS[name][0]), "DATA_PRESETS", {})


def shipped_checkpoint(name: str) -> Path:
    """The shipped model file of a model name; FileNotFoundError (with what to do) if lipgen ships none."""
    model_classes(name)  # an unknown name is refused with the list of known ones
    path = ASSETS / f"{name}.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"no shipped {name} model: train one with `lipgen train --model {name}` "
                                "and pass --checkpoint PATH")
    return path


def shipped_models() -> list[str]:
    """Names of the models whose shipped file is in ASSETS."""
    return [name for name in MODELS if (ASSETS / f"{name}.safetensors").is_file()]
