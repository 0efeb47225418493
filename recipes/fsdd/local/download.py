"""Download the Free Spoken Digit Dataset (CC BY-SA 4.0) release archive from GitHub and unpack it.

The archive is GitHub's tarball of a release tag; GitHub publishes no checksum (nor always a
length) for it, so the download is kept only if the archive reads to its end and lists
recordings/{digit}_{speaker}_{index}.wav files for every digit (a cut or wrong file is
deleted and fetched again), and the unpacked corpus is checked the same way. Prints the
corpus folder (the one holding recordings/).
"""

import argparse
import re
import shutil
import sys
import tarfile
from pathlib import Path, PurePosixPath

from tasr.download import download, extract_tar
from tasr.errors import TasrError

TAG = "v1.0.10"
URL = f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/{TAG}.tar.gz"
NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")


def check_corpus(folder: Path) -> dict:
    """{speaker: number of recordings}; raises TasrError when `folder` is not an FSDD copy."""
    recordings = folder / "recordings"
    speakers, digits = {}, set()
    for path in recordings.glob("*.wav"):
        match = NAME.match(path.name)
        if match:
            digits.add(match.group(1))
            speakers[match.group(2)] = speakers.get(match.group(2), 0) + 1
    if len(digits) != 10:
        raise TasrError(f"{recordings}: expected {{digit}}_{{speaker}}_{{index}}.wav files for the ten digits, "
                        f"found {sum(speakers.values())} files for digits {sorted(digits)}")
    return speakers


def check_archive(path: Path) -> None:
    """Raise TasrError unless the tar archive `path` reads to its end and lists recordings of the ten digits."""
    try:
        with tarfile.open(path) as tar:
            names = [PurePosixPath(name) for name in tar.getnames()]
    except (tarfile.TarError, EOFError, OSError) as error:
        raise TasrError(f"{path}: not a whole tar archive ({error})") from None
    digits = {match.group(1) for name in names
              if name.parent.name == "recordings" and (match := NAME.match(name.name))}
    if len(digits) != 10:
        raise TasrError(f"{path}: not the FSDD archive (recordings/{{digit}}_{{speaker}}_{{index}}.wav "
                        f"files found for digits {sorted(digits)}, expected all ten)")


def unpack(archive: Path, unpacked: Path) -> None:
    """Extract `archive` into `unpacked` through `unpacked`.tmp, which is removed if extraction fails."""
    partial = unpacked.with_suffix(".tmp")
    shutil.rmtree(partial, ignore_errors=True)  # left by an interrupted run
    try:
        extract_tar(archive, partial)
    except TasrError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    partial.rename(unpacked)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--download-dir", type=Path, help="where the archive goes and is unpacked")
    parser.add_argument("--check", type=Path, metavar="DIR", help="only check an existing copy in DIR")
    parser.add_argument("--url", default=URL, help="archive to fetch (default: %(default)s)")
    args = parser.parse_args(argv)
    if (args.download_dir is None) == (args.check is None):
        parser.error("give --download-dir or --check")
    try:
        if args.check:
            corpus = args.check
            speakers = check_corpus(corpus)
            print(f"FSDD in {corpus}: " + ", ".join(f"{s} ({n})" for s, n in sorted(speakers.items())))
            return 0
        archive = download(args.url, args.download_dir / Path(args.url).name, verify=check_archive)
        unpacked = args.download_dir / "unpacked"
        if not unpacked.exists():
            unpack(archive, unpacked)
        corpus = next((p.parent for p in sorted(unpacked.glob("*/recordings"))), unpacked)
        speakers = check_corpus(corpus)
    except TasrError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    print(f"FSDD in {corpus}: " + ", ".join(f"{s} ({n})" for s, n in sorted(speakers.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
