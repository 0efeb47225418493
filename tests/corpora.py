"""Where the tests find the corpora they read (FSDD, AN4), downloading each once when they can.

A corpus is read from its environment variable (FSDD_ROOT, AN4_ROOT: the root of a copy), else
from the shared copy beside the repository (../shared/data/<corpus>), else from the download cache
($TASR_CACHE/<corpus>, by default ~/.cache/tasr/<corpus>). When there is no copy, the first test
that needs one runs the recipe's own download script into the cache: once per session, and only
when the server accepts a connection within CONNECT_TIMEOUT_S. Tests that still have no copy skip,
all with the same message saying how to get one.
"""

import fcntl
import importlib.util
import os
import socket
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CACHE = Path(os.environ.get("TASR_CACHE") or Path.home() / ".cache" / "tasr")
CONNECT_TIMEOUT_S = 5.0


def reachable(url: str, timeout_s: float = CONNECT_TIMEOUT_S) -> bool:
    """Whether the server of `url` accepts a TCP connection within `timeout_s` seconds."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def recipe_urls(recipe: str, name: str) -> list[str]:
    """The default URL list `name` (a URL or a list of them) of recipes/<recipe>/local/download.py."""
    local = REPO / "recipes" / recipe / "local"
    sys.path.insert(0, str(local))  # the script imports its sibling modules
    try:
        spec = importlib.util.spec_from_file_location(f"{recipe}_download", local / "download.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(local))
    urls = getattr(module, name)
    return [urls] if isinstance(urls, str) else list(urls)


class Corpus:
    """A corpus the tests read. `root` is where they read it, known before any download (a
    download is linked to from `cache`/root); `require()` makes sure a copy is there."""

    def __init__(self, name: str, variable: str, recipe: str, holds: str, size: str, urls=None,
                 shared: Path | None = None, cache: Path | None = None):
        self.name, self.variable, self.recipe, self.holds, self.size = name, variable, recipe, holds, size
        self.script = REPO / "recipes" / recipe / "local" / "download.py"
        self.shared = SHARED / recipe if shared is None else Path(shared)
        self.cache = CACHE / recipe if cache is None else Path(cache)
        self._urls = urls
        self._outcome = None  # once looked for: ("found", root), ("skip", message) or ("fail", message)

    @property
    def root(self) -> Path:
        """$VARIABLE, else the shared copy when there is one, else the cache's link to its download."""
        if os.environ.get(self.variable):
            return Path(os.environ[self.variable]).expanduser()
        return self.shared if self.is_copy(self.shared) else self.cache / "root"

    def is_copy(self, folder: Path) -> bool:
        return (folder / self.holds).exists()

    def require(self) -> Path:
        """`root` once it holds a copy, downloaded first when needed; otherwise the calling test is
        skipped (no copy and no download) or failed ($VARIABLE names no copy). Decided once."""
        if self._outcome is None:
            self._outcome = self._look()
        kind, value = self._outcome
        if kind == "skip":
            pytest.skip(value)
        if kind == "fail":
            pytest.fail(value, pytrace=False)
        return value

    def _look(self):
        root = self.root
        if self.is_copy(root):
            return "found", root
        if os.environ.get(self.variable):
            return "fail", f"{self.variable}={root} is not a copy of {self.name}: it has no {self.holds}"
        problem = self._download()
        if problem is None and self.is_copy(root):
            return "found", root
        return "skip", (f"{self.name} not found: set {self.variable} to a copy (the folder holding {self.holds}), "
                        f"or let the tests download it ({self.size}) into {self.cache} (TASR_CACHE moves it): "
                        f"{problem or 'the download holds no ' + self.holds}")

    def _download(self) -> str | None:
        """Run the recipe's download script into `cache` and link `cache`/root to the copy; the problem, or None."""
        urls = self._urls or recipe_urls(self.recipe, "URLS" if self.recipe == "an4" else "URL")
        answering = [url for url in urls if reachable(url)]
        if not answering:
            hosts = ", ".join(sorted({urllib.parse.urlsplit(url).netloc for url in urls}))
            return f"{hosts} did not answer within {CONNECT_TIMEOUT_S:g} s"
        self.cache.mkdir(parents=True, exist_ok=True)
        with open(self.cache / "download.lock", "w") as lock:  # one download at a time into this cache
            fcntl.flock(lock, fcntl.LOCK_EX)
            command = [sys.executable, str(self.script), "--download-dir", str(self.cache)]
            for url in answering:
                command += ["--url", url]
            result = subprocess.run(command, capture_output=True, text=True,
                                    env={**os.environ, "PYTHONPATH": str(REPO)})
            if result.returncode != 0:
                lines = result.stderr.strip().splitlines() or [f"exit status {result.returncode}"]
                return f"the download failed: {lines[-1]}"
            copies = [folder for folder in sorted((self.cache / "unpacked").glob("*")) if self.is_copy(folder)]
            if not copies:
                return None
            link = self.cache / "root"
            if link.is_symlink():
                link.unlink()
            link.symlink_to(copies[0].relative_to(self.cache))
        return None


fsdd = Corpus("FSDD", "FSDD_ROOT", "fsdd", holds="recordings", size="about 25 MB")
an4 = Corpus("AN4", "AN4_ROOT", "an4", holds="etc/an4_train.transcription", size="about 65 MB")
