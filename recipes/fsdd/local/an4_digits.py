"""AN4 utterances that say digits only ("five three one"), for the FSDD training set.

Reads an AN4 manifest (lower case, from ../an4/local/prepare_manifests.py) and writes the
utterances whose every word is one of FSDD's ten digit words, `--repeat` times each (ids
suffixed -r1, -r2, ...; speed, level and noise augmentation make each pass sound different).
Utterances with "oh" or any other word are left out: FSDD's vocabulary is the ten words.
"""

import argparse
import sys
from pathlib import Path

from make_connected import WORDS
from tasr import data
from tasr.errors import TasrError


def says_digits_only(text: str) -> bool:
    """Whether `text` is one or more of the ten digit words and nothing else."""
    words = text.split()
    return bool(words) and set(words) <= set(WORDS)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", type=Path, help="AN4 manifest in lower case")
    parser.add_argument("out", type=Path, help="manifest of its digit-only utterances")
    parser.add_argument("--repeat", type=int, default=1, help="copies of each utterance (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat {args.repeat}: must be at least 1")
    try:
        records = data.read_manifest(args.manifest, require_text=False)
    except TasrError as error:
        print(error, file=sys.stderr)
        return 1
    kept = [r for r in records if says_digits_only(r.get("text") or "")]
    if not kept:
        print(f"{args.manifest}: no utterance says digits only", file=sys.stderr)
        return 1
    copies = [dict(r, id=f"{r['id']}-r{k}") for k in range(1, args.repeat + 1) for r in kept]
    data.write_manifest(args.out, copies, relative_to_manifest=False)
    speakers = len({r["speaker"] for r in kept})
    minutes = sum(r["duration"] for r in kept) / 60
    print(f"{args.out}: {len(kept)} digit-only utterances of {speakers} speakers ({minutes:.1f} min) x {args.repeat}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
