import errno
import os
import stat

import pytest

from tasr.files import atomic_write, check_writable, write_text


def test_write_replaces_whole_file_with_new_file_permissions(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    write_text(path, "old\n")
    write_text(path, "new\n")
    assert path.read_text() == "new\n"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert os.listdir(path.parent) == ["out.txt"]


def test_an_error_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(path, "wb") as f:
            f.write(b"half")
            raise RuntimeError("killed")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def no_space(*args):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_errors_name_the_file_asked_for_not_the_temporary(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("")
    with pytest.raises(NotADirectoryError, match="afile"):
        write_text(tmp_path / "afile" / "out.txt", "x")
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError) as error:
        write_text(tmp_path / "folder", "x")
    assert error.value.filename == str(tmp_path / "folder") and error.value.filename2 is None
    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError) as error:
        write_text(tmp_path / "full.txt", "x")
    assert (error.value.errno, error.value.filename) == (errno.ENOSPC, str(tmp_path / "full.txt"))
    assert sorted(os.listdir(tmp_path)) == ["afile", "folder"]


def test_check_writable_fails_before_any_work(tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(NotADirectoryError) as error:
        check_writable(tmp_path / "afile" / "sub" / "out.json")
    assert error.value.filename == str(tmp_path / "afile" / "sub")
    with pytest.raises(IsADirectoryError):
        check_writable(tmp_path)
    check_writable(tmp_path / "new" / "out.json")
    assert (tmp_path / "new").is_dir() and not (tmp_path / "new" / "out.json").exists()
