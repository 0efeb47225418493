"""Atomic file writes: a temporary file beside the target, then a rename over it, so that a crash
or a reader never sees half a file and an old file stays whole until the new one is complete.

An OSError (a read-only folder, a file where a folder should be, a full disk) names the file
or folder asked for, never the temporary file; the `tasr` command prints it as its error."""

import contextlib
import errno
import os
import tempfile


def _about(error: OSError, path) -> OSError:
    """`error` as an OSError about `path` (a file in the way of a folder reads 'Not a directory')."""
    if isinstance(error, FileExistsError):
        return NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), os.fspath(path))
    return OSError(error.errno, error.strerror, os.fspath(path))


def make_folder(path) -> None:
    """Make the folder `path` (parents too) and check that files can be written in it."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise _about(error, path) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))


def check_writable(path) -> None:
    """Fail before any work when the file `path` cannot be written: its folder is made and must be
    writable, and `path` must not be a folder."""
    make_folder(os.path.dirname(os.fspath(path)) or ".")
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))


@contextlib.contextmanager
def atomic_write(path, mode: str = "w", **open_options):
    """Open a temporary file beside `path` (folders made as needed); when the block ends without an
    error, it replaces `path` with the permissions of a new file (0666 less the umask). On an
    error the temporary file is removed and `path` is left as it was."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    except OSError as error:
        raise _about(error, path) from None
    try:
        with os.fdopen(fd, mode, **open_options) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        if isinstance(error, OSError) and error.errno and error.filename in (None, temp):
            raise _about(error, path) from None  # writing or renaming failed
        raise


def write_text(path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_write(path, encoding="utf-8") as f:
        f.write(text)
