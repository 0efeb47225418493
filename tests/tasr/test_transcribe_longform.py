"""Recordings read block by block in bounded memory give the whole-recording result (random weights:
equality does not need accuracy; the output layer is scaled so that words, spaces and pauses occur)."""

import json
import os

import pytest
import soundfile
import torch
from torch.overrides import TorchFunctionMode

from tasr import audio
from tasr.audio.energy import OnlineEnergy
from tasr.models.memory import activation_bytes, frames_for_budget, subsampling_bytes
from subtitle_helpers import parse_srt, parse_vtt
from tasr.bench.transcribe import speechlike
from tasr.cli import main
from tasr.decoding import DecodingOptions
from tasr.longform import LongTranscription
from tasr.model import SpeechRecognizer
from tasr.subtitles import to_srt, to_vtt
from tasr.text import CharTokenizer
from tasr.transcription import Transcriber

pytestmark = pytest.mark.usefixtures("one_thread")

ENCODER = {"block": "conformer", "d_model": 32, "n_heads": 2, "n_layers": 2, "ff_dim": 64, "conv_kernel": 5,
           "subsampling_channels": 8, "left": 8, "right": 2, "dropout": 0.0}


def talking_model():
    """A random model whose greedy output has blanks (pauses), spaces and letters."""
    torch.manual_seed(0)
    model = SpeechRecognizer({"sample_rate": 16000, "fbank": {"num_mel_bins": 23}, "encoder": ENCODER},
                             CharTokenizer(list(" abcdefgh"))).eval()
    with torch.no_grad():
        model.ctc.linear.weight *= 6
        model.ctc.linear.bias[0] += 9.5
    return model


def blocks(wave, n):
    return (wave[i:i + n] for i in range(0, wave.shape[0], n))


def times(result):
    return [(w.text, w.start, w.end) for w in result.words]


