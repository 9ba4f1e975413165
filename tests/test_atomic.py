"""Atomic writes: an error while writing keeps the old file and leaves no temporary file."""

import pytest

from regnn_ff.atomic import atomic_path


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "best.ckpt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".ckpt" and tmp != target
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt"]
