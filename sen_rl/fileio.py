"""Atomic file writes: a file either holds its complete new content or its old one, never half.

Every writer of sen-rl (datasets, checkpoints, tables, pictures) writes to a hidden temporary
``.NAME.tmp-PID<suffix>`` beside the target and renames it over the target when complete.
A process killed midway leaves its temporary behind; the next write to the same target
removes temporaries whose process is gone (:func:`clear_stale_temporaries`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_PID = re.compile(r"(\d+)")


def temporary_name(path: str | os.PathLike, suffix: str = "") -> Path:
    """The hidden temporary that a write of ``path`` by this process uses."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def clear_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove temporaries of ``path`` left by processes that no longer run; returns what was removed."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    prefix = f".{path.name}.tmp-"
    for tmp in path.parent.glob(glob_escape(prefix) + "*"):
        m = _PID.match(tmp.name[len(prefix) :])
        if m is None:
            continue
        pid = int(m.group(1))
        if pid != os.getpid() and not _pid_alive(pid):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


@contextmanager
def atomic_write(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed.

    ``suffix`` keeps an extension on the temporary for writers that choose the format by it
    (matplotlib's ``savefig``). The parent folder is created.

    >>> with atomic_write("out/table.txt") as tmp:   # doctest: +SKIP
    ...     tmp.write_text("...")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clear_stale_temporaries(path)
    tmp = temporary_name(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(text)
    return Path(path)
