"""Download and unpack LibriSpeech subsets (openslr.org resource 12) into DIR/LibriSpeech/<subset>.

Archives are fetched from openslr.org, then its mirrors, resuming partial downloads, and
checked against the MD5 sums that openslr publishes in resources/12/md5sum.txt (copied
below). With --url-base (a private mirror, or the tests' local server) the sums are read
from <url-base>/md5sum.txt, or from --md5-list when given. A subset is unpacked once; an
`.unpacked` file in its folder records the archive's MD5.
"""

import argparse
import sys
from pathlib import Path

from tasr.download import download, extract_tar, fetch_text, read_md5_list
from tasr.errors import TasrError

MIRRORS = [
    "https://www.openslr.org/resources/12",
    "https://openslr.trmal.net/resources/12",  # US
    "https://openslr.elda.org/resources/12",  # EU
    "https://openslr.magicdatatech.com/resources/12",  # CN
]

# https://www.openslr.org/resources/12/md5sum.txt
PUBLISHED_MD5 = {
    "dev-clean.tar.gz": "42e2234ba48799c1f50f24a7926300a1",
    "dev-other.tar.gz": "c8d0bcc9cca99d4f8b62fcc847357931",
    "test-clean.tar.gz": "32fa31d27d2e1cad72775fee3f4849a9",
    "test-other.tar.gz": "fb5a50374b501bb3bac4815ee91d3135",
    "train-clean-100.tar.gz": "2a93770f6d5c6c964bc36631d331a522",
    "train-clean-360.tar.gz": "c0e676e450a7ff2f54aeade5171606fa",
    "train-other-500.tar.gz": "d1a0fd59409feb2c614ce4d30c387708",
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subsets", required=True, help="comma-separated, e.g. dev-clean,test-clean,train-clean-100")
    parser.add_argument("--download-dir", required=True, type=Path,
                        help="archives go here; they are unpacked into DIR/LibriSpeech/<subset>")
    parser.add_argument("--url-base", default="", help="fetch from here instead of openslr.org and its mirrors")
    parser.add_argument("--md5-list", default="", help="md5sum-style file or URL with the archives' sums")
    parser.add_argument("--keep-archives", action="store_true", help="keep each archive after unpacking it")
    args = parser.parse_args(argv)

    bases = [args.url_base.rstrip("/")] if args.url_base else MIRRORS
    try:
        sums = _sums(args, bases)
        for subset in args.subsets.split(","):
            _get(subset, bases, sums, args.download_dir, args.keep_archives)
    except TasrError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    print(f"LibriSpeech {args.subsets} ready in {args.download_dir / 'LibriSpeech'}")
    return 0


def _sums(args, bases) -> dict:
    if args.md5_list:
        source = args.md5_list
        text = fetch_text(source) if "://" in source else Path(source).read_text()
        return read_md5_list(text)
    if args.url_base:
        return read_md5_list(fetch_text(f"{bases[0]}/md5sum.txt"))
    return PUBLISHED_MD5


def _get(subset: str, bases, sums: dict, download_dir: Path, keep_archive: bool) -> None:
    name = f"{subset}.tar.gz"
    if name not in sums:
        raise TasrError(f"no MD5 sum for {name} (known: {', '.join(sorted(sums))})")
    unpacked = download_dir / "LibriSpeech" / subset / ".unpacked"
    if unpacked.exists() and unpacked.read_text().strip() == sums[name]:
        print(f"{subset}: unpacked already")
        return
    archive = download([f"{base}/{name}" for base in bases], download_dir / name, md5=sums[name])
    extract_tar(archive, download_dir)
    if not (download_dir / "LibriSpeech" / subset).is_dir():
        raise TasrError(f"{archive} holds no LibriSpeech/{subset} folder")
    unpacked.write_text(sums[name] + "\n")
    if not keep_archive:
        archive.unlink()
    print(f"{subset}: downloaded and unpacked")


if __name__ == "__main__":
    sys.exit(main())
