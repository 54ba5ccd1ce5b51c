"""Small shared helpers: where effdata keeps its cache, atomic writes, file hashes."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable


def home(override: Path | str | None = None) -> Path:
    """The cache directory: `override`, else $EFFDATA_HOME, else ~/.cache/effdata."""
    if override is not None:
        path = Path(override)
    elif os.environ.get("EFFDATA_HOME"):
        path = Path(os.environ["EFFDATA_HOME"])
    else:
        path = Path.home() / ".cache" / "effdata"
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write(path: Path | str, write: Callable[[BinaryIO], Any]) -> None:
    """Call `write(file)` on a temporary file in the same directory, fsync, then rename over `path`.

    A reader sees either the old file or the whole new one, never a half-written one; a writer that
    dies leaves no temporary file behind (or, if killed, one hidden `.name.*.tmp` beside it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path | str, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
