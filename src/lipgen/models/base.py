"""The model contract: what every lipgen model declares and does, written down once.

A model is one file under lipgen/models/ (a config dataclass, PRESETS, one nn.Module "system") plus one
line in lipgen.models.MODELS. `lipgen train`, `generate`, `evaluate` and `lipread` use nothing but this:

    class Toy(nn.Module):                       # keeps LipgenModel (+ Generator when it makes crops)
        crop = "mouth"                          # what it makes (CROPS): "mouth", "face", "motion" or "none"
        parts = ("generator",)                  # top-level modules a shipped model file keeps
        capabilities = frozenset()              # optional abilities (CAPABILITIES), checked by can()
        def __init__(self, config): ...         # built from the config alone (a dataclass; PRESETS beside it)
        def data_spec(self) -> DataSpec: ...    # the data it trains on (not in the config: see DataSpec)
        def optimizers(self) -> dict[str, Optimizer]: ...
        def training_step(self, batch, step, update) -> dict[str, float]: ...  # update(loss, optimizer name)
        def validation_step(self, batch) -> dict[str, float]: ...
        # crop "mouth" / "face" (Generator):
        def generate(self, mel, identity) -> Tensor: ...      # (B, 1, 4T, M), (B, 3, S, S) -> (B, 3, T, S, S)
        def sample(self, batch) -> Tensor: ...                # generated clips for sample grids, like generate
        def seams(self, n_frames) -> list[int]: ...           # frames where generation joins two pieces
        # crop "motion": predict(features (4T, F)) -> (T, 31, 2) lower-face motion for lipgen.render

A model that makes crops in windows uses window_seams; one that streams or predicts in one pass has none.
Beside PRESETS, a model file may hold DATA_PRESETS: preset name -> DataSpec fields that preset trains with.

Models import from here, lipgen.media and lipgen.face (geometry only), never from lipgen.data: the data
layer reads the DataSpec, the model never reads the data layer. The word list a classifier is trained on
comes from the corpus (lipgen.data.vocabulary) and reaches the model as `system.vocabulary`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

CROPS = ("mouth", "face", "motion", "none")  # 64 px mouth crops, 128 px aligned faces, landmark motion, nothing
DATASETS = ("windows", "words", "motion")  # lipgen.train.make_dataset: LipDataset, WordDataset, MotionDataset

# optional abilities: a model has one when it lists it in `capabilities` and has the method named here
DRIVEN = "driven"  # generate_driven(mouth (B, 3, T, 64, 64), identity) -> crops: driven by another video's lips
READS_WORDS = "reads_words"  # word_logits(mouth=, mel=) -> (B, V), embed_video, embed_audio: a word-ID space
READS_LIPS = "reads_lips"  # read_lips(faces (B, 3, T, S, S)) -> (B, T, V): per-frame word logits
STREAMS = "streams"  # stream(mel (4N, M), identity (S, S, 3) uint8) -> N crops, frame after frame
CAPABILITIES = {DRIVEN: "generate_driven", READS_WORDS: "word_logits", READS_LIPS: "read_lips", STREAMS: "stream"}

WINDOW = 16  # video frames per training item unless a model asks otherwise (Glance makes 16 at once: 0.64 s)
NO_WORD = -1  # word label of an item that says no word (a pause)
WORD_FRAMES = 12  # frames per word window (0.48 s), centred on the word: GRID words last 0.1-0.6 s
WINDOW_OVERLAP = 4  # of every 4 frames of a generated window, 1 overlaps the next window and is cross-faded


@dataclass(frozen=True)
class DataSpec:
    """The training data a model asks for; lipgen.train.make_dataset builds it. Kept out of the model's config
    (which holds the architecture and its training recipe): `lipgen train` takes the model's data_spec(),
    then its preset's DATA_PRESETS entry, then any DataSpec field given with --set (window follows n_frames)."""

    kind: str = "windows"  # one of DATASETS
    window: int = WINDOW  # video frames per item
    faces: bool = False  # items carry 128 px aligned faces too
    silences: bool = False  # words: also items centred in long pauses (word NO_WORD)
    freq_mask: int = 0  # motion: widest band of mel bins masked in augmentation
    speech: str = "mel"  # motion: the speech front end the features come from ("mel" or "whisper")
    versions: int = 6  # motion, whisper: versions of each training clip encoded (the clean one + augmented draws)

    def __post_init__(self):
        if self.kind not in DATASETS:
            raise ValueError(f"DataSpec kind {self.kind!r}: choose one of {DATASETS}")


