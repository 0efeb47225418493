"""Manifests, utterance loading (offset/duration, bad files), the dataset and dynamic batches."""

import json

import numpy as np
import pytest
import soundfile
import torch

import corpora
from tasr import data
from tasr.errors import TasrError
from tasr.text import CharTokenizer

FSDD = corpora.fsdd.root / "recordings"


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def tone(path, seconds, rate=16000, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)
    return path


# ---------------------------------------------------------------- manifests

def test_manifest_round_trip_and_relative_paths(tmp_path):
    (tmp_path / "wav").mkdir()
    tone(tmp_path / "wav" / "a.wav", 0.5)
    items = [{"id": "a", "audio": str(tmp_path / "wav" / "a.wav"), "duration": 0.5, "text": "hello", "speaker": "s1"}]
    data.write_manifest(tmp_path / "m.jsonl", items)
    line = json.loads((tmp_path / "m.jsonl").read_text())
    assert line["audio"] == "wav/a.wav"  # stored relative to the manifest's folder
    back = data.read_manifest(tmp_path / "m.jsonl")
    assert back[0]["audio"] == str(tmp_path / "wav" / "a.wav")
    assert back[0]["speaker"] == "s1" and back[0]["duration"] == 0.5
    data.write_manifest(tmp_path / "absolute.jsonl", items, relative_to_manifest=False)
    assert (tmp_path / "absolute.jsonl").read_text() == json.dumps(items[0]) + "\n"  # one line per utterance
    data.write_manifest(tmp_path / "empty.jsonl", [])
    assert (tmp_path / "empty.jsonl").read_text() == ""


@pytest.mark.parametrize("line, reason", [
    ('{"id": "a", "audio": "a.wav", "duration": 1.0', "line 2: not valid JSON"),
    ('{"id": "a", "audio": "a.wav", "text": "x"}', "line 2: missing field(s) duration"),
    ('{"id": "b", "audio": "a.wav", "duration": 1.0, "text": "x"}', "id 'b' already used on line 1"),
    ('{"id": "a", "audio": "a.wav", "duration": 0, "text": "x"}', '"duration" must be > 0'),
    ('{"id": "a", "audio": "a.wav", "duration": 1.0, "text": "  "}', "utterance 'a': empty transcript"),
    # values of the wrong type, or not finite
    ('{"id": "a", "audio": 5, "duration": 1.0, "text": "x"}', '"audio" must be a path (a non-empty string), not 5'),
    ('{"id": "a", "audio": null, "duration": 1.0, "text": "x"}', '"audio" must be a path (a non-empty string), not null'),
    ('{"id": "a", "audio": "a.wav", "duration": Infinity, "text": "x"}', '"duration" must be > 0 and at most 604800 s'),
    ('{"id": "a", "audio": "a.wav", "duration": NaN, "text": "x"}', "at most 604800 s (a week), not nan"),
    ('{"id": "a", "audio": "a.wav", "duration": 1e300, "text": "x"}', "at most 604800 s (a week), not 1e+300"),
    ('{"id": "a", "audio": "a.wav", "duration": "1.0", "text": "x"}', '"duration" must be a number of seconds, not "1.0"'),
    ('{"id": "a", "audio": "a.wav", "duration": true, "text": "x"}', '"duration" must be a number of seconds, not true'),
    ('{"id": "a", "audio": "a.wav", "duration": 1.0, "offset": -1, "text": "x"}', '"offset" must be >= 0'),
    ('{"id": "a", "audio": "a.wav", "duration": 1.0, "text": null}', '"text" must be a string, not null'),
    ('{"id": 7, "audio": "a.wav", "duration": 1.0, "text": "x"}', '"id" must be a non-empty string, not 7'),
    # ids that would name no file, or one outside the output folder
    ('{"id": "", "audio": "a.wav", "duration": 1.0, "text": "x"}', '"id" must be a non-empty string, not ""'),
    ('{"id": ".", "audio": "a.wav", "duration": 1.0, "text": "x"}', "id '.' is not a plain file name"),
    ('{"id": "..", "audio": "a.wav", "duration": 1.0, "text": "x"}', "id '..' is not a plain file name"),
    ('{"id": "../o", "audio": "a.wav", "duration": 1.0, "text": "x"}', "id '../o' is not a plain file name"),
    ('{"id": "a\\\\b", "audio": "a.wav", "duration": 1.0, "text": "x"}', "is not a plain file name"),
])
def test_manifest_errors_name_the_line_and_reason(tmp_path, line, reason):
    path = write_lines(tmp_path / "m.jsonl", ['{"id": "b", "audio": "b.wav", "duration": 1.0, "text": "y"}', line])
    with pytest.raises(TasrError) as error:
        data.read_manifest(path)
    assert str(path) in str(error.value) and reason in str(error.value)


