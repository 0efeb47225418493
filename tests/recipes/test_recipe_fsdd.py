"""recipes/fsdd/run.sh end to end, tiny: FSDD's GitHub archive layout served from 127.0.0.1."""

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import corpora
from an4_helpers import AN4, make_mini_an4

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "recipes" / "fsdd" / "run.sh"
FSDD = corpora.fsdd.root / "recordings"
SPEAKERS = ["george", "jackson", "yweweler"]
INDICES = range(7)  # 0-4 are FSDD's test part (our dev set), 5-6 its train part
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def make_archive(out: Path) -> Path:
    """A tar.gz laid out as GitHub's archive of the FSDD tag: <name>/recordings/{digit}_{speaker}_{i}.wav."""
    top = out / "build" / "free-spoken-digit-dataset-1.0.10"
    (top / "recordings").mkdir(parents=True)
    (top / "README.md").write_text("Free Spoken Digit Dataset (miniature)\n")
    for speaker in SPEAKERS:
        for digit in range(10):
            for index in INDICES:
                name = f"{digit}_{speaker}_{index}.wav"
                shutil.copy(FSDD / name, top / "recordings" / name)
    archive = out / "v1.0.10.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(top, arcname=top.name)
    return archive


def run_recipe(tmp_path, *args):
    command = [str(RUN), "--exp-dir", str(tmp_path / "exp"), "--data-dir", str(tmp_path / "data"),
               "--download-dir", str(tmp_path / "downloads"), "--device", "cpu", "--nj", "1",
               "--train-speakers", "george,jackson", "--test-speakers", "yweweler",
               "--num-train", "24", "--num-dev", "4", "--num-test", "6", "--num-isolated", "3", "--max-digits", "3", *args]
    env = {key: value for key, value in os.environ.items() if key not in ("FSDD_ROOT", "AN4_ROOT")}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
