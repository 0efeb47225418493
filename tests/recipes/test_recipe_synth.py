"""recipes/synth/run.sh end to end, tiny: espeak-ng speech, test voices unseen in training, a long recording."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "recipes" / "synth" / "run.sh"

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason=(
    "espeak-ng is not installed: sudo apt-get install espeak-ng (macOS: brew install espeak-ng); "
    "make test installs it when run as root"))


def read(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


@pytest.mark.slow
@needs_espeak
def test_every_stage_runs(tmp_path, tiny_config_file):
    config = tiny_config_file()
    command = [str(RUN), "--exp-dir", str(tmp_path / "exp"), "--data-dir", str(tmp_path / "data"),
               "--config", str(config), "--num-train", "16", "--num-dev", "3", "--num-test", "4",
               "--long-minutes", "0.25", "--device", "cpu", "--nj", "1", "--average-num", "1", "--beam-size", "0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "test voices and sentences are disjoint from training" in result.stdout

    data = tmp_path / "data"
    train, test, long = read(data / "train.jsonl"), read(data / "test.jsonl"), read(data / "long.jsonl")
    assert len(train) == 16 and len(test) == 4 and len(long) == 1
    train_variants = {r["speaker"].split("+")[1] for r in train}
    assert not train_variants & {r["speaker"].split("+")[1] for r in test + long}
    assert long[0]["duration"] >= 15
    segments = read(data / "long_segments.jsonl")
    assert " ".join(s["text"] for s in segments) == long[0]["text"]
    assert all(a["offset"] + a["duration"] <= b["offset"] for a, b in zip(segments, segments[1:]))

    exp = tmp_path / "exp"
    results = (exp / "RESULTS.md").read_text()
    for name in ("dev", "test", "long"):
        assert f"| {name} | greedy |" in results
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    assert again.stdout.count("done already") == 8


def test_sentences_are_seeded_and_spelled_out():
    import sys

    sys.path.insert(0, str(REPO / "recipes" / "synth" / "local"))
    import random

    import sentences

    first = [sentences.sentence(random.Random(7)) for _ in range(3)]
    assert first == [sentences.sentence(random.Random(7)) for _ in range(3)]
    many = [sentences.sentence(random.Random(n)) for n in range(2000)]
    assert all(s == " ".join(s.split()) and not any(c.isdigit() for c in s) for s in many)
    assert 250 <= len(sentences.vocabulary()) <= 600
    assert sentences.number_words(2024) == "two thousand and twenty four"
    assert sentences.number_words(315) == "three hundred and fifteen"
    assert sentences.ordinal_words(23) == "twenty third"