def test_manifest_that_is_not_utf8_names_the_line_and_byte(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"id": "a", "audio": "a.wav", "duration": 1.0, "text": "x"}\n'
                     b'{"id": "caf\xe9", "audio": "a.wav", "duration": 1.0, "text": "x"}\n')  # Latin-1
    with pytest.raises(TasrError, match=r"m\.jsonl, line 2: not UTF-8 text \(byte 0xe9 at position 12\)"):
        data.read_manifest(path)


def test_bad_lines_can_be_left_out_and_listed(tmp_path):
    path = write_lines(tmp_path / "m.jsonl", ['{"id": "a", "audio": "a.wav", "duration": 1.0}',
                                              '{"id": "", "audio": "b.wav", "duration": 1.0}',
                                              '{"id": "c", "audio": 5, "duration": 1.0}',
                                              '{"id": "a", "audio": "d.wav", "duration": 1.0}',
                                              '{"id": "e", "audio": "e.wav", "duration": 1e300}'])
    bad = []
    items = data.read_manifest(path, require_text=False, bad_lines=bad)
    assert [item["id"] for item in items] == ["a"]
    assert [where for where, _ in bad] == [f"manifest {path}, line {n}" for n in (2, 3, 4, 5)]
    assert "already used on line 1" in bad[2][1]
    path.write_text('{"id": ".", "audio": "a.wav", "duration": 1.0}\n')
    assert data.read_manifest(path, require_text=False, bad_lines=bad) == []  # nothing left: no error of its own


def test_manifest_without_text_for_transcription(tmp_path):
    path = write_lines(tmp_path / "m.jsonl", ['{"id": "a", "audio": "a.wav", "duration": 1.0}'])
    assert data.read_manifest(path, require_text=False)[0]["id"] == "a"
    with pytest.raises(TasrError, match="missing field"):
        data.read_manifest(path)


# ---------------------------------------------------------------- loading utterances

def test_offset_reads_only_the_segment_and_resamples(tmp_path):
    rate = 8000
    samples = np.random.default_rng(0).uniform(-0.5, 0.5, 3 * rate).astype(np.float32)
    soundfile.write(tmp_path / "long.wav", samples, rate, subtype="FLOAT")
    item = {"id": "seg", "audio": str(tmp_path / "long.wav"), "offset": 1.25, "duration": 0.5, "text": "x"}
    segment = data.load_utterance(item, sample_rate=rate)
    assert torch.equal(segment, torch.from_numpy(samples[10000:14000]))
    assert data.load_utterance(item, sample_rate=16000).numel() == 8000  # resampled to 16 kHz
    whole = data.load_utterance({"id": "all", "audio": str(tmp_path / "long.wav"), "duration": 3.0}, rate)
    assert whole.numel() == 3 * rate


def test_bad_audio_is_reported_with_id_and_reason(tmp_path):
    (tmp_path / "junk.wav").write_bytes(b"RIFF not really a wave file" * 10)
    (tmp_path / "empty.wav").write_bytes(b"")
    tone(tmp_path / "short.wav", 0.001)
    (tmp_path / "cut.wav").write_bytes(tone(tmp_path / "whole.wav", 1.0).read_bytes()[:8000])
    cases = {"junk": "junk.wav", "empty": "empty.wav", "short": "short.wav", "gone": "missing.wav", "cut": "cut.wav"}
    for utt_id, name in cases.items():
        with pytest.raises(data.BadUtterance) as error:
            data.load_utterance({"id": utt_id, "audio": str(tmp_path / name), "duration": 1.0}, 16000)
        assert error.value.utt_id == utt_id and name in error.value.reason
        assert utt_id != "cut" or "truncated file" in error.value.reason
    past_end = {"id": "late", "audio": str(tmp_path / "short.wav"), "offset": 5.0, "duration": 1.0}
    with pytest.raises(data.BadUtterance, match="past the end"):
        data.load_utterance(past_end, 16000)


