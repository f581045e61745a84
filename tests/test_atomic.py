"""Atomic writes: all or nothing, with the permissions of a normally created file."""
import os

import pytest

from rmdt.atomic import atomic_path, write_text


def test_write_leaves_only_the_file_with_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a" / "report.json", "{}")
    finally:
        os.umask(old)
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["report.json"]
    assert (tmp_path / "a" / "report.json").stat().st_mode & 0o777 == 0o644


def test_an_interrupted_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "model.bin"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["model.bin"]
