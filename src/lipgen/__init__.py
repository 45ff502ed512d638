"""lipgen: audio-driven lip-movement and talking-face generation (Glance, CRGAN, DAVS)."""

from pathlib import Path

__version__ = "0.1.0"
ASSETS = Path(__file__).parent / "assets"  # shipped models, the face template, the sample face, speech and clips
