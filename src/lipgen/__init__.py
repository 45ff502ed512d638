"""lipgen: audio-driven lip-movement and talking-face generation (Glance, CRGAN, DAVS)."""

__version__ = "0.1.0"
