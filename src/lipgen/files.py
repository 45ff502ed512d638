"""Files written whole or not at all: a reader (or a rerun after a kill) never finds half of one."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write `data` to a temporary file beside `path`, then rename it over `path` (with the usual permissions)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def json_text(obj, indent: int | None = 1) -> str:
    """Standard JSON (what any parser reads): NaN and infinities, which Python's json writes bare, become null."""
    def finite(o):
        if isinstance(o, float):
            return o if math.isfinite(o) else None
        if isinstance(o, dict):
            return {k: finite(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [finite(v) for v in o]
        if hasattr(o, "item") and hasattr(o, "dtype"):  # a numpy scalar
            return finite(o.item())
        return o

    return json.dumps(finite(obj), indent=indent, allow_nan=False)