def test_dataset_skips_bad_files_in_collate(tmp_path):
    tone(tmp_path / "a.wav", 0.5)
    tone(tmp_path / "b.wav", 0.3)
    (tmp_path / "bad.wav").write_bytes(b"\x00\x01garbage")
    items = [{"id": i, "audio": str(tmp_path / f"{i}.wav"), "duration": 0.5, "text": t}
             for i, t in [("a", "ab"), ("bad", "a"), ("b", "bab")]]
    tokenizer = CharTokenizer.train(["ab"])
    dataset = data.SpeechDataset(items, tokenizer, 16000)
    batch = data.collate([dataset[i] for i in range(3)])
    assert batch.ids == ["a", "b"] and [utt for utt, _ in batch.skipped] == ["bad"]
    assert batch.waveforms.shape == (2, 8000) and batch.lengths.tolist() == [8000, 4800]
    assert batch.waveforms[1, 4800:].abs().sum() == 0
    assert batch.token_lengths.tolist() == [2, 3]
    assert batch.tokens[1].tolist() == tokenizer.encode("bab") and batch.tokens[0, 2] == 0
    everything_bad = data.collate([dataset[1]])
    assert len(everything_bad) == 0 and everything_bad.skipped[0][0] == "bad"


def test_speed_perturbation_is_reproducible_per_epoch(tmp_path):
    tone(tmp_path / "a.wav", 1.0)
    items = [{"id": f"u{i}", "audio": str(tmp_path / "a.wav"), "duration": 1.0, "text": "a"} for i in range(12)]
    dataset = data.SpeechDataset(items, CharTokenizer(["a"]), 16000, speed_factors=(0.9, 1.0, 1.1), seed=3)
    lengths = lambda: [dataset[i]["waveform"].numel() for i in range(len(items))]  # noqa: E731
    first = lengths()
    assert set(first) <= {17778, 16000, 14545} and len(set(first)) > 1
    assert lengths() == first  # the same epoch gives the same factors (any worker, after a resume)
    dataset.set_epoch(1)
    assert lengths() != first
    assert dataset.frames(0) == 112  # the slowest factor bounds the batch size


def test_narrowband_share_is_drawn_per_epoch_and_leaves_speeds_alone(tmp_path):
    tone(tmp_path / "a.wav", 1.0)
    items = [{"id": f"u{i}", "audio": str(tmp_path / "a.wav"), "duration": 1.0, "text": "a"} for i in range(40)]
    speeds = (0.9, 1.0, 1.1)
    plain = data.SpeechDataset(items, CharTokenizer(["a"]), 16000, speeds, seed=3)
    narrow = data.SpeechDataset(items, CharTokenizer(["a"]), 16000, speeds, seed=3, narrowband=(0.5, 8000))
    changed = lambda: [not torch.equal(plain[i]["waveform"], narrow[i]["waveform"])  # noqa: E731
                       for i in range(len(items))]
    first = changed()
    assert 10 <= sum(first) <= 30  # about half of them
    assert [plain[i]["waveform"].numel() for i in range(40)] == [narrow[i]["waveform"].numel() for i in range(40)]
    assert changed() == first
    plain.set_epoch(1), narrow.set_epoch(1)
    assert changed() != first
    assert data.SpeechDataset(items, None, 16000, narrowband=(0.0, 8000)).narrowband is None


