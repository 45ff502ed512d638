"""Errors a user can act on. Each message says what was wrong and what to do."""


class LipgenError(Exception):
    """Base class: an input or setting lipgen cannot use."""


class MediaError(LipgenError):
    """A video, image or audio file that cannot be read, or is unusable as input."""


class FaceNotFoundError(LipgenError):
    """No face (or not the asked-for face) was found where one is needed."""


class MultipleFacesError(LipgenError):
    """More than one face in the source and no choice made with --face-index."""


class CheckpointError(LipgenError):
    """A model file that cannot be used: damaged, cut short, of an unknown format, or computing NaN/Inf."""
