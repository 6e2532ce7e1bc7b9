"""Atomic writes: all or nothing, the suffix kept, stale temporaries of dead processes cleared."""

import os
import subprocess
import sys

import pytest

from sen_rl.fileio import atomic_write, atomic_write_text, clear_stale_temporaries, temporary_name


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_write_replaces_the_target_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "table.txt"  # the folder is created
    with atomic_write(target) as tmp:
        assert tmp == temporary_name(target) and tmp.parent == target.parent and tmp.name.startswith(".")
        assert not target.exists()  # nothing visible before the write completes
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["table.txt"]
    assert atomic_write_text(target, "newer") == target and target.read_text() == "newer"


def test_a_write_that_raises_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "data.h5"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="midway"):
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed midway")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.h5"]
    # an interrupt too (BaseException), even before anything was written
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target):
            raise KeyboardInterrupt
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["data.h5"]


def test_the_suffix_is_kept(tmp_path):
    target = tmp_path / "sheet.png"
    with atomic_write(target, suffix=".png") as tmp:
        assert tmp.suffix == ".png" and tmp.name == f".sheet.png.tmp-{os.getpid()}.png"
        tmp.write_bytes(b"png")
    assert target.read_bytes() == b"png"
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.png"]


def test_stale_temporaries_of_dead_processes_are_cleared_live_ones_kept(tmp_path):
    target = tmp_path / "d.h5"
    stale = tmp_path / f".d.h5.tmp-{_dead_pid()}"
    stale_suffixed = tmp_path / f".d.h5.tmp-{_dead_pid()}.png"
    live = tmp_path / f".d.h5.tmp-{os.getppid()}"  # our parent is running
    other_target = tmp_path / f".e.h5.tmp-{_dead_pid()}"  # another file's temporary: not ours to judge
    for p in (stale, stale_suffixed, live, other_target):
        p.write_text("left behind")
    with atomic_write(target) as tmp:
        tmp.write_text("complete")
    assert not stale.exists() and not stale_suffixed.exists()
    assert live.exists() and other_target.exists()
    assert target.read_text() == "complete"
    # clear_stale_temporaries alone does the same, and reports what it removed
    stale.write_text("again")
    assert clear_stale_temporaries(target) == [stale]
    assert not stale.exists() and live.exists()
    assert clear_stale_temporaries(tmp_path / "missing" / "x.h5") == []


def test_the_current_process_temporary_is_not_stale(tmp_path):
    target = tmp_path / "d.h5"
    mine = temporary_name(target)
    mine.write_text("in progress")
    assert clear_stale_temporaries(target) == []
    assert mine.exists()