# Model configs held these data fields until they moved to DataSpec; the shipped checkpoints' headers
# still do. The checkpoint loader drops them and `lipgen train --set` reads them as the DataSpec field named.
OLD_CONFIG_DATA_FIELDS = {"dataset": "kind", "faces": "faces", "silence_items": "silences", "freq_mask": "freq_mask"}


@runtime_checkable
class LipgenModel(Protocol):
    """What every model declares and does (train drives it through these alone)."""

    config: Any
    crop: ClassVar[str]
    parts: ClassVar[tuple[str, ...]]
    capabilities: ClassVar[frozenset[str]]
    # vocabulary: list[str] | None, the words its classifiers name in label order, is set on every system by
    # lipgen.train (from the cache) and lipgen.checkpoint.load_system (from the file)

    def data_spec(self) -> DataSpec: ...
    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...
    def training_step(self, batch: dict, step: int, update: Callable[[torch.Tensor, str], None]) -> dict: ...
    def validation_step(self, batch: dict) -> dict: ...


@runtime_checkable
class Generator(LipgenModel, Protocol):
    """A model whose crop is "mouth" or "face": generate, evaluate and the sample grids use these."""

    def generate(self, mel: torch.Tensor, identity: torch.Tensor) -> torch.Tensor: ...
    def sample(self, batch: dict) -> torch.Tensor: ...
    def seams(self, n_frames: int) -> list[int]: ...


def _methods(protocol) -> list[str]:
    return [n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")]


REQUIRED = {"mouth": _methods(Generator), "face": _methods(Generator), "motion": ["predict"], "none": []}


def check_model(cls: type) -> type:
    """Refuse a model class that does not keep the contract (called for every registered model)."""
    missing = [m for m in ("crop", "parts", "capabilities", *_methods(LipgenModel)) if not hasattr(cls, m)]
    if not missing and cls.crop in REQUIRED:
        missing = [m for m in REQUIRED[cls.crop] if not hasattr(cls, m)]
    if missing:
        raise TypeError(f"{cls.__name__} does not keep lipgen's model contract (lipgen.models.base): "
                        f"it lacks {', '.join(missing)}")
    if cls.crop not in CROPS:
        raise TypeError(f"{cls.__name__}.crop = {cls.crop!r}: choose one of {CROPS}")
    for cap in cls.capabilities:
        if cap not in CAPABILITIES or not hasattr(cls, CAPABILITIES[cap]):
            raise TypeError(f"{cls.__name__} claims capability {cap!r} without its method "
                            f"{CAPABILITIES.get(cap, '?')} (capabilities: {sorted(CAPABILITIES)})")
    return cls


def can(system, capability: str) -> bool:
    """Whether a model has an optional ability: the one place lipgen asks."""
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}: choose one of {sorted(CAPABILITIES)}")
    return capability in type(system).capabilities


# ---- small pieces the models share (no framework: functions and context managers)


def window_hop(window: int) -> int:
    """Frames between window starts: a 16-frame window hops 12, overlapping the next by 4."""
    return window - window // WINDOW_OVERLAP


def window_seams(window: int, n_frames: int) -> list[int]:
    """Frames at which a windowed generation (lipgen.inference.windowed) starts a new window's frames."""
    hop = window_hop(window)
    return list(range(hop, n_frames - 1, hop))


@contextlib.contextmanager
def seeded(seed: int):
    """Build sub-modules under a fixed seed without touching the global RNG: same config -> same weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def frozen(*modules: torch.nn.Module):
    """Critics frozen while the generator's loss backpropagates through them."""
    for m in modules:
        m.requires_grad_(False)
    try:
        yield
    finally:
        for m in modules:
            m.requires_grad_(True)


def gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Non-saturating GAN loss: BCE of logits against all-real (1) or all-fake (0) labels, in float32."""
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(real)))