def test_gain_is_drawn_per_utterance_and_epoch_within_its_range(tmp_path):
    tone(tmp_path / "a.wav", 1.0)
    items = [{"id": f"u{i}", "audio": str(tmp_path / "a.wav"), "duration": 1.0, "text": "a"} for i in range(40)]
    plain = data.SpeechDataset(items, CharTokenizer(["a"]), 16000, seed=3)
    louder = data.SpeechDataset(items, CharTokenizer(["a"]), 16000, seed=3, gain_db=(-20, 6))
    peak = plain[0]["waveform"].abs().max()
    gains = lambda: [20 * torch.log10(louder[i]["waveform"].abs().max() / peak).item()  # noqa: E731
                     for i in range(len(items))]
    first = gains()
    assert all(-20 - 1e-4 <= g <= 6 + 1e-4 for g in first) and max(first) - min(first) > 10
    assert min(first) < -10 and max(first) > 0  # the range is used, not a fixed gain
    assert gains() == first
    louder.set_epoch(1)
    assert gains() != first
    assert torch.equal(plain[0]["waveform"], data.SpeechDataset(items, None, 16000, gain_db=None)[0]["waveform"])


def test_noise_share_is_drawn_per_epoch(tmp_path):
    tone(tmp_path / "a.wav", 1.0)
    items = [{"id": f"u{i}", "audio": str(tmp_path / "a.wav"), "duration": 1.0, "text": "a"} for i in range(40)]
    plain = data.SpeechDataset(items, CharTokenizer(["a"]), 16000, seed=3)
    noisy = data.SpeechDataset(items, CharTokenizer(["a"]), 16000, seed=3, noise=(0.5, (10, 20)))
    snrs = lambda: [10 * torch.log10(plain[i]["waveform"].square().mean()  # noqa: E731
                                     / (noisy[i]["waveform"] - plain[i]["waveform"]).square().mean().clamp(min=1e-30)).item()
                    for i in range(len(items))]
    first = snrs()
    assert 10 <= sum(s < 100 for s in first) <= 30  # about half of them
    assert all(10 - 0.1 <= s <= 20 + 0.1 for s in first if s < 100)
    assert snrs() == first
    noisy.set_epoch(1)
    assert snrs() != first
    assert data.SpeechDataset(items, None, 16000, noise=(0.0, (10, 20))).noise is None


# ---------------------------------------------------------------- batching

def test_dynamic_batches_bound_padded_frames_and_cover_everything():
    frames = np.random.default_rng(1).integers(50, 1500, size=500)
    sampler = data.DynamicBatches(frames, max_frames=6000, seed=7)
    batches = sampler.epoch(0)
    assert sorted(i for b in batches for i in b) == list(range(500))
    for batch in batches:
        assert len(batch) == 1 or max(frames[batch]) * len(batch) <= 6000
    # similar lengths go together: little padding
    padded = sum(max(frames[b]) * len(b) for b in batches)
    assert frames.sum() / padded > 0.85
    assert sampler.epoch(0) == batches  # a pure function of (seed, epoch)
    assert sampler.epoch(1) != batches
    assert data.DynamicBatches(frames, 6000, seed=8).epoch(0) != batches


def test_validation_batches_are_fixed_longest_first():
    frames = [10, 300, 20, 200]
    batches = data.DynamicBatches(frames, max_frames=400, shuffle=False).epoch(5)
    assert batches == [[1], [3, 2], [0]]


def test_every_global_batch_can_be_split_across_ranks():
    frames = [100] * 7 + [5000]
    batches = data.DynamicBatches(frames, max_frames=250, seed=0, min_size=2).epoch(0)
    assert all(len(b) >= 2 for b in batches)  # a long utterance gets a partner rather than idling a rank
    assert sorted(i for b in batches for i in b) == list(range(8))
    for batch in batches:
        shards = [data.shard(batch, rank, 2) for rank in range(2)]
        assert sorted(shards[0] + shards[1]) == sorted(batch) and all(shards)


@pytest.mark.usefixtures("fsdd_root")
def test_loader_gives_batches_of_real_recordings():
    files = sorted(FSDD.glob("*_jackson_0.wav"))[:4]
    items = [{"id": f.stem, "audio": str(f), "duration": soundfile.info(f).duration, "text": "x"} for f in files]
    dataset = data.SpeechDataset(items, CharTokenizer(["x"]), 8000)
    batches = data.DynamicBatches([dataset.frames(i) for i in range(4)], 10_000, seed=0).epoch(0)
    loaded = list(data.make_loader(dataset, batches, num_workers=1))
    assert sorted(i for b in loaded for i in b.ids) == sorted(f.stem for f in files)
    assert all(b.waveforms.abs().max() <= 1.0 for b in loaded)
