"""Downloads that survive interruptions, and archives unpacked safely.

`download(urls, dest, md5=None, verify=None)` fetches one file from the first of several
mirrors that works. Bytes arrive in `dest + ".part"`; an interrupted download resumes from
there with an HTTP `Range` request (a server that ignores `Range` restarts it from zero).
The `.part` file takes its final name only once it is known to be whole:

- `md5` (hex) given: its MD5 sum must match. A mismatch is fetched again after a pause; when
  every try of a mirror gives the same wrong sum, the download stops (the published sum is
  probably stale) instead of fetching it again from every mirror.
- `verify` given: `verify(path)` is called on the finished `.part` file and raises TasrError
  when the file is bad (for example, an archive that does not open or lacks the expected
  files); the file is then deleted and fetched again. A file already at `dest` is checked
  the same way, and deleted and fetched again when it fails.
- neither given: the server must have announced the length (Content-Length or
  Content-Range) and all of it must have arrived, or sent the file in chunks (chunked
  transfer encoding marks its end); a server that does neither gives a TasrError, since a
  cut transfer cannot be told from a whole one.

So a file at `dest` is always complete. A file already at `dest` whose sum is wrong is
reported and fetched again.

`extract_tar(archive, dest_dir)` unpacks plain files and folders only. Before anything is
written, the whole archive is refused (TasrError naming the member) if one member is a link
(symbolic or hard), a device, a FIFO or any other special file, has an absolute name or a
`..` in its name or link target, or resolves to a path outside `dest_dir`; tarfile's "data"
filter is applied on top. Corpus archives (LibriSpeech, AN4, FSDD) hold no such members.

`read_md5_list(text)` parses `md5sum` output ("<md5>  <name>" lines), the format of the
`md5sum.txt` files published next to corpus archives (openslr.org does).
"""

import hashlib
import http.client
import os
import re
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from tasr.errors import TasrError

CHUNK = 1 << 20  # bytes read and written at a time


def md5sum(path) -> str:
    """Hex MD5 digest of a file."""
    digest = hashlib.md5()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def read_md5_list(text: str) -> dict:
    """{file name: md5} from `md5sum` output; a `*` (binary mode) before the name is dropped."""
    sums = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or len(parts[0]) != 32:
            raise TasrError(f"md5 list line {number} is not '<md5>  <file name>': {line!r}")
        sums[Path(parts[1].lstrip("*")).name] = parts[0].lower()
    return sums


def fetch_text(urls, timeout: float = 60.0) -> str:
    """The body of the first URL in `urls` that answers, as text (small files such as md5 lists)."""
    errors = []
    for url in [urls] if isinstance(urls, str) else urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.read().decode("utf-8")
        except (OSError, http.client.HTTPException) as error:
            errors.append(f"  {url}: {error}")
    raise TasrError("could not fetch any of:\n" + "\n".join(errors))


def download(urls, dest, md5: str | None = None, attempts: int = 3, timeout: float = 60.0,
             progress: bool = True, verify=None) -> Path:
    """Fetch `dest` from the first of `urls` (a URL or a list of mirrors) that gives the right bytes.

    Each URL gets `attempts` tries, with a growing pause between them; a try that breaks off
    mid-way resumes where it stopped. `md5` (hex) is checked when given; `verify(path)`, when
    given, must return without raising TasrError (see the module docstring). Returns `dest`;
    raises TasrError naming every URL and why it failed.
    """
    urls = [urls] if isinstance(urls, str) else list(urls)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        problem = _check(dest, md5, verify)
        if problem is None:
            return dest
        print(f"{dest}: {problem}: the file is corrupt, downloading it again", file=sys.stderr)
        dest.unlink()
    part = dest.with_name(dest.name + ".part")
    errors = []
    for url in urls:
        wrong_sums = []
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                time.sleep(min(2 ** (attempt - 2), 10))
            try:
                whole = _fetch(url, part, timeout, progress)
            except (OSError, http.client.HTTPException, _Incomplete) as error:
                errors.append(f"  {url} (try {attempt}): {error}")
                if isinstance(error, urllib.error.HTTPError) and error.code in (403, 404, 410):
                    break  # this mirror does not have the file: try the next one
                continue
            if md5 is None and verify is None and not whole:
                part.unlink()
                raise TasrError(f"could not download {dest.name}: {url} sent no length, so a cut transfer "
                                "cannot be told from a whole one; give an MD5 sum or a check (verify)")
            problem = _check(part, md5, verify)
            if problem is None:
                os.replace(part, dest)
                return dest
            errors.append(f"  {url} (try {attempt}): {problem}")
            last = attempt == attempts and url == urls[-1]
            print(f"{url}: {problem}: deleted" + ", downloading again" * (not last), file=sys.stderr)
            part.unlink()
            if problem.startswith("MD5 sum "):
                wrong_sums.append(problem)
        if len(wrong_sums) >= 2 and len(wrong_sums) == attempts and len(set(wrong_sums)) == 1:
            raise TasrError(f"could not download {dest.name}: every try from {url} gave the same wrong sum "
                            f"({wrong_sums[0]}); the published MD5 sum is probably stale or wrong, "
                            "so the other mirrors were not tried")
    raise TasrError(f"could not download {dest.name}:\n" + "\n".join(errors)
                    + f"\n(the partial file {part} is kept; run again to resume)" * part.exists())


