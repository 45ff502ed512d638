"""One file per paper model; shared small layers in layers.py."""
