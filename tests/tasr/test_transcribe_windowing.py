"""Windowed encoding and streaming recognition give the one-pass result (random weights: equality does not need accuracy)."""

import glob
import os
from types import SimpleNamespace

import pytest
import torch

from tasr import audio
import corpora
from tasr.models.encoder import Encoder
from tasr.cli import main
from tasr.model import SpeechRecognizer
from tasr.streaming import StreamingRecognizer
from tasr.text import CharTokenizer, train_tokenizer
from tasr.models.windowing import encode_windowed, plan_windows

FSDD = str(corpora.fsdd.root / "recordings")


pytestmark = pytest.mark.usefixtures("one_thread")


def small_encoder(block="conformer", subsampling=4, left=6, right=2):
    torch.manual_seed(0)
    return Encoder(input_dim=40, d_model=32, n_heads=2, n_layers=3, ff_dim=64, block=block,
                   subsampling=subsampling, subsampling_channels=8, conv_kernel=7, left=left,
                   right=right, dropout=0.0).eval()


@pytest.mark.parametrize("block,subsampling,num_frames", [("conformer", 4, 1001), ("transformer", 6, 700),
                                                          ("conformer", 8, 701)])
def test_windows_equal_one_pass(block, subsampling, num_frames):
    encoder = small_encoder(block, subsampling)
    field = encoder.receptive_field()
    feats = torch.randn(num_frames, 40)
    with torch.inference_mode():
        whole, _ = encoder(feats[None], torch.tensor([num_frames]))
        smallest = field[0] + field[1] + 2 * subsampling  # a window holding one or two output frames
        for max_frames in (smallest + 37, 450):
            windows = plan_windows(num_frames, whole.shape[1], max_frames, field, subsampling)
            assert len(windows) > 1 and all(w.end - w.start <= max_frames for w in windows)
            out = encode_windowed(encoder, encoder.output_lengths, feats, max_frames, field, subsampling)
            assert out.shape == whole[0].shape
            assert (out - whole[0]).abs().max() < 1e-4


