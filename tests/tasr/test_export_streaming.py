"""tasr export --streaming: a chunk step with explicit caches that onnxruntime streams with PyTorch's offline numbers."""

import contextlib
import io
import json
import re

import numpy as np
import pytest
import soundfile
import torch

from tasr import audio, export
from tasr.cli import main as tasr_main
from tasr.errors import TasrError
from tasr.onnx_runtime import STREAMING_FILE, OnnxStream
from tasr.model import SpeechRecognizer
from tasr.text import train_tokenizer

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

CONFIG = {
    "sample_rate": 8000,
    "fbank": {"num_mel_bins": 40},
    "encoder": {"block": "conformer", "d_model": 32, "n_heads": 4, "n_layers": 2, "ff_dim": 64,
                "left": [6, 3], "right": [2, 0], "conv_kernel": 7, "subsampling_channels": 8, "dropout": 0.1},
}
FP32_TOLERANCE = 1e-4
INT8_TOLERANCE = 0.5  # int8 weights: largest |log-prob difference| on this tiny model
WORDS = "zero one two three four five six seven eight nine".split()


@pytest.fixture(scope="module")
def exported(tmp_path_factory, fsdd_root, one_thread):
    """(model, folder, printed) of a tiny 8 kHz model with CMVN, `tasr export --streaming --int8 --chunk-ms 200`."""
    torch.manual_seed(0)
    cmvn = audio.GlobalCMVN()
    frontend = audio.Fbank(sample_rate=8000, num_mel_bins=40)
    for path in sorted((fsdd_root / "recordings").glob("*.wav"))[:40:4]:
        cmvn.accumulate(frontend(audio.load(path, 8000)[None])[0])
    folder = tmp_path_factory.mktemp("streaming")
    SpeechRecognizer(CONFIG, train_tokenizer([" ".join(WORDS)], "char"), cmvn).save(folder / "model.pt")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert tasr_main(["export", str(folder / "model.pt"), "-o", str(folder / "onnx"), "--int8",
                          "--streaming", "--chunk-ms", "200"]) == 0
    return SpeechRecognizer.load(folder / "model.pt"), folder / "onnx", printed.getvalue()


def test_export_writes_the_streaming_files_and_checks_them(exported):
    _, folder, printed = exported
    assert {"streaming.onnx", "streaming.int8.onnx"} <= {p.name for p in folder.iterdir()}
    differences = dict(re.findall(r"^(streaming\S*\.onnx): largest log-prob difference of the stream from "
                                  r"PyTorch offline on noise: (\S+)$", printed, re.M))
    assert float(differences["streaming.onnx"]) < FP32_TOLERANCE
    assert float(differences["streaming.int8.onnx"]) < INT8_TOLERANCE


@pytest.mark.parametrize("piece", [1, 7, 20, 1000])
def test_onnxruntime_stream_equals_pytorch_offline_on_speech(exported, fsdd_root, piece):
    model, folder, _ = exported
    wave = torch.cat([audio.load(p, 8000) for p in sorted((fsdd_root / "recordings").glob("*_jackson_*.wav"))[:6]])
    lengths = torch.tensor([wave.numel()])
    with torch.inference_mode():
        reference, out_lengths = model(wave[None], lengths)
        raw, _ = model.frontend(wave[None], lengths)
    stream = OnnxStream(folder)
    pieces = [stream.accept(raw[0, i:i + piece].numpy()) for i in range(0, raw.shape[1], piece)]
    log_probs = torch.from_numpy(np.concatenate(pieces + [stream.finish()]))
    assert log_probs.shape == reference[0, :out_lengths[0]].shape
    assert (log_probs - reference[0]).abs().max() < FP32_TOLERANCE


def test_outputs_come_once_their_look_ahead_has_arrived(exported):
    model, folder, _ = exported
    stream = OnnxStream(folder)
    assert stream.chunk == 5 and stream.step_frames == 20  # 200 ms of 40 ms output frames
    assert stream.delay == 1 + 2 + 2  # subsampling, then attention and convolution look-ahead of the first block
    got = [stream.accept(np.zeros((20, 40), np.float32)).shape[0] for _ in range(4)]
    assert got == [0, 5, 5, 5]
    assert stream.finish().shape[0] == (80 - 7) // 4 + 1 - 15


def test_metadata_names_the_caches_and_what_cannot_stream_is_refused(exported, tmp_path, capsys):
    model, folder, _ = exported
    meta = {p.key: p.value for p in onnx.load(str(folder / STREAMING_FILE)).metadata_props}
    assert meta["model_type"] == "tasr_streaming_ctc" and meta["chunk"] == "5" and meta["delay"] == "5"
    names, shapes = json.loads(meta["cache_names"]), json.loads(meta["cache_shapes"])
    assert names == ["feats", "qkv0", "res1_0", "conv0", "res2_0", "qkv1", "conv1"]
    assert shapes[:2] == [[4, 40], [8, 96]]
    assert json.loads(meta["tasr_config"]) == model.config
    full = SpeechRecognizer({**CONFIG, "encoder": {**CONFIG["encoder"], "left": None}}, model.tokenizer)
    full.save(tmp_path / "full.pt")
    assert tasr_main(["export", str(tmp_path / "full.pt"), "-o", str(tmp_path / "out"), "--streaming"]) == 2
    assert "cannot export a streaming model: layer 0 has unlimited attention context" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing half-written
    with pytest.raises(TasrError, match="streaming.onnx: not found"):
        OnnxStream(tmp_path)


@pytest.mark.parametrize("runtime", ["onnxruntime", "onnxruntime-int8"])
def test_transcribe_streams_through_the_streaming_graph(exported, fsdd_root, tmp_path, capsys, runtime):
    """`tasr transcribe --runtime onnxruntime --streaming`: partial results, then a final text that does not
    depend on the chunk size; in fp32, the offline text and word times (int8 quantises the two graphs apart)."""
    model, folder, _ = exported
    wave = torch.cat([audio.load(p, 8000) for p in sorted((fsdd_root / "recordings").glob("*_jackson_*.wav"))[:6]])
    soundfile.write(tmp_path / "digits.wav", wave.numpy(), 8000)
    onnx_model = export.OnnxModel(folder, int8=runtime.endswith("int8"), threads=1)
    partials = list(onnx_model.stream(wave[i:i + 700] for i in range(0, wave.numel(), 700)))
    assert [r.final for r in partials] == [False] * (len(partials) - 1) + [True]
    assert [round(r.duration * 8000) for r in partials[:-1]] == list(range(700, wave.numel(), 700)) + [wave.numel()]
    final = partials[-1]
    assert tasr_main(["transcribe", str(folder), str(tmp_path / "digits.wav"), "--runtime", runtime,
                      "--streaming", "--chunk-ms", "100", "--threads", "1"]) == 0
    assert (tmp_path / "digits.txt").read_text().strip() == final.text
    assert re.search(r"^\[ +0\.\d\d s\] \S*digits\.wav: \S", capsys.readouterr().err, re.M)  # a partial result line
    if runtime == "onnxruntime-int8":
        return
    offline = onnx_model.transcribe(wave)
    assert final.text == offline.text == model.transcribe(wave).text and len(final.words) == len(offline.words)
    for got, want in zip(final.words, offline.words):
        assert (got.text, got.start, got.end) == (want.text, want.start, want.end)
        assert got.confidence == pytest.approx(want.confidence, abs=1e-4)
