"""`tasr transcribe` end to end with a random-weight model (the checks do not depend on accuracy)."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import soxr
import torch

import corpora
from model_helpers import TINY_ENCODER
from subtitle_helpers import parse_srt, parse_vtt
from tasr.cli import main
from tasr.model import SpeechRecognizer
from tasr.text import CharTokenizer

FSDD = str(corpora.fsdd.root / "recordings")
FORMATS = ("txt", "json", "srt", "vtt", "tsv")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(2)
    config = {"sample_rate": 8000, "fbank": {"num_mel_bins": 40},
              "encoder": {**TINY_ENCODER, "n_layers": 2, "conv_kernel": 7, "right": 2}}
    model = SpeechRecognizer(config, CharTokenizer(list(" efinorstuvwxz")))
    with torch.no_grad():  # favour blank a little so that words and pauses alternate
        model.ctc.linear.bias[0] += 1.0
    path = tmp_path_factory.mktemp("model") / "model.pt"
    model.save(path)
    return str(path)


def fsdd(pattern, n):
    corpora.fsdd.require()
    files = sorted(glob.glob(os.path.join(FSDD, pattern)))[:n]
    assert len(files) == n, f"{FSDD} holds fewer than {n} files {pattern}"
    return files


def joined(files, pause_s=0.4, rate=8000):
    parts = []
    for f in files:
        x, sr = soundfile.read(f, dtype="float32")
        parts += [x, np.zeros(int(pause_s * sr), dtype="float32")]
    return np.concatenate(parts)


@pytest.fixture
def folder(tmp_path):
    """Two FSDD files, a stereo 44.1 kHz FLAC in a sub-folder, and a corrupt .wav."""
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    for f in fsdd("*_george_*.wav", 2):
        (root / os.path.basename(f)).write_bytes(open(f, "rb").read())
    mono = joined(fsdd("*_lucas_*.wav", 6))
    stereo = soxr.resample(np.stack([mono, 0.5 * mono], axis=1), 8000, 44100)
    soundfile.write(root / "sub" / "lucas.flac", stereo, 44100)
    (root / "sub" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" + os.urandom(200))
    return root


def test_folder_with_a_corrupt_file(model_file, folder, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["transcribe", model_file, str(folder), "--format", "all", "--output-dir", str(out), "--batch-size", "2"])
    captured = capsys.readouterr()
    assert code == 1  # one input failed
    assert "broken.wav" in captured.err and "skipped" in captured.err
    assert "transcribed 3 file(s), 1 failed" in captured.err and "real-time factor" in captured.err
    stems = [out / "0_george_0", out / "0_george_1", out / "sub" / "lucas"]
    for stem in stems:
        for fmt in FORMATS:
            assert stem.with_name(stem.name + "." + fmt).is_file(), (stem, fmt)
    assert not list(out.rglob("broken.*"))
    duration = soundfile.info(folder / "sub" / "lucas.flac").duration
    data = json.loads((out / "sub" / "lucas.json").read_text())
    assert abs(data["duration"] - duration) < 1e-3
    srt = parse_srt((out / "sub" / "lucas.srt").read_text(), duration)
    vtt = parse_vtt((out / "sub" / "lucas.vtt").read_text(), duration)
    assert len(srt) == len(vtt) == len(data["segments"])
    words = [w for s in data["segments"] for w in s["words"]]
    assert " ".join(w["word"] for w in words) == data["text"]
    assert all(0 <= w["start"] <= w["end"] <= duration and 0 <= w["confidence"] <= 1 for w in words)
    assert all(a["start"] <= b["start"] for a, b in zip(words, words[1:]))
    rows = (out / "sub" / "lucas.tsv").read_text().splitlines()
    assert rows[0] == "start\tend\ttext" and len(rows) == len(data["segments"]) + 1
    assert (out / "sub" / "lucas.txt").read_text().split() == data["text"].split()


def test_streaming_equals_offline(model_file, tmp_path, capsys):
    wav = tmp_path / "digits.wav"
    soundfile.write(wav, joined(fsdd("*_nicolas_*.wav", 10)), 8000)
    assert main(["transcribe", model_file, str(wav), "-f", "json", "-o", str(tmp_path / "offline")]) == 0
    assert main(["transcribe", model_file, str(wav), "-f", "json", "-o", str(tmp_path / "stream"),
                 "--streaming", "--chunk-ms", "200"]) == 0
    offline = json.loads((tmp_path / "offline" / "digits.json").read_text())
    streamed = json.loads((tmp_path / "stream" / "digits.json").read_text())
    assert streamed["text"] == offline["text"] and offline["text"]
    words = [[w for s in data["segments"] for w in s["words"]] for data in (offline, streamed)]
    assert [(w["word"], w["start"], w["end"]) for w in words[0]] == [(w["word"], w["start"], w["end"]) for w in words[1]]
    assert all(abs(a["confidence"] - b["confidence"]) < 1e-3 for a, b in zip(*words))  # float rounding only
    partials = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[")]
    assert len(partials) >= 2  # partial results were printed as the audio came in


def test_windowed_equals_one_pass(model_file, tmp_path):
    wav = tmp_path / "long.wav"
    soundfile.write(wav, joined(fsdd("*_yweweler_*.wav", 25)), 8000)
    for budget in ("0", "300", "1234"):
        assert main(["transcribe", model_file, str(wav), "-f", "json", "-o", str(tmp_path / budget), "-q",
                     "--max-frames", budget]) == 0
    one_pass = (tmp_path / "0" / "long.json").read_text()
    assert (tmp_path / "300" / "long.json").read_text() == one_pass
    assert (tmp_path / "1234" / "long.json").read_text() == one_pass


def test_manifest_with_offsets(model_file, tmp_path):
    wav = tmp_path / "audio" / "session.wav"
    wav.parent.mkdir()
    soundfile.write(wav, joined(fsdd("*_jackson_*.wav", 4)), 8000)
    manifest = tmp_path / "list.jsonl"
    manifest.write_text(json.dumps({"id": "whole", "audio": "audio/session.wav", "duration": 3.0}) + "\n"
                        + json.dumps({"id": "part", "audio": "audio/session.wav", "duration": 1.0, "offset": 0.5}) + "\n"
                        + json.dumps({"id": "gone", "audio": "audio/missing.wav", "duration": 1.0}) + "\n")
    assert main(["transcribe", model_file, str(manifest), "-f", "json"]) == 1  # one entry missing
    part = json.loads((tmp_path / "part.json").read_text())
    assert part["audio"] == "part" and abs(part["duration"] - 1.0) < 1e-3
    assert (tmp_path / "whole.json").is_file() and not (tmp_path / "gone.json").exists()


def test_never_overwrites_an_input(model_file, tmp_path, capsys):
    clip = tmp_path / "clip.txt"  # a WAV file with an unlucky name
    clip.write_bytes(open(fsdd("*_george_*.wav", 1)[0], "rb").read())
    before = clip.read_bytes()
    assert main(["transcribe", model_file, str(clip), "-f", "txt"]) == 1
    assert "would overwrite an input" in capsys.readouterr().err
    assert clip.read_bytes() == before
    assert main(["transcribe", model_file, str(clip), "-f", "txt", "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "clip.txt").is_file()


def test_bad_model_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a model at all")
    wav = fsdd("*_george_*.wav", 1)[0]
    result = subprocess.run([sys.executable, "-m", "tasr", "transcribe", str(bad), wav, "-o", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert f"{bad}: not a tasr model file" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_input_and_empty_folder(model_file, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["transcribe", model_file, str(tmp_path / "empty"), str(tmp_path / "nothing.wav")]) == 1
    err = capsys.readouterr().err
    assert "no audio files in this folder" in err and "nothing.wav: no such file or folder" in err


def test_beam_search_with_timestamps(model_file, tmp_path):
    pytest.importorskip("flashlight.lib.text.decoder")
    wav = tmp_path / "digits.wav"
    soundfile.write(wav, joined(fsdd("*_george_*.wav", 5)), 8000)
    assert main(["transcribe", model_file, str(wav), "-f", "json", "--beam", "4", "-o", str(tmp_path / "b")]) == 0
    data = json.loads((tmp_path / "b" / "digits.json").read_text())
    words = [w for s in data["segments"] for w in s["words"]]
    assert " ".join(w["word"] for w in words) == data["text"]
    assert all(0 <= w["start"] <= w["end"] <= data["duration"] for w in words)
    # a plain word list is a lexicon too (spelled with the model's tokens): only its words come out
    (tmp_path / "words.txt").write_text("six\nzero\nfive\n")
    assert main(["transcribe", model_file, str(wav), "-f", "txt", "--beam", "4", "--lexicon",
                 str(tmp_path / "words.txt"), "-o", str(tmp_path / "lex")]) == 0
    assert set((tmp_path / "lex" / "digits.txt").read_text().split()) <= {"six", "zero", "five"}


def test_bench_transcribe_reports_and_can_fail(model_file, capsys):
    # an unreachable target: the table is printed and the command fails
    code = main(["bench", "transcribe", model_file, "--durations", "2", "--threads", "1", "--full-max-s", "2",
                 "--max-rtf", "1e-9", "--no-cuda"])
    out = capsys.readouterr().out
    assert code == 1 and "FAIL: offline real-time factor above 1e-09" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("cpu ")]
    assert [(r[1], r[2], r[3]) for r in rows] == [("1", "2", "truncated"), ("1", "2", "full")]
    assert all(float(r[5]) > 0 and float(r[6]) > 0 for r in rows)  # RTF and peak RSS measured


def noise(path, seconds=0.5, rate=8000):
    """A short WAV of seeded noise (the checks do not depend on what is said)."""
    samples = 0.3 * np.random.default_rng(0).uniform(-1, 1, int(seconds * rate))
    soundfile.write(path, samples.astype(np.float32), rate)
    return path


def test_bad_manifest_lines_skip_their_utterance_not_the_run(model_file, tmp_path, capsys):
    noise(tmp_path / "a.wav")
    lines = [{"id": "good", "audio": "a.wav", "duration": 0.5}, {"id": "five", "audio": 5, "duration": 0.5},
             {"id": "none", "audio": None, "duration": 0.5}, {"id": "", "audio": "a.wav", "duration": 0.5},
             {"id": ".", "audio": "a.wav", "duration": 0.5}, {"id": "../o", "audio": "a.wav", "duration": 0.5},
             {"id": "inf", "audio": "a.wav", "duration": float("inf")}]
    manifest = tmp_path / "list.jsonl"
    manifest.write_bytes(b"".join(json.dumps(line).encode() + b"\n" for line in lines)
                         + b'{"id": "caf\xe9", "audio": "a.wav", "duration": 0.5}\n')  # Latin-1
    out = tmp_path / "o"
    assert main(["transcribe", model_file, str(manifest), "-f", "txt", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "transcribed 1 file(s), 7 failed" in err
    for number, reason in [(2, '"audio" must be a path'), (3, '"audio" must be a path'), (4, '"id" must be a non-empty'),
                           (5, "id '.' is not a plain file name"), (6, "id '../o' is not a plain file name"),
                           (7, '"duration" must be > 0'), (8, "not UTF-8 text")]:
        assert f"skipped manifest {manifest}, line {number}: " in err and reason in err
    assert sorted(os.listdir(out)) == ["good.txt"]
    assert sorted(os.listdir(tmp_path)) == ["a.wav", "list.jsonl", "o"]  # nothing written beside the folder


def test_outputs_stay_in_their_folder_and_clashes_are_found(tmp_path):
    from tasr.transcription import Source, check_outputs, find_inputs

    noise(tmp_path / "a.wav").rename(tmp_path / "..wav")  # a file whose stem is "."
    sources, failures = find_inputs([str(tmp_path / "..wav")], tmp_path / "o")
    assert not sources and "cannot name an output after '.'" in failures[0][1]
    out = tmp_path / "o"
    sources = [Source("", "x.wav", out / "same"), Source("other", "y.wav", out / "same")]
    kept, clashes = check_outputs(sources, ["txt"])
    assert [s.name for s in kept] == [""] and "would overwrite those of  (same name)" in clashes[0][1]


def test_truncated_wav_is_reported_and_skipped(model_file, tmp_path, capsys):
    whole = noise(tmp_path / "whole.wav", seconds=1.0).read_bytes()
    (tmp_path / "cut.wav").write_bytes(whole[: len(whole) // 2])
    manifest = tmp_path / "list.jsonl"
    manifest.write_text(json.dumps({"id": "part", "audio": "cut.wav", "duration": 0.2, "offset": 0.1}) + "\n")
    out = tmp_path / "o"
    assert main(["transcribe", model_file, str(tmp_path / "cut.wav"), str(tmp_path / "whole.wav"), str(manifest),
                 "-f", "txt", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"skipped {tmp_path / 'cut.wav'}: truncated file: it holds 0.50 s of 1.00 s" in err
    assert "skipped part: " in err and err.count("truncated file") == 2
    assert sorted(os.listdir(out)) == ["whole.txt"]


def test_file_name_that_is_not_utf8(model_file, tmp_path, capsys):
    name = os.fsdecode(b"bad\xff")  # how Python gives a name that is not UTF-8
    with open(tmp_path / f"{name}.wav", "wb") as f:
        f.write(noise(tmp_path / "a.wav").read_bytes())
    (tmp_path / "a.wav").unlink()
    assert main(["transcribe", model_file, str(tmp_path / f"{name}.wav"), "-f", "json", "-o", str(tmp_path / "o")]) == 0
    assert os.listdir(tmp_path / "o") == [f"{name}.json"]  # named after the file's own bytes
    assert json.loads((tmp_path / "o" / f"{name}.json").read_text())["audio"].endswith("bad\\xff.wav")
    assert "bad\\xff.wav: " in capsys.readouterr().out
