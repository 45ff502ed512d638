"""Errors a user can act on. Each message says what was wrong and what to do."""

import errno
import math
import numbers


class LipgenError(Exception):
    """Base class: an input or setting lipgen cannot use."""


class MediaError(LipgenError):
    """A video, image or audio file that cannot be read, or is unusable as input."""


class SilentAudioError(MediaError):
    """Audio whose level is below that of any speech (lipgen.media.MIN_SPEECH_RMS)."""


class FaceNotFoundError(LipgenError):
    """No face (or not the asked-for face) was found where one is needed."""


class MultipleFacesError(LipgenError):
    """More than one face in the source and no choice made with --face-index."""


class CheckpointError(LipgenError):
    """A model file that cannot be used: damaged, cut short, of an unknown format, or computing NaN/Inf."""


OS_HINTS = {
    errno.ENOSPC: "the disk is full: free some space, or write somewhere else",
    errno.EDQUOT: "over the disk quota: free some space, or write somewhere else",
    errno.EACCES: "check the permissions, or use another path",
    errno.EPERM: "check the permissions, or use another path",
    errno.EROFS: "a read-only file system: write somewhere else",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "give a file, not a folder",
    errno.ENOENT: "check the path",
    errno.EEXIST: "a file is in the way: give the path of a folder",
}


EXPRESSIVENESS_RANGE = (0, 10)  # the motion model's gain on its prediction: 10x already opens a mouth off the face


def check_number(name: str, value, lo: float, hi: float = float("inf"), integer: bool = False):
    """Refuse (ValueError, one line) a control that is not a finite number from lo to hi (an int if integer)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral if integer else numbers.Real) \
            or not math.isfinite(value) or not lo <= value <= hi:
        bounds = f"of at least {lo:g}" if hi == float("inf") else f"from {lo:g} to {hi:g}"
        raise ValueError(f"{name} must be {'a whole number' if integer else 'a number'} {bounds}, got {value!r}")
    return value


def one_line(e: BaseException) -> str:
    """An exception as one line that says what was wrong and, for file system errors, what to do."""
    if isinstance(e, OSError) and e.strerror:  # raised by the system (no message of lipgen's own)
        where = f"{e.filename}: " if e.filename else ""
        hint = OS_HINTS.get(e.errno)
        return f"{where}{e.strerror}" + (f" - {hint}" if hint else "")
    return " ".join(str(e).split()) or type(e).__name__
