"""AN4 manifests: train.jsonl, dev.jsonl (whole training speakers held out) and test.jsonl (the upstream test set).

The dev speakers are `--dev-speakers` training speakers drawn with `--seed`, half of them
women (AN4's speaker names start with f or m); none of their utterances is trained on
(`--dev-speakers 0`: no dev set). Lines are {"id", "audio", "duration", "text", "speaker"};
a missing or unreadable utterance stops with its name.
"""

import argparse
import random
import sys
from pathlib import Path

import corpus
from tasr import data


def dev_speakers(speakers, count: int, seed: int) -> list[str]:
    """`count` of `speakers` drawn with `seed`, women and men alternately (as far as each group lasts)."""
    groups = [sorted(s for s in set(speakers) if s.startswith(g)) for g in ("f", "m")]
    groups.append(sorted(set(speakers) - set(groups[0]) - set(groups[1])))
    rng = random.Random(seed)
    for group in groups:
        rng.shuffle(group)
    chosen = []
    while len(chosen) < count and any(groups):
        for group in groups:
            if group and len(chosen) < count:
                chosen.append(group.pop())
    return sorted(chosen)


def write_manifest(path: Path, rows, lowercase: bool = False) -> None:
    records = [{"id": utterance.id, "audio": str(utterance.audio.resolve()), "duration": corpus.duration(utterance),
                "text": utterance.text.lower() if lowercase else utterance.text, "speaker": utterance.speaker}
               for utterance in rows]
    data.write_manifest(path, records, relative_to_manifest=False)
    seconds = sum(record["duration"] for record in records)
    speakers = len({u.speaker for u in rows})
    print(f"{path}: {len(rows)} utterances, {speakers} speakers, {seconds / 60:.1f} min")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus-dir", required=True, type=Path, help="an AN4 copy (the folder holding etc/ and wav/, or its parent)")
    parser.add_argument("--out", required=True, type=Path, help="folder for train.jsonl, dev.jsonl, test.jsonl")
    parser.add_argument("--dev-speakers", type=int, default=6, help="training speakers held out for validation (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="draws the dev speakers (default: %(default)s)")
    parser.add_argument("--lowercase", action="store_true", help="write the text in lower case (AN4's is upper case)")
    parser.add_argument("--max-utterances", type=int, default=0, help="keep only the first N utterances of each set (0: all; for quick tests)")
    args = parser.parse_args(argv)
    try:
        root = corpus.find_root(args.corpus_dir)
        train = corpus.utterances(root, "train")
        test = corpus.utterances(root, "test")
        held_out = set(dev_speakers([u.speaker for u in train], args.dev_speakers, args.seed))
        sets = {"train": [u for u in train if u.speaker not in held_out],
                "dev": [u for u in train if u.speaker in held_out], "test": test}
        args.out.mkdir(parents=True, exist_ok=True)
        for name, rows in sets.items():
            if name == "dev" and args.dev_speakers == 0:
                continue
            if not rows:
                raise corpus.CorpusError(f"the {name} set is empty (--dev-speakers {args.dev_speakers})")
            write_manifest(args.out / f"{name}.jsonl", rows[: args.max_utterances or None], args.lowercase)
    except corpus.CorpusError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    if held_out:
        print(f"dev speakers (never trained on): {' '.join(sorted(held_out))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
