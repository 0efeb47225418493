"""The library API: tasr.load_model, model.transcribe, model.stream, DecodingOptions."""

import json
import subprocess
import sys

import pytest
import soundfile
import torch

import tasr
from tasr.cli import main
from tasr.decoding import DecodingOptions
from tasr.errors import TasrError
from tasr.model import SpeechRecognizer
from tasr.text import CharTokenizer

RATE = 8000
CONFIG = {"sample_rate": RATE, "fbank": {"num_mel_bins": 40},
          "encoder": {"d_model": 32, "n_heads": 2, "n_layers": 2, "ff_dim": 64, "subsampling_channels": 8,
                      "conv_kernel": 7, "left": 8, "right": 2, "dropout": 0.0}}

pytestmark = pytest.mark.usefixtures("one_thread")


def bursts(seconds: float, seed: int = 0) -> torch.Tensor:
    """Noise bursts of 0.3 s every 0.8 s over a low noise floor: a waveform [N] at RATE."""
    g = torch.Generator().manual_seed(seed)
    wave = 1e-3 * torch.randn(int(seconds * RATE), generator=g)
    for start in range(int(0.2 * RATE), wave.shape[0] - int(0.3 * RATE), int(0.8 * RATE)):
        wave[start:start + int(0.3 * RATE)] += 0.3 * torch.randn(int(0.3 * RATE), generator=g)
    return wave


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(2)
    model = SpeechRecognizer(CONFIG, CharTokenizer(list(" efinorstuvwxz")))
    with torch.no_grad():  # favour blank a little so that words and pauses alternate
        model.ctc.linear.bias[0] += 1.0
    root = tmp_path_factory.mktemp("api")
    model.save(root / "model.pt")
    soundfile.write(root / "talk.wav", bursts(6.0).numpy(), RATE)
    return root


def test_import_tasr_does_not_import_torch():
    """The names of the API load when first used: `tasr` commands set torch's thread policy first."""
    code = "import sys, tasr; print('torch' in sys.modules, tasr.load_model.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "tasr.model"]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        tasr.nothing


def test_load_model_and_transcribe_a_file_as_the_command_does(model_file):
    model = tasr.load_model(model_file / "model.pt")
    assert isinstance(model, tasr.SpeechRecognizer) and not model.training
    result = model.transcribe(str(model_file / "talk.wav"))
    assert isinstance(result, tasr.Result) and result.words and result.text == " ".join(w.text for w in result.words)
    assert all(0 <= w.start <= w.end <= result.duration and 0 <= w.confidence <= 1 for w in result.words)
    assert main(["transcribe", str(model_file / "model.pt"), str(model_file / "talk.wav"), "-f", "json", "-q"]) == 0
    data = json.loads((model_file / "talk.json").read_text())
    assert data["text"] == result.text
    assert [w.to_dict() for w in result.words] == [w for s in data["segments"] for w in s["words"]]


def test_a_waveform_of_any_length_gives_the_same_result_windowed_or_not(model_file):
    model = tasr.load_model(model_file / "model.pt", device="cpu")
    wave = bursts(20.0, seed=1)
    whole = model.transcribe(wave, max_frames=None)
    windowed = model.transcribe(wave, max_frames=300)  # 3 s windows
    assert whole.text and windowed.text == whole.text
    assert [(w.text, w.start, w.end) for w in windowed.words] == [(w.text, w.start, w.end) for w in whole.words]
    assert [w.confidence for w in windowed.words] == pytest.approx([w.confidence for w in whole.words], abs=1e-4)
    with pytest.raises(TasrError, match=r"a waveform must be \[N\] samples at the model's rate \(8000 Hz\)"):
        model.transcribe(wave[None])


def test_stream_yields_partial_results_then_the_offline_one(model_file):
    model = tasr.load_model(model_file / "model.pt", device="cpu")
    wave = bursts(6.0, seed=3)
    results = list(model.stream(wave.split(1000)))
    partials, final = results[:-1], results[-1]
    assert len(partials) == len(wave.split(1000)) and not any(p.final or p.segments for p in partials)
    assert [round(p.duration * RATE) for p in partials] == [min(1000 * (i + 1), wave.shape[0]) for i in range(len(partials))]
    offline = model.transcribe(wave)
    assert final.final and final.text == offline.text and final.text.startswith(partials[-2].text.strip()[:1])
    assert [(w.text, round(w.start, 3), round(w.end, 3)) for w in final.words] == \
           [(w.text, round(w.start, 3), round(w.end, 3)) for w in offline.words]


def test_decoders_are_built_once_per_options_by_value(model_file, tmp_path):
    model = tasr.load_model(model_file / "model.pt", device="cpu")
    assert model.decoder(DecodingOptions()) is model.decoder(DecodingOptions())
    pytest.importorskip("flashlight.lib.text.decoder")
    lexicon = tmp_path / "words.txt"
    lexicon.write_text("one\nzero\n")
    a = model.decoder(DecodingOptions(beam=4, lexicon=str(lexicon)))
    assert model.decoder(DecodingOptions(beam=4, lexicon=str(tmp_path / "words.txt"))) is a
    assert model.decoder(DecodingOptions(beam=4)) is not a
    words = model.transcribe(model_file / "talk.wav", beam=4, lexicon=str(lexicon)).words
    assert {w.text for w in words} <= {"one", "zero"}


@pytest.mark.parametrize("options, message", [
    (dict(beam=0), "--beam must be >= 1, got 0"),
    (dict(lm="lm.arpa"), "--lm needs --beam N"),
    (dict(lexicon="words.txt"), "--lexicon needs --beam N"),
    (dict(beam=2, lm="no-such.arpa"), "--lm no-such.arpa: no such file"),
    (dict(beam=2, lexicon="no-such.txt"), "--lexicon no-such.txt: no such file"),
])
def test_bad_decoding_options_are_one_clear_error(model_file, options, message):
    model = tasr.load_model(model_file / "model.pt", device="cpu")
    with pytest.raises(TasrError, match=message):
        model.transcribe(torch.zeros(RATE), **options)


def test_the_frame_shift_has_one_owner_the_front_end():
    config = {**CONFIG, "fbank": {"num_mel_bins": 40, "frame_shift": 20.0}}
    model = SpeechRecognizer(config, CharTokenizer(list("ab")))
    assert (model.frame_shift_s, model.output_frame_s, model.frame_ms) == (0.02, 0.08, 80.0)
    assert model.encoder.frame_shift_ms == 20.0 and model.num_frames(RATE) == 49  # 25 ms frames every 20 ms
    assert model.encoder.lookahead_ms == model.encoder.receptive_field()[1] * 20.0
    with pytest.raises(TasrError, match="frame_shift_ms 10 differs from the front-end's frame_shift 20.0"):
        SpeechRecognizer({**config, "encoder": {**CONFIG["encoder"], "frame_shift_ms": 10}}, CharTokenizer(list("ab")))
