"""recipes/an4: the transcription parser, the corpus check, and run.sh end to end on a miniature AN4.

The miniature corpus (an4_helpers.make_mini_an4) takes real AN4 utterances and lays them out
as either upstream archive does.
"""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import soundfile

from an4_helpers import AN4, RECIPE, corpus, make_mini_an4, needs_an4

REPO = Path(__file__).resolve().parents[2]
RUN = RECIPE / "run.sh"


def test_transcription_lines_as_the_real_files_write_them():
    assert corpus.parse_transcription_line("<s> YES </s> (an251-fash-b)\n") == ("an251-fash-b", "YES")
    assert corpus.parse_transcription_line("<s> H I N E S </s> (cen5-fash-b)") == ("cen5-fash-b", "H I N E S")
    assert corpus.parse_transcription_line("RUBOUT G M E F THREE NINE (an406-fcaw-b)") == \
        ("an406-fcaw-b", "RUBOUT G M E F THREE NINE")
    assert corpus.parse_transcription_line("<s>  two  one </s>  (x-y-b) ") == ("x-y-b", "TWO ONE")
    for line in ["YES", "<s> YES </s>", "(an251-fash-b)  ", "YES (a b)"]:
        with pytest.raises(ValueError, match="expected"):
            corpus.parse_transcription_line(line)


@needs_an4
def test_every_line_of_the_real_transcriptions_parses():
    for split, count in [("train", 948), ("test", 130)]:
        utterances = corpus.utterances(AN4, split)
        assert len(utterances) == count
        assert all(u.text and "<s>" not in u.text and "(" not in u.text and u.text == u.text.upper()
                   for u in utterances)
    assert corpus.utterances(AN4, "test")[0].text == "RUBOUT G M E F THREE NINE"


def archive(folder: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return target


def run_recipe(tmp_path, *args, env_extra=None):
    command = [str(RUN), "--exp-dir", str(tmp_path / "exp"), "--data-dir", str(tmp_path / "data"),
               "--download-dir", str(tmp_path / "downloads"), "--nj", "1", "--device", "cpu",
               "--threads", "1", "--dev-speakers", "1", *args]
    env = {**os.environ, **(env_extra or {})}
    env.pop("AN4_ROOT", None)
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def manifest(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
@needs_an4
def test_every_stage_runs_from_a_served_sphere_archive(file_server, tmp_path, tiny_config_file):
    archive(make_mini_an4(tmp_path / "build", "sphere"), file_server.root / "an4_sphere.tar.gz")
    file_server.cut_after["an4_sphere.tar.gz"] = 50_000  # the connection breaks once: the download resumes
    config = tiny_config_file(epochs=2)
    args = ["--url", f"{file_server.url}/an4_sphere.tar.gz", "--config", str(config), "--average-num", "2",
            "--beam-size", "2"]
    result = run_recipe(tmp_path, *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert ("an4_sphere.tar.gz", "bytes=50000-") in file_server.requests
    data = tmp_path / "data"
    train, dev, test = (manifest(data / f"{name}.jsonl") for name in ("train", "dev", "test"))
    assert (len(train), len(dev), len(test)) == (9, 3, 3)
    assert not {r["speaker"] for r in train} & {r["speaker"] for r in dev}  # whole speakers held out
    assert all(r["audio"].endswith(".sph") and r["text"] == r["text"].upper() and "<s>" not in r["text"]
               for r in train + dev + test)
    assert test[0]["text"] == "RUBOUT G M E F THREE NINE"
    assert test[0]["duration"] == pytest.approx(soundfile.info(test[0]["audio"]).duration, abs=1e-3)
    exp = tmp_path / "exp"
    for name in ["stage0.corpus", "stage1.data", "stage2.tokenizer", "stage3.cmvn", "stage4.train",
                 "stage5.average", "stage6.decode", "stage7.results"]:
        assert (exp / ".done" / name).exists(), name
    assert "2 process(es) on cpu" in (exp / "log" / "stage4.train.log").read_text()  # --nproc 2: torchrun, gloo
    results = (exp / "RESULTS.md").read_text()
    for search in ["greedy", "beam 2", "beam 2 + lexicon", "beam 2 + LM + lexicon",
                   "beam 2 + lexicon + speeds 0.9,1,1.1", "beam 2 + LM + lexicon + speeds 0.9,1,1.1"]:
        assert f"| test | {search} | 3 |" in results, results
    again = run_recipe(tmp_path, *args)
    assert again.returncode == 0 and again.stdout.count("done already") == 8


@needs_an4
def test_a_bad_archive_is_deleted_and_the_wav_fallback_is_used(file_server, tmp_path):
    broken = make_mini_an4(tmp_path / "broken", "sphere")
    missing = next((broken / "wav" / "an4_clstk" / "fbbh").glob("*.sph"))
    missing.unlink()
    archive(broken, file_server.root / "an4_sphere.tar.gz")
    archive(make_mini_an4(tmp_path / "good", "wav"), file_server.root / "an4-b567d132.tar.gz")
    urls = ["--url", f"{file_server.url}/an4_sphere.tar.gz", "--url", f"{file_server.url}/an4-b567d132.tar.gz"]
    result = subprocess.run([sys.executable, str(RECIPE / "local" / "download.py"), "--download-dir",
                             str(tmp_path / "downloads"), *urls], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert f"audio of {missing.stem} is missing" in result.stderr and "deleted" in result.stderr
    assert not (tmp_path / "downloads" / "an4_sphere.tar.gz").exists()
    assert "train 12 utterances, test 3 utterances" in result.stdout
    assert (tmp_path / "downloads" / "unpacked" / "an4-b567d132" / "etc").is_dir()


@needs_an4
def test_a_corrupt_utterance_in_a_local_copy_is_named(tmp_path):
    root = make_mini_an4(tmp_path, "wav")
    corrupt = next((root / "wav" / "an4test_clstk" / "fcaw").glob("*.wav"))
    corrupt.write_bytes(b"RIFF\x00\x00")
    result = run_recipe(tmp_path, "--corpus-dir", str(root), "--stop-stage", "1")
    assert result.returncode != 0
    assert f"audio of {corrupt.stem} cannot be read" in result.stdout
    assert "stage 0 (corpus) failed" in result.stderr


@needs_an4
def test_the_shared_copy_gives_whole_speaker_splits(tmp_path):
    result = run_recipe(tmp_path, "--corpus-dir", str(AN4), "--stop-stage", "1", "--dev-speakers", "6")
    assert result.returncode == 0, result.stdout + result.stderr
    train, dev, test = (manifest(tmp_path / "data" / f"{n}.jsonl") for n in ("train", "dev", "test"))
    assert len(train) + len(dev) == 948 and len(test) == 130
    assert len({r["speaker"] for r in dev}) == 6 and not {r["speaker"] for r in train} & {r["speaker"] for r in dev}
    assert sum(len(r["text"].split()) for r in test) == 773


@pytest.mark.slow
@needs_an4
def test_every_stage_runs_from_the_shared_copy(tmp_path, tiny_config_file):
    config = tiny_config_file(epochs=2)
    result = run_recipe(tmp_path, "--corpus-dir", str(AN4), "--max-utterances", "6", "--config", str(config),
                        "--beam-size", "0", "--average-num", "0")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "AN4 in" in result.stdout and not (tmp_path / "downloads").exists()
    results = (tmp_path / "exp" / "RESULTS.md").read_text()
    assert "| test | greedy | 6 |" in results and "| dev | greedy | 6 |" in results
    assert "torch 2." in results and "CPU cores" in results  # the versions and the machine are recorded
