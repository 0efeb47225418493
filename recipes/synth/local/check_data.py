"""Check the synthetic sets before training: test voices and sentences never occur in training.

Prints per set: utterances, minutes, voices, words; fails (exit 1) naming the offending
voice or sentence when a test voice variant or a test sentence is also in the training set,
or when a manifest's audio file is missing.
"""

import argparse
import json
import sys
from pathlib import Path


def read(path: Path) -> list:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def variant(speaker: str) -> str:
    """'en-gb+m3' -> 'm3': the part of a voice that makes it a different speaker."""
    return speaker.split("+", 1)[-1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    sets = {name: read(args.data_dir / f"{name}.jsonl") for name in ("train", "dev", "test", "long")
            if (args.data_dir / f"{name}.jsonl").exists()}
    problems = []
    for name, records in sets.items():
        for record in records:
            if not Path(record["audio"]).is_file():
                problems.append(f"{name}: {record['id']}: audio file {record['audio']} is missing")
        words = {w for r in records for w in r["text"].split()}
        print(f"{name}: {len(records)} utterances, {sum(r['duration'] for r in records) / 60:.1f} minutes, "
              f"{len({r['speaker'] for r in records})} voices, {len(words)} distinct words")
    train_variants = {variant(r["speaker"]) for r in sets["train"]}
    train_texts = {r["text"] for r in sets["train"]}
    for name in ("test", "long"):
        for record in sets.get(name, []):
            if variant(record["speaker"]) in train_variants:
                problems.append(f"{name}: {record['id']}: voice {record['speaker']} is also a training voice")
        if name == "test":
            problems += [f"test: {r['id']}: sentence {r['text']!r} is also in training"
                         for r in sets[name] if r["text"] in train_texts]
    if problems:
        print("\n".join(problems[:20]), file=sys.stderr)
        return 1
    print("test voices and sentences are disjoint from training")
    return 0


if __name__ == "__main__":
    sys.exit(main())