@pytest.mark.usefixtures("fsdd_root")
def test_every_stage_runs_from_a_downloaded_archive(file_server, tmp_path, tiny_config_file):
    make_archive(file_server.root)
    config = tiny_config_file(
        model__sample_rate=8000, model__encoder__block="transformer", tokenizer={"kind": "bpe", "vocab_size": 56},
        model__specaugment={"num_freq_masks": 1, "freq_mask_width": 4, "num_time_masks": 1, "time_mask_width": 10},
        batching__max_frames=6000, speed_perturb=[0.9, 1.0, 1.1])
    espeak = "2" if shutil.which("espeak-ng") else "0"
    with_an4 = (AN4 / "etc").is_dir()  # AN4's digit strings join the training set
    mini = {"train": {"fash": 9, "fbbh": 12}, "test": {"fcaw": 1}}  # two of these 21 say digits only
    an4 = ["--an4", "digits", "--an4-repeat", "2",
           "--an4-dir", str(make_mini_an4(tmp_path / "an4", "wav", mini))] if with_an4 else ["--an4", "false"]
    args = ["--url", f"{file_server.url}/v1.0.10.tar.gz", "--config", str(config), "--espeak-num", espeak,
            "--average-num", "1", "--beam-size", "2", "--speeds", "0.9,1",
            "--partner", "model.fbank.subtract_mean=true", "--nproc", "2", *an4]
    result = run_recipe(tmp_path, *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    data = tmp_path / "data"
    sets = {name: [json.loads(line) for line in (data / f"{name}.jsonl").read_text().splitlines()]
            for name in ("train", "dev", "test", "isolated", "recorded")}
    assert len(sets["train"]) == 24 + int(espeak) and len(sets["dev"]) == 4 and len(sets["test"]) == 6
    assert [len(r["text"].split()) for r in sets["isolated"]] == [1, 1, 1]
    assert {r["speaker"] for r in sets["isolated"]} == {"yweweler"}
    unpacked = tmp_path / "downloads" / "unpacked" / "free-spoken-digit-dataset-1.0.10" / "recordings"
    assert [r["audio"] for r in sets["recorded"]] == sorted(str(p.resolve()) for p in unpacked.glob("*_yweweler_*.wav"))
    assert all(r["text"] == WORDS[int(Path(r["audio"]).name[0])] for r in sets["recorded"])
    assert {r["speaker"] for r in sets["test"]} == {"yweweler"}
    assert "yweweler" not in {r["speaker"] for r in sets["train"] + sets["dev"]}
    trained = [json.loads(line) for line in (data / ("train_an4.jsonl" if with_an4 else "train.jsonl")).read_text().splitlines()]
    an4_lines = [r for r in trained if r["id"] not in {t["id"] for t in sets["train"]}]
    digit_strings = ["two six eight four four one eight", "four four three six three one two"] if with_an4 else []
    assert [r["text"] for r in an4_lines] == digit_strings * 2  # --an4-repeat 2
    assert all(r["audio"].endswith(".wav") for r in an4_lines)
    assert "yweweler" not in {r["speaker"] for r in trained}
    for record in sets["test"]:
        words = record["text"].split()
        assert 1 <= len(words) <= 3 and set(words) <= set(WORDS)
    exp = tmp_path / "exp"
    assert (exp / "model.pt").exists() and (exp / "partner" / "model.pt").exists()
    assert "subtract_mean: true" in (exp / "partner" / "config.yaml").read_text()
    assert "subtract_mean: true" not in (exp / "config.yaml").read_text()
    train_log = (exp / "log" / "stage4.train.log").read_text()
    assert f"{len(trained)} training" in train_log
    assert "1 process(es) on cpu" in train_log  # --nproc 2, but with a partner model one process per model
    for method in ["greedy", "beam2", "beam2_lexicon", "beam2_speeds", "beam2_partner", "beam2_partner_speeds"]:
        assert (exp / "decode" / "test" / method / "summary.json").exists(), method
    results = (exp / "RESULTS.md").read_text()
    assert "| test | greedy | 6 |" in results and "| isolated | greedy | 3 |" in results
    assert f"| recorded | greedy | {10 * len(INDICES)} |" in results
    assert "| test | beam 2 + ensemble of 2 + speeds 0.9,1 | 6 |" in results

    again = run_recipe(tmp_path, *args)
    assert again.returncode == 0
    assert again.stdout.count("done already") == 8


@pytest.mark.usefixtures("fsdd_root")
def test_fsdd_root_points_at_a_local_copy_and_data_is_reproducible(tmp_path):
    env_root = FSDD.parent
    command = [str(RUN), "--stage", "0", "--stop-stage", "1", "--exp-dir", str(tmp_path / "exp"),
               "--data-dir", str(tmp_path / "data"), "--train-speakers", "george", "--test-speakers", "yweweler",
               "--num-train", "5", "--num-dev", "2", "--num-test", "3", "--num-isolated", "2", "--espeak-num", "0",
               "--an4", "false"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "FSDD_ROOT": str(env_root)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "yweweler (500)" in result.stdout  # the local copy was checked, nothing downloaded
    assert not (tmp_path / "downloads").exists()
    first = (tmp_path / "data" / "test.jsonl").read_text()
    (tmp_path / "data" / "test.jsonl.made-by").unlink()  # force the data to be made again
    shutil.rmtree(tmp_path / "exp" / ".done")
    again = subprocess.run(command, capture_output=True, text=True, timeout=300,
                           env={**os.environ, "FSDD_ROOT": str(env_root)})
    assert again.returncode == 0
    assert (tmp_path / "data" / "test.jsonl").read_text() == first  # seeded: same utterances


def test_trim_cuts_quiet_edges_below_a_random_level_and_keeps_the_loud_middle():
    import importlib.util
    import random

    import numpy as np

    spec = importlib.util.spec_from_file_location("make_connected", RUN.parent / "local" / "make_connected.py")
    make_connected = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_connected)
    rate = 8000
    time = np.arange(rate // 2) / rate
    quiet = (0.5 * 10 ** (-40 / 20) * np.sin(2 * np.pi * 3000 * time[:800])).astype(np.float32)  # 100 ms at -40 dB
    loud = (0.5 * np.sin(2 * np.pi * 200 * time)).astype(np.float32)  # 500 ms
    recording = np.concatenate([quiet, loud, quiet])
    rng = random.Random(0)
    for _ in range(20):  # every level between 6 and 30 dB down lies between the two parts
        cut = make_connected.trim(recording, rng.uniform(6, 30), rng.uniform(6, 30))
        assert np.array_equal(cut, loud)
    assert len(make_connected.trim(recording, 50.0, 20.0)) == len(loud) + len(quiet)  # -40 dB kept at the start
    short = recording[:100]
    assert np.array_equal(make_connected.trim(short, 10.0, 10.0), short)


def test_an4_digits_keeps_utterances_of_digit_words_only_repeated(tmp_path):
    def record(uid, text):
        return {"id": uid, "audio": f"/an4/{uid}.wav", "duration": 1.5, "text": text, "speaker": uid.split("-")[1]}

    manifest = tmp_path / "an4.jsonl"
    rows = [record("an1-fash-b", "five three one"), record("an2-fash-b", "rubout"), record("an3-mblw-b", "two oh four"),
            record("an4-mblw-b", "e r i c"), record("an5-mcen-b", "nine"), record("an6-mcen-b", "")]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "digits.jsonl"
    script = str(RUN.parent / "local" / "an4_digits.py")
    result = subprocess.run([sys.executable, script, str(manifest), str(out), "--repeat", "3"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in kept] == [f"an{n}-{s}-b-r{k}" for k in (1, 2, 3) for n, s in ((1, "fash"), (5, "mcen"))]
    assert [r["text"] for r in kept[:2]] == ["five three one", "nine"]  # "oh", letters and words left out
    assert all(r["audio"] == f"/an4/{r['id'][:-3]}.wav" for r in kept)
    assert "2 digit-only utterances of 2 speakers" in result.stdout

    manifest.write_text(json.dumps(rows[1]) + "\n")
    none = subprocess.run([sys.executable, script, str(manifest), str(out)], capture_output=True, text=True)
    assert none.returncode == 1 and "no utterance says digits only" in none.stderr
