"""lipgen: audio-driven lip-movement and talking-face generation (Glance, CRGAN, DAVS, motion).

    import lipgen
    model = lipgen.load_model()        # a Generator holding the shipped motion model
    model.generate("speech.wav", "photo.jpg", "out.mp4")
"""

from pathlib import Path

__version__ = "0.1.0"
ASSETS = Path(__file__).parent / "assets"  # shipped models, the face template, the sample face, speech and clips


def __getattr__(name):  # load_model and Generator import torch: only when asked for
    if name in ("load_model", "Generator"):
        from . import generate

        return getattr(generate, name)
    raise AttributeError(f"module 'lipgen' has no attribute {name!r}")