def test_planner_keeps_to_the_activation_bound():
    """The chunk for a budget is the largest whose bound fits, and what a chunk really allocates
    (every module's output, the subsampling's convolutions) stays within the bound."""
    model = talking_model()
    encoder, F = model.encoder, model.frontend.num_features
    budget = 2 * 2**20
    chunk = frames_for_budget(encoder, budget, F)
    assert chunk % encoder.subsampling == 0
    assert activation_bytes(encoder, chunk, F) <= budget < activation_bytes(encoder, chunk + encoder.subsampling, F)
    # the first convolution alone: channels x (T-3)/2+1 x (F-3)/2+1 floats, its ReLU as many
    conv_out = 8 * ((chunk - 3) // 2 + 1) * ((F - 3) // 2 + 1) * 4
    assert 2 * conv_out <= subsampling_bytes(encoder, chunk, F)
    largest = []

    class Outputs(TorchFunctionMode):  # every tensor a torch function returns in the stream (views at their size)
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            largest.extend(o.numel() * o.element_size() for o in (out if isinstance(out, (tuple, list)) else (out,))
                           if isinstance(o, torch.Tensor))
            return out

    with torch.inference_mode():
        stream = encoder.stream()
        with Outputs():
            stream.feed(torch.randn(chunk, F))
            stream.feed(torch.randn(chunk, F))
    assert largest and max(largest) <= activation_bytes(encoder, chunk, F)
    with pytest.raises(ValueError, match="cannot hold one encoder chunk"):
        frames_for_budget(encoder, 1000, F)


def test_block_features_and_energies_equal_the_whole_file():
    model = talking_model()
    wave = speechlike(7.3, 16000, seed=2)
    whole, _ = model.features(wave[None], torch.tensor([wave.shape[0]]))
    frontend = audio.OnlineFbank(16000, **model.config["fbank"])
    meter = OnlineEnergy(16000)
    feats, db = [], []
    for block in blocks(wave, 12_345):  # boundaries inside frames
        feats.append(frontend.accept_waveform(block))
        db.append(meter.accept(block))
    feats.append(frontend.input_finished())
    db.append(meter.finish())
    feats = torch.cat(feats)
    assert feats.shape == whole[0].shape
    assert (feats - whole[0]).abs().max() < 1e-4
    assert torch.equal(torch.cat(db), audio.energy_db(wave, 16000))


@pytest.mark.parametrize("beam", [None, 4])
def test_bounded_equals_the_whole_recording(beam):
    model = talking_model()
    wave = speechlike(90, 16000, seed=3)
    transcriber = Transcriber(model, DecodingOptions(beam=beam), memory_mb=1.5)
    chunk = LongTranscription(model, transcriber.spans, round(1.5 * 2**20)).chunk
    assert chunk < model.num_frames(wave.shape[0]) // 10  # many encoder chunks
    whole = transcriber.result(transcriber.log_probs(wave), wave)
    bounded = transcriber.bounded(blocks(wave, 40_000))
    assert len(whole.words) > 50 and whole.text.count(" ") > 20
    assert bounded.text == whole.text
    assert times(bounded) == times(whole)
    assert [(s.start, s.end, s.lines) for s in bounded.segments] == [(s.start, s.end, s.lines) for s in whole.segments]


def test_ten_minutes_bounded_equal_the_whole_recording():
    """10 minutes through the default memory budget (windowed encoder, block reads): the text and
    word times of encoding the whole recording at once."""
    model = talking_model()
    wave = speechlike(600, 16000, seed=4)
    transcriber = Transcriber(model, DecodingOptions())
    chunk = LongTranscription(model, transcriber.spans, round(transcriber.memory_mb * 2**20)).chunk
    assert chunk < model.num_frames(wave.shape[0]) // 4  # several encoder chunks
    with torch.inference_mode():
        whole_log_probs, _ = model(wave[None], torch.tensor([wave.shape[0]]))
    whole = transcriber.result(whole_log_probs[0], wave)
    bounded = transcriber.bounded(blocks(wave, 160_000))
    assert len(whole.words) > 300
    assert bounded.text == whole.text
    assert times(bounded) == times(whole)


def test_tasr_transcribe_writes_long_files_segment_by_segment(tmp_path):
    """A long file through `tasr transcribe`: well-formed srt/vtt/json with the whole-recording result."""
    model = talking_model()
    model_path = tmp_path / "model.pt"
    model.save(model_path)
    wave = speechlike(75, 16000, seed=4)
    soundfile.write(tmp_path / "long.wav", wave.numpy(), 16000, subtype="FLOAT")
    out = tmp_path / "out"
    assert main(["transcribe", str(model_path), str(tmp_path / "long.wav"), "-f", "all", "-o", str(out), "-q",
                 "--memory-mb", "1.5"]) == 0
    transcriber = Transcriber(model)
    whole = transcriber.result(transcriber.log_probs(audio.load(tmp_path / "long.wav")), wave)
    srt = (out / "long.srt").read_text()
    vtt = (out / "long.vtt").read_text()
    assert len(parse_srt(srt, 75.0)) > 5 and parse_vtt(vtt, 75.0)
    assert srt == to_srt(whole) and vtt == to_vtt(whole)
    data = json.loads((out / "long.json").read_text())
    assert data["text"] == whole.text and data["duration"] == 75.0
    assert [w["word"] for s in data["segments"] for w in s["words"]] == [w.text for w in whole.words]
    assert (out / "long.txt").read_text() == "".join(s.text + "\n" for s in whole.segments)
    assert sorted(os.listdir(out)) == ["long.json", "long.srt", "long.tsv", "long.txt", "long.vtt"]


def test_a_file_that_ends_early_leaves_no_output(tmp_path, capsys):
    """A WAV cut off midway (its header says more): reported with its name, no output, no temporary file."""
    model = talking_model()
    model_path = tmp_path / "model.pt"
    model.save(model_path)
    path = tmp_path / "cut.wav"
    soundfile.write(path, speechlike(80, 16000, seed=5).numpy(), 16000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[:len(data) * 3 // 4])  # the data chunk is shorter than its header says
    out = tmp_path / "out"
    (out).mkdir()
    (out / "cut.srt").write_text("old\n")
    assert main(["transcribe", str(model_path), str(path), "-f", "all", "-o", str(out), "-q"]) == 1
    error = capsys.readouterr().err
    assert "cut.wav" in error and "skipped" in error
    assert sorted(os.listdir(out)) == ["cut.srt"] and (out / "cut.srt").read_text() == "old\n"
