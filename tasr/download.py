"""Downloads that survive interruptions, and archives unpacked safely.

`download(urls, dest, md5=...)` fetches one file from the first of several mirrors that
works. Bytes arrive in `dest + ".part"`; an interrupted download resumes from there with an
HTTP `Range` request (a server that ignores `Range` restarts it from zero). The finished
file is checked against its MD5 sum before it takes its final name, so a file at `dest`
is always complete. A file already at `dest` whose sum is wrong is reported and fetched
again.

`extract_tar(archive, dest_dir)` unpacks with tarfile's "data" filter: members that would
land outside `dest_dir` (absolute paths, `..`, links pointing out), device files and
set-uid bits are refused.

`read_md5_list(text)` parses `md5sum` output ("<md5>  <name>" lines), the format of the
`md5sum.txt` files published next to corpus archives (openslr.org does).
"""

import hashlib
import http.client
import os
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

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
             progress: bool = True) -> Path:
    """Fetch `dest` from the first of `urls` (a URL or a list of mirrors) that gives the right bytes.

    Each URL gets `attempts` tries; a try that breaks off mid-way resumes where it stopped.
    `md5` (hex) is checked when given. Returns `dest`; raises TasrError naming every URL
    and why it failed.
    """
    urls = [urls] if isinstance(urls, str) else list(urls)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        if md5 is None or md5sum(dest) == md5.lower():
            return dest
        print(f"{dest}: MD5 sum is not {md5}: the file is corrupt, downloading it again", file=sys.stderr)
        dest.unlink()
    part = dest.with_name(dest.name + ".part")
    errors = []
    for url in urls:
        for attempt in range(1, attempts + 1):
            try:
                _fetch(url, part, timeout, progress)
            except (OSError, http.client.HTTPException, _Incomplete) as error:
                errors.append(f"  {url} (try {attempt}): {error}")
                if isinstance(error, urllib.error.HTTPError) and error.code in (403, 404, 410):
                    break  # this mirror does not have the file: try the next one
                time.sleep(min(2 ** (attempt - 1), 10))
                continue
            if md5 is not None:
                actual = md5sum(part)
                if actual != md5.lower():
                    errors.append(f"  {url} (try {attempt}): MD5 sum {actual}, expected {md5}")
                    print(f"{url}: MD5 sum {actual} is not {md5}: downloading again", file=sys.stderr)
                    part.unlink()
                    continue
            os.replace(part, dest)
            return dest
    raise TasrError(f"could not download {dest.name}:\n" + "\n".join(errors)
                    + f"\n(the partial file {part} is kept; run again to resume)" * part.exists())


class _Incomplete(Exception):
    """The connection closed before all the announced bytes arrived."""


def _fetch(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Append the rest of `url` to `part` (resuming with Range), or start it over."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "tasr-download"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing left to send: the part is complete
            return
        raise
    with response:
        if have and response.status != 206:  # the server ignored Range: start again
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
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


def extract_tar(archive, dest_dir, progress: bool = True) -> Path:
    """Unpack a (compressed) tar archive into `dest_dir` with the "data" filter; returns `dest_dir`.

    A member that would escape `dest_dir` or is not a plain file, directory or inner link
    raises TasrError naming the archive and the member; an unreadable archive likewise.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in tqdm(members, desc=f"extract {archive.name}", unit="file",
                               disable=not progress, leave=False):
                tar.extract(member, dest_dir, filter="data")
    except tarfile.FilterError as error:
        raise TasrError(f"{archive}: unsafe member refused ({error})") from None
    except (tarfile.TarError, EOFError, OSError) as error:
        raise TasrError(f"{archive}: cannot extract: {error}") from None
    return dest_dir