def test_overlap_smaller_than_receptive_field_differs():
    """The overlap is needed: windows with too little left context do not give the one-pass result."""
    encoder = small_encoder()
    left, right = encoder.receptive_field()
    feats = torch.randn(900, 40)
    with torch.inference_mode():
        whole, _ = encoder(feats[None], torch.tensor([900]))
        out = encode_windowed(encoder, encoder.output_lengths, feats, 300, (left // 4, right), 4)
    assert (out - whole[0]).abs().max() > 1e-3


def test_window_budget_errors():
    with pytest.raises(ValueError, match="cannot hold the encoder's receptive field"):
        plan_windows(10_000, 2_499, 100, (96, 38), 4)
    with pytest.raises(ValueError, match="unlimited"):
        plan_windows(10_000, 2_499, 1_000, (None, None), 4)
    assert len(plan_windows(10_000, 2_499, 0, (None, None), 4)) == 1  # no budget: one pass


def random_model(sample_rate=8000):
    torch.manual_seed(1)
    config = {"sample_rate": sample_rate, "fbank": {"num_mel_bins": 40},
              "encoder": {"d_model": 32, "n_heads": 2, "n_layers": 2, "ff_dim": 64, "subsampling_channels": 8,
                          "conv_kernel": 7, "left": 8, "right": 2, "dropout": 0.0}}
    cmvn = audio.GlobalCMVN(40)  # as trained models have: statistics of some speech
    cmvn.accumulate(audio.fbank(audio.load(sorted(glob.glob(os.path.join(FSDD, "*_george_*.wav")))[0], 8000),
                                8000, num_mel_bins=40))
    return SpeechRecognizer(config, CharTokenizer(list(" einorstuvwxzfgh")), cmvn).eval()


@pytest.mark.parametrize("chunk", [77, 1280])  # samples at 8 kHz: under one frame shift, 160 ms
def test_streaming_recognizer_equals_offline_on_speech(chunk):
    corpora.fsdd.require()
    files = sorted(glob.glob(os.path.join(FSDD, "*_jackson_*.wav")))[:12]
    model = random_model()
    assert model.cmvn is not None
    waveform = torch.cat([torch.cat([audio.load(f, 8000), torch.zeros(2000)]) for f in files])
    with torch.inference_mode():
        offline, _ = model(waveform[None], torch.tensor([waveform.shape[0]]))
    recognizer = StreamingRecognizer(model)
    partials = [recognizer.accept(waveform[i:i + chunk]) for i in range(0, waveform.shape[0], chunk)]
    streamed = recognizer.finish()
    assert streamed.shape == offline[0].shape
    assert (streamed - offline[0]).abs().max() < 1e-4
    final = model.tokenizer.decode(model.decode(offline, torch.tensor([offline.shape[1]]))[0])
    assert recognizer.text == final
    assert all(final.startswith(p) for p in partials)  # partial results only grow
    assert len(set(partials)) > 2


class RandomLogProbs:
    """A log-prob stream that gives each fbank frame a random token (its log-probs one-hot), blanks often."""

    def __init__(self, vocab_size: int):
        self.vocab_size, self.generator = vocab_size, torch.Generator().manual_seed(0)

    def accept(self, frames):
        tokens = torch.randint(self.vocab_size, (frames.shape[0],), generator=self.generator)
        tokens[torch.rand(frames.shape[0], generator=self.generator) < 0.5] = 0
        return torch.nn.functional.one_hot(tokens, self.vocab_size).float().log()

    def finish(self):
        return torch.zeros(0, self.vocab_size)


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_partial_text_is_the_decoding_of_the_tokens_so_far(kind):
    """The partial text is decoded word by word (not the whole stream again per chunk), with the same result."""
    tokenizer = (CharTokenizer(list(" ab'")) if kind == "char" else
                 train_tokenizer(["the cat sat on the mat with a hat"] * 20, "bpe", vocab_size=20))
    model = SimpleNamespace(sample_rate=8000, config={}, device=torch.device("cpu"), tokenizer=tokenizer,
                            log_prob_stream=lambda: RandomLogProbs(tokenizer.vocab_size))
    recognizer = StreamingRecognizer(model)
    for chunk in 0.1 * torch.randn(30, 800, generator=torch.Generator().manual_seed(1)):
        assert recognizer.accept(chunk) == tokenizer.decode(recognizer.tokens)
    assert len(recognizer.text.split()) > 10


def test_streaming_recognizer_refuses_unlimited_attention():
    config = {"sample_rate": 8000, "fbank": {"num_mel_bins": 40},
              "encoder": {"d_model": 32, "n_heads": 2, "n_layers": 2, "ff_dim": 64, "left": None, "right": 2}}
    model = SpeechRecognizer(config, CharTokenizer(list(" ab"))).eval()
    with pytest.raises(ValueError, match="unlimited attention context"):
        StreamingRecognizer(model)


def test_bench_transcribe_streaming_table(tmp_path, capsys):
    torch.manual_seed(1)
    config = {"sample_rate": 8000, "fbank": {"num_mel_bins": 40},
              "encoder": {"d_model": 32, "n_heads": 2, "n_layers": 2, "ff_dim": 64, "subsampling_channels": 8,
                          "conv_kernel": 7, "left": 8, "right": 2, "dropout": 0.0}}
    model = SpeechRecognizer(config, CharTokenizer(list(" ab")))
    model.save(tmp_path / "model.pt")
    code = main(["bench", "transcribe", str(tmp_path / "model.pt"), "--durations", "2", "--threads", "1",
                 "--full-max-s", "0", "--no-cuda", "--stream-chunk-ms", "160", "--max-stream-ratio", "1e-9"])
    out = capsys.readouterr().out
    assert code == 1 and "FAIL: streaming more than 1e-09x offline RTF (torch 2 s)" in out
    latency = 160 + model.encoder.lookahead_ms
    assert f"latency = chunk + look-ahead {model.encoder.lookahead_ms:g} ms = {latency:g} ms" in out
    header = next(i for i, line in enumerate(out.splitlines()) if line.split()[:3] == ["runtime", "input", "s"])
    row = out.splitlines()[header + 1].split()
    offline, streamed, ratio, floor = float(row[2]), float(row[3]), float(row[4]), float(row[5])
    assert row[:2] == ["torch", "2"] and offline > 0 and streamed > 0 and floor > 0 and float(row[6]) == latency
    assert ratio == pytest.approx(streamed / offline, rel=0.05)  # the figures as printed, rounded



def test_bench_transcribe_streaming_table_of_the_random_weight_model(capsys):
    """Without MODEL the bench writes its random-weight model to a temporary folder: every
    measurement, the streaming floor included, must run while that file exists."""
    code = main(["bench", "transcribe", "--durations", "1", "--threads", "1", "--full-max-s", "0", "--no-cuda",
                 "--file-durations", "--max-stream-ratio", "1000"])
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["runtime", "input", "s"])
    row = lines[header + 1].split()
    assert code == 0 and row[:2] == ["torch", "1"] and float(row[5]) > 0, lines[header + 1]

def test_bench_transcribe_runtimes_table_with_the_streaming_export(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    torch.manual_seed(1)
    config = {"sample_rate": 8000, "fbank": {"num_mel_bins": 40},
              "encoder": {"d_model": 32, "n_heads": 2, "n_layers": 2, "ff_dim": 64, "subsampling_channels": 8,
                          "conv_kernel": 7, "left": 8, "right": 2, "dropout": 0.0}}
    SpeechRecognizer(config, CharTokenizer(list(" ab"))).save(tmp_path / "model.pt")
    code = main(["bench", "transcribe", str(tmp_path / "model.pt"), "--durations", "2", "--threads", "1",
                 "--full-max-s", "0", "--no-cuda", "--stream-chunk-ms", "160", "--file-durations",
                 "--runtimes", "torch,onnxruntime,onnxruntime-stream", "--max-rtf", "1", "--max-stream-ratio", "1000"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    table = lines[next(i for i, line in enumerate(lines) if line.split()[:3] == ["runtime", "threads", "input"]):]
    rows = {line.split()[0]: line.split() for line in table
            if line.split()[:1] in (["torch"], ["onnxruntime"], ["onnxruntime-stream"])}
    assert sorted(rows) == ["onnxruntime", "onnxruntime-stream", "torch"]
    for row in rows.values():
        assert row[1:3] == ["1", "2"] and float(row[4]) > 0 and int(row[6]) >= 0  # threads, seconds, RTF, words
    assert "streaming.onnx" in next(line for line in lines if line.startswith("files: "))
    # the streaming table pairs onnxruntime-stream with onnxruntime offline, as measured above
    streaming = lines[next(i for i, line in enumerate(lines) if line.split()[:3] == ["runtime", "input", "s"]):]
    pair = next(line.split() for line in streaming if line.split()[:1] == ["onnxruntime"])
    assert pair[:2] == ["onnxruntime", "2"] and pair[2] == rows["onnxruntime"][4] and pair[3] == rows["onnxruntime-stream"][4]
    assert float(pair[4]) == pytest.approx(float(pair[3]) / float(pair[2]), rel=0.05) and pair[5] == "-"
