"""Download CMU AN4 (BSD-style licence) and unpack it, or check an existing copy.

Sources, tried in order: CMU's `an4_sphere.tar.gz` (NIST SPHERE audio), then the public
cmusphinx/an4 repository's archive (WAV audio). Downloads resume where they stopped
(tasr.download). Neither source publishes a checksum, so an archive is verified by its
content before it takes its final name: it must unpack to an AN4 copy in which every
utterance that the fileids and transcription lists name is present and readable. An archive
that fails is deleted, with the reason; after a second failing try the next source is tried. Prints the AN4 root (the folder holding etc/).
"""

import argparse
import shutil
import sys
from pathlib import Path

import corpus
from tasr.download import download, extract_tar
from tasr.errors import TasrError

REPOSITORY_COMMIT = "b567d132f43304e70a2b2eca6077f22255311812"
URLS = [
    "http://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz",
    f"https://github.com/cmusphinx/an4/archive/{REPOSITORY_COMMIT}.tar.gz",
]


def summary(root: Path, counts: dict) -> str:
    return f"AN4 in {root}: " + ", ".join(f"{split} {n} utterances" for split, n in counts.items())


def fetch(download_dir: Path, urls) -> Path:
    """The checked AN4 root under download_dir/unpacked, downloading and unpacking it first if needed."""
    unpacked = download_dir / "unpacked"
    if unpacked.exists():
        try:
            root = corpus.find_root(unpacked)
            print(summary(root, corpus.check(root)))
            return root
        except corpus.CorpusError as error:
            print(f"{unpacked} is not a complete AN4 copy ({error}): unpacking it again", file=sys.stderr)
            shutil.rmtree(unpacked)
    temporary = download_dir / "unpacked.tmp"

    def unpack_and_check(archive: Path) -> None:  # download()'s verify: a failing archive is deleted
        shutil.rmtree(temporary, ignore_errors=True)
        try:
            extract_tar(archive, temporary, progress=False)
            corpus.check(corpus.find_root(temporary))
        except (TasrError, corpus.CorpusError) as error:
            shutil.rmtree(temporary, ignore_errors=True)
            raise TasrError(f"not a usable AN4 archive: {error}") from None

    errors = []
    for url in urls:  # different archives, not mirrors of one file: each is downloaded and checked on its own
        archive = download_dir / Path(url).name
        try:
            download(url, archive, verify=unpack_and_check, attempts=2)
        except TasrError as error:  # a partial download is kept for the next run to resume
            errors.append(f"{error}")
            continue
        temporary.rename(unpacked)  # unpacked and checked by unpack_and_check
        root = corpus.find_root(unpacked)
        print(summary(root, corpus.check(root)))
        return root
    raise TasrError("could not get AN4 from any source:\n" + "\n".join(errors))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--download-dir", type=Path, help="where archives go and are unpacked (DIR/unpacked)")
    parser.add_argument("--check", type=Path, metavar="DIR", help="only check an existing copy in DIR")
    parser.add_argument("--url", action="append", help="an archive to fetch instead of the default sources "
                        "(repeat for fallbacks; default: " + ", ".join(URLS) + ")")
    args = parser.parse_args(argv)
    if (args.download_dir is None) == (args.check is None):
        parser.error("give --download-dir or --check")
    try:
        if args.check:
            root = corpus.find_root(args.check)
            print(summary(root, corpus.check(root)))
        else:
            fetch(args.download_dir, args.url or URLS)
    except (TasrError, corpus.CorpusError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