def _check(path: Path, md5, verify) -> str | None:
    """Why the downloaded file `path` is bad (wrong MD5 sum, or `verify` refuses it), or None."""
    if md5 is not None:
        actual = md5sum(path)
        if actual != md5.lower():
            return f"MD5 sum {actual}, expected {md5.lower()}"
    if verify is not None:
        try:
            verify(path)
        except TasrError as error:
            return f"check failed ({error})"
    return None


class _Incomplete(Exception):
    """The connection closed before all the announced bytes arrived."""


def _fetch(url: str, part: Path, timeout: float, progress: bool) -> bool:
    """Append the rest of `url` to `part` (resuming with Range), or start it over.

    Returns whether `part` is known to be whole: the server announced the length, or sent a
    chunked body, whose end is marked (http.client raises IncompleteRead when it is cut).
    """
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "tasr-download"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing left to send: the part is complete if the sizes agree
            return _range_total(error.headers) == have
        raise
    with response:
        if have and response.status != 206:  # the server ignored Range: start again
            have = 0
        chunked = bool(getattr(response, "chunked", False))
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        if total is None and have:
            total = _range_total(response.headers)
        mode = "ab" if have else "wb"
        with open(part, mode) as file, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name[: -len(".part")], disable=not progress, leave=False,
        ) as bar:
            received = have
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                file.write(block)
                received += len(block)
                bar.update(len(block))
    if total is not None and received < total:
        raise _Incomplete(f"connection closed after {received} of {total} bytes")
    return chunked or (total is not None and received == total)


def _range_total(headers) -> int | None:
    """The full size N from a `Content-Range: bytes .../N` header, or None."""
    match = re.fullmatch(r"bytes [^/]+/(\d+)", (headers or {}).get("Content-Range", "").strip())
    return int(match.group(1)) if match else None


def extract_tar(archive, dest_dir, progress: bool = True) -> Path:
    """Unpack a (compressed) tar archive of plain files and folders into `dest_dir`; returns `dest_dir`.

    Every member is checked before anything is written (see the module docstring); a link,
    a special file, or a name that could land outside `dest_dir` raises TasrError naming the
    archive and the member, and so does an unreadable archive.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    root = os.path.realpath(dest_dir)
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                problem = _unsafe(member, root)
                if problem:
                    raise TasrError(f"{archive}: unsafe member {_shown(member.name)} refused ({problem}); "
                                    "nothing extracted")
            for member in tqdm(members, desc=f"extract {archive.name}", unit="file",
                               disable=not progress, leave=False):
                tar.extract(member, dest_dir, filter="data")
    except tarfile.FilterError as error:
        raise TasrError(f"{archive}: unsafe member refused ({error})") from None
    except (tarfile.TarError, EOFError, OSError) as error:
        raise TasrError(f"{archive}: cannot extract: {error}") from None
    return dest_dir


def _unsafe(member: tarfile.TarInfo, root: str) -> str | None:
    """Why `member` may not be unpacked into the folder `root` (a resolved path), or None."""
    if member.issym() or member.islnk():
        return f"a {'symbolic' if member.issym() else 'hard'} link to {_shown(member.linkname)}"
    if not (member.isfile() or member.isdir()):
        return "not a plain file or folder"
    for name in (member.name, member.linkname):
        if name and (name.startswith(("/", "\\")) or ".." in PurePosixPath(name.replace("\\", "/")).parts):
            return f"{_shown(name)} is absolute or contains '..'"
    target = os.path.realpath(os.path.join(root, member.name))
    if os.path.commonpath([root, target]) != root:
        return f"it would be written to {target}, outside {root}"
    return None


def _shown(name: str) -> str:
    """`name` quoted for a message, its middle cut when long."""
    return repr(name if len(name) <= 80 else f"{name[:40]}...{name[-30:]}")
