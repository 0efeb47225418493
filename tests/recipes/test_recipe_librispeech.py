"""recipes/librispeech/run.sh end to end on a miniature LibriSpeech served from 127.0.0.1.

The miniature corpus has the upstream layout (LibriSpeech/<subset>/<speaker>/<chapter>/
<speaker>-<chapter>-<nnnn>.flac and <speaker>-<chapter>.trans.txt, one tar.gz per subset,
an md5sum.txt), built from real FSDD speech: connected digits, 16 kHz FLAC.
"""

import hashlib
import json
import os
import random
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

import corpora

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "recipes" / "librispeech" / "run.sh"
FSDD = corpora.fsdd.root / "recordings"
WORDS = ["ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"]
# subset: [(FSDD speaker, LibriSpeech speaker id, chapter id, utterances)]
SUBSETS = {
    "train-clean-100": [("george", "103", "1240", 12), ("jackson", "1034", "121119", 12),
                        ("lucas", "1040", "133433", 12)],
    "dev-clean": [("nicolas", "1272", "128104", 3)],
    "dev-other": [("yweweler", "116", "288045", 3)],
    "test-clean": [("nicolas", "1089", "134686", 3)],
    "test-other": [("yweweler", "1688", "142285", 3)],
}

def make_mini_librispeech(out: Path) -> dict:
    """Write <subset>.tar.gz archives and md5sum.txt into `out`; returns {subset: [(id, text)]}."""
    rng = random.Random(0)
    stage = out / "build"
    content = {}
    for subset, speakers in SUBSETS.items():
        content[subset] = []
        for fsdd_speaker, speaker, chapter, count in speakers:
            folder = stage / "LibriSpeech" / subset / speaker / chapter
            folder.mkdir(parents=True)
            lines = []
            for n in range(count):
                digits = [rng.randrange(10) for _ in range(rng.randint(1, 3))]
                pieces = [np.zeros(1600, np.float32)]
                for digit in digits:
                    wave, rate = soundfile.read(FSDD / f"{digit}_{fsdd_speaker}_{rng.randrange(50)}.wav",
                                                dtype="float32")
                    pieces += [soxr.resample(wave, rate, 16000), np.zeros(rng.randint(800, 3200), np.float32)]
                utt_id = f"{speaker}-{chapter}-{n:04d}"
                soundfile.write(folder / f"{utt_id}.flac", np.concatenate(pieces), 16000)
                text = " ".join(WORDS[d] for d in digits)
                lines.append(f"{utt_id} {text}\n")
                content[subset].append((utt_id, text))
            (folder / f"{speaker}-{chapter}.trans.txt").write_text("".join(lines))
        with tarfile.open(out / f"{subset}.tar.gz", "w:gz") as tar:
            tar.add(stage / "LibriSpeech" / subset, arcname=f"LibriSpeech/{subset}")
    sums = "".join(f"{hashlib.md5((out / f'{s}.tar.gz').read_bytes()).hexdigest()}  {s}.tar.gz\n"
                   for s in SUBSETS)
    (out / "md5sum.txt").write_text(sums)
    return content


def run_recipe(tmp_path, *args, env_extra=None):
    command = [str(RUN), "--exp-dir", str(tmp_path / "exp"), "--data-dir", str(tmp_path / "data"),
               "--download-dir", str(tmp_path / "downloads"), "--nj", "1", "--device", "cpu", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture
def corpus(file_server, fsdd_root):
    content = make_mini_librispeech(file_server.root)
    return file_server, content


def test_download_verifies_resumes_and_writes_manifests(corpus, tmp_path):
    server, content = corpus
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    good = (server.root / "dev-clean.tar.gz").read_bytes()
    (downloads / "dev-clean.tar.gz").write_bytes(good[:-10] + b"0123456789")  # wrong MD5
    server.cut_after["test-clean.tar.gz"] = 20_000  # the connection breaks once

    result = run_recipe(tmp_path, "--stage", "0", "--stop-stage", "1", "--url-base", server.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "corrupt" in result.stdout
    assert ("test-clean.tar.gz", "bytes=20000-") in server.requests
    assert ("dev-clean.tar.gz", None) in server.requests  # fetched again
    for subset, utterances in content.items():
        assert (downloads / "LibriSpeech" / subset / ".unpacked").exists()
        lines = [json.loads(line) for line in (tmp_path / "data" / f"{subset}.jsonl").read_text().splitlines()]
        assert [(r["id"], r["text"]) for r in lines] == sorted(utterances)
        for record in lines:
            assert Path(record["audio"]).is_file()
            assert record["duration"] == pytest.approx(soundfile.info(record["audio"]).duration, abs=1e-3)
            assert record["speaker"] == record["id"].split("-")[0]
    dev = (tmp_path / "data" / "dev_dev-clean+dev-other.jsonl").read_text().splitlines()
    assert len(dev) == len(content["dev-clean"]) + len(content["dev-other"])

    # Run again: every stage is skipped, nothing is fetched.
    count = len(server.requests)
    again = run_recipe(tmp_path, "--stage", "0", "--stop-stage", "1", "--url-base", server.url)
    assert again.returncode == 0
    assert again.stdout.count("done already") == 2
    assert len(server.requests) == count


def test_a_failing_stage_names_itself_and_its_log(tmp_path):
    result = run_recipe(tmp_path, "--stage", "0", "--stop-stage", "0", "--corpus-dir", str(tmp_path / "nowhere"))
    assert result.returncode != 0
    log = tmp_path / "exp" / "log" / "stage0.download.log"
    assert "stage 0 (download) failed" in result.stderr and str(log) in result.stderr
    assert "has no" in log.read_text()
    assert not (tmp_path / "exp" / ".done" / "stage0.download").exists()


def test_bad_option_is_refused(tmp_path):
    result = run_recipe(tmp_path, "--no-such-option", "1")
    assert result.returncode == 2
    assert "unknown option --no-such-option" in result.stderr


@pytest.mark.slow
def test_every_stage_runs_on_the_miniature_corpus(corpus, tmp_path, tiny_config_file):
    server, _ = corpus
    config = tiny_config_file(epochs=2)
    args = ["--url-base", server.url, "--config", str(config), "--average-num", "2", "--beam-size", "2",
            "--test-sets", "test-clean,test-other", "--ngpu", "2"]  # 2 processes: torchrun, gloo on CPU
    result = run_recipe(tmp_path, *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    exp = tmp_path / "exp"
    for name in ["stage0.download", "stage1.manifests", "stage2.tokenizer", "stage3.cmvn", "stage4.train",
                 "stage5.average", "stage6.decode", "stage7.results"]:
        assert (exp / ".done" / name).exists(), name
        assert (exp / "log" / f"{name}.log").exists(), name
    assert (exp / "model.pt").exists()
    assert "2 process(es)" in (exp / "log" / "stage4.train.log").read_text()
    results = (exp / "RESULTS.md").read_text()
    for subset in ["test-clean", "test-other"]:
        for search in ["greedy", "beam 2"]:
            assert f"| {subset} | {search} | 3 |" in results
    assert "| dev-clean |" not in results

    again = run_recipe(tmp_path, *args)
    assert again.returncode == 0
    assert again.stdout.count("done already") == 8
