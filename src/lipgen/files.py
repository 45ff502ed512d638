"""Files written whole or not at all: a reader (or a rerun after a kill) never finds half of one."""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

TEMPORARY = ".tmp-"  # what a file or folder being written carries after its name, then its machine and process


def temporary_suffix(pid: int | None = None) -> str:
    """What goes after the name of a file or folder being written: this machine's name and the writing process's
    id, so that a later run tells the leftovers of a killed process (remove_leftovers) from work in progress, and
    its own machine's from those of machines sharing the disk."""
    return f"{TEMPORARY}{socket.gethostname()}-{os.getpid() if pid is None else pid}"


def remove_leftovers(folder: str | os.PathLike, name: str = "*") -> None:
    """Remove what processes of this machine left half-written in `folder` (of the finished file or folder `name`,
    a glob) when they were killed (kill -9, a crash, a power cut): their process is gone."""
    mine = f"{TEMPORARY}{socket.gethostname()}-"
    for tmp in Path(folder).glob(f".{name}{mine}*"):
        pid = re.match(r"\d+", tmp.name.split(mine, 1)[1])
        try:
            if pid:
                os.kill(int(pid.group()), 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
        except PermissionError:
            pass  # alive under another user


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write `data` to a temporary file beside `path`, then rename it over `path` (with the usual permissions)."""
    path = Path(path)
    remove_leftovers(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{temporary_suffix()}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_figure(fig, path: str | os.PathLike, **options) -> Path:
    """A matplotlib figure written atomically, in the format of the path's suffix (savefig's options)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", **options)
    return write_atomic(path, buffer.getvalue())


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
