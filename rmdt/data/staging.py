"""Staging folders of dataset builds, and sweeping the ones that dead builds left behind.

A build writes into a hidden folder beside its destination and renames it into place when complete,
so a killed build leaves only that folder (hundreds of MB for a real dataset). Its name records the
host and process that made it, ``.staging-<host>-<pid>-<random>``, so the next build can tell a
leftover (its process is gone) from the work of a build running now in another process. Folders
made on another host, or named before names carried the owner, are swept only once nothing in them
has changed for ``STALE_AFTER_S``.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path

STALE_AFTER_S = 24 * 3600
_OWNER = re.compile(r"^(?P<host>.+)-(?P<pid>\d+)-[^-]+$")


def make_staging(parent: str | os.PathLike, marker: str, name: str = "") -> Path:
    """A new staging folder ``[.<name>]<marker><host>-<pid>-<random>`` in ``parent`` (``marker`` starts
    with a dot), after sweeping the stale ones there."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(parent, marker)
    prefix = (f".{name}" if name else "") + marker
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{socket.gethostname()}-{os.getpid()}-", dir=parent))


def sweep_stale(parent: str | os.PathLike, marker: str, stale_after_s: float = STALE_AFTER_S) -> list[Path]:
    """Removes the hidden ``*<marker>*`` folders of ``parent`` whose build is over; returns them."""
    swept = []
    for path in Path(parent).iterdir() if Path(parent).is_dir() else []:
        if path.name.startswith(".") and marker in path.name and path.is_dir() and \
                _is_stale(path, path.name.rsplit(marker, 1)[1], stale_after_s):
            shutil.rmtree(path, ignore_errors=True)
            swept.append(path)
    return swept


def _is_stale(path: Path, owner: str, stale_after_s: float) -> bool:
    match = _OWNER.match(owner)
    if match and match["host"] == socket.gethostname():
        return not _alive(int(match["pid"]))
    return time.time() - _newest_mtime(path) > stale_after_s


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _newest_mtime(path: Path) -> float:
    newest = path.stat().st_mtime
    for folder, _, files in os.walk(path):
        for entry in (folder, *(os.path.join(folder, f) for f in files)):
            try:
                newest = max(newest, os.stat(entry).st_mtime)
            except FileNotFoundError:  # removed meanwhile
                pass
    return newest
