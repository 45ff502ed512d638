"""One file per paper model; shared small layers in layers.py.

MODELS maps a model name to (module, system class, config class). A system is an nn.Module built
from its config dataclass alone, with optimizers(), training_step(batch, step, update),
validation_step(batch) and sample(batch); the shared loop in lipgen.train drives it.
"""

from __future__ import annotations

import importlib

MODELS = {
    "glance": ("lipgen.models.glance", "Glance", "GlanceConfig"),
    "syncnet": ("lipgen.models.syncnet", "SyncNet", "SyncNetConfig"),
    "crgan": ("lipgen.models.crgan", "CRGAN", "CRGANConfig"),
    "davs": ("lipgen.models.davs", "DAVS", "DAVSConfig"),
    "motion": ("lipgen.models.motion", "Motion", "MotionConfig"),
    "lmsync": ("lipgen.models.lmsync", "LmSync", "LmSyncConfig"),
}


def model_classes(name: str):
    """(system class, config class, presets dict) of a model name."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {sorted(MODELS)}")
    module, system, config = MODELS[name]
    mod = importlib.import_module(module)
    return getattr(mod, system), getattr(mod, config), getattr(mod, "PRESETS")
