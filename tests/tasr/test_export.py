"""tasr export: ONNX that onnxruntime and sherpa-onnx run with the numbers and text of PyTorch."""

import contextlib
import io
import json
import re

import pytest
import torch

from tasr import audio
from tasr.models.attention import dense_attention, traceable_attention
from tasr.models.ctc import greedy_decode
from tasr import export
from tasr.cli import main as tasr_main
from tasr.errors import TasrError
from tasr.model import SpeechRecognizer
from tasr.text import train_tokenizer

pytest.importorskip("onnxruntime")

CONFIG = {
    "sample_rate": 8000,
    "fbank": {"num_mel_bins": 80},
    "encoder": {"block": "conformer", "d_model": 32, "n_heads": 4, "n_layers": 2, "ff_dim": 64,
                "left": 8, "right": 2, "conv_kernel": 7, "subsampling_channels": 16, "dropout": 0.1},
}
FP32_TOLERANCE = 1e-4  # largest |log-prob difference| of onnxruntime fp32 from PyTorch
INT8_TOLERANCE = 0.5  # int8 weights: largest |log-prob difference| on this tiny model
WORDS = "zero one two three four five six seven eight nine".split()


def recordings(fsdd_root, count):
    return sorted((fsdd_root / "recordings").glob("*.wav"))[:count * 7:7]  # several digits and speakers


@pytest.fixture(scope="module")
def exported(tmp_path_factory, fsdd_root, one_thread):
    """(model, folder, what the command printed) of a tiny 8 kHz model with CMVN from FSDD,
    exported by `tasr export --int8`."""
    torch.manual_seed(0)
    tokenizer = train_tokenizer([" ".join(WORDS)] * 3, "char")
    cmvn = audio.GlobalCMVN()
    frontend = audio.Fbank(sample_rate=8000, num_mel_bins=80)
    for path in recordings(fsdd_root, 20):
        cmvn.accumulate(frontend(audio.load(path, 8000)[None])[0])
    folder = tmp_path_factory.mktemp("export")
    SpeechRecognizer(CONFIG, tokenizer, cmvn).save(folder / "model.pt")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert tasr_main(["export", str(folder / "model.pt"), "-o", str(folder / "onnx"), "--int8"]) == 0
    return SpeechRecognizer.load(folder / "model.pt"), folder / "onnx", printed.getvalue()


def batch(paths, sample_rate=8000):
    waves = [audio.load(p, sample_rate) for p in paths]
    lengths = torch.tensor([w.numel() for w in waves])
    return torch.nn.utils.rnn.pad_sequence(waves, batch_first=True), lengths


def largest_difference(model, onnx_model, waves, lengths):
    with torch.inference_mode():
        reference, out_lengths = model(waves, lengths)
    feats, frames = model.frontend(waves, lengths)
    log_probs, onnx_lengths = onnx_model.log_probs(feats, frames)
    assert onnx_lengths.tolist() == out_lengths.tolist() and log_probs.shape == reference.shape
    return max(float((log_probs[i, :n] - reference[i, :n]).abs().max()) for i, n in enumerate(out_lengths.tolist()))


def test_export_writes_the_files_and_prints_the_check(exported):
    model, folder, printed = exported
    assert sorted(p.name for p in folder.iterdir()) == ["model.int8.onnx", "model.onnx", "tokens.txt"]
    assert (folder / "model.int8.onnx").stat().st_size < (folder / "model.onnx").stat().st_size
    differences = re.findall(r"^(model\S*\.onnx): largest log-prob difference from PyTorch on noise: (\S+)$", printed, re.M)
    assert [name for name, _ in differences] == ["model.onnx", "model.int8.onnx"]
    assert float(differences[0][1]) < FP32_TOLERANCE and float(differences[1][1]) < INT8_TOLERANCE
    assert "snip_edges=True" in printed and "high_freq=0.0" in printed


@pytest.mark.parametrize("count,repeat", [(1, 1), (4, 1), (1, 60)], ids=["one file", "batch of 4", "60 files, ~30 s"])
def test_onnxruntime_equals_pytorch(exported, fsdd_root, count, repeat):
    model, folder, _ = exported
    waves, lengths = batch(recordings(fsdd_root, count))
    if repeat > 1:  # one long recording: the files one after the other
        many, many_lengths = batch(recordings(fsdd_root, repeat))
        waves = torch.cat([w[:n] for w, n in zip(many, many_lengths)])[None]
        lengths = torch.tensor([waves.shape[1]])
    assert largest_difference(model, export.OnnxModel(folder, threads=1), waves, lengths) < FP32_TOLERANCE
    assert largest_difference(model, export.OnnxModel(folder, int8=True, threads=1), waves, lengths) < INT8_TOLERANCE


def test_metadata_round_trips(exported):
    model, folder, _ = exported
    values = export.read_metadata(folder / "model.onnx")
    assert values == export.metadata(model) == export.read_metadata(folder / "model.int8.onnx")
    assert values["model_type"] == "zipformer2_ctc" and values["vocab_size"] == str(model.tokenizer.vocab_size)
    assert values["subsampling_factor"] == "4" and values["sample_rate"] == "8000" and values["feature_dim"] == "80"
    fbank = json.loads(values["fbank"])
    assert fbank["num_mel_bins"] == 80 and fbank["snip_edges"] is True and fbank["high_freq"] == 0.0
    onnx_model = export.OnnxModel(folder)
    assert onnx_model.config == model.config and onnx_model.tokenizer.tokens == model.tokenizer.tokens
    assert export.sherpa_feature_options(values) == {
        "sampling_rate": 8000, "feature_dim": 80, "low_freq": 20.0, "high_freq": 0.0, "dither": 0.0,
        "normalize_samples": True, "snip_edges": True}


def test_tokens_file_is_sherpa_onnx_s_format(exported):
    model, folder, _ = exported
    lines = (folder / "tokens.txt").read_text(encoding="utf-8").splitlines()
    assert lines[:3] == ["<blank> 0", "⁇ 1", "▁ 2"]  # blank, <unk> as tasr writes it, the space
    assert [line.split(" ") for line in lines] == [[t, str(i)] for i, t in enumerate(export.sherpa_tokens(model.tokenizer))]
    bpe = train_tokenizer([" ".join(WORDS)] * 20, "bpe", vocab_size=30)
    tokens = export.sherpa_tokens(bpe)
    assert tokens[:2] == ["<blank>", "⁇"] and any(t.startswith("▁") and len(t) > 1 for t in tokens)
    assert all(t and not any(c.isspace() for c in t) for t in tokens)


def test_sherpa_onnx_text_equals_tasr(exported, fsdd_root):
    pytest.importorskip("sherpa_onnx")
    model, folder, _ = exported
    for int8 in (False, True):
        recognizer = export.sherpa_recognizer(folder, int8=int8)
        onnx_model = export.OnnxModel(folder, int8=int8, threads=1)
        for path in recordings(fsdd_root, 6):
            wave = audio.load(path, 8000)
            stream = recognizer.create_stream()
            stream.accept_waveform(8000, wave.numpy())
            recognizer.decode_stream(stream)
            feats, frames = model.frontend(wave[None])
            ids = greedy_decode(*onnx_model.log_probs(feats, frames))[0]
            assert stream.result.tokens == [export.sherpa_tokens(model.tokenizer)[i].replace("▁", " ") for i in ids]
            # sherpa-onnx keeps runs of spaces that tasr's tokenizers fold into one
            assert " ".join(stream.result.text.split()) == model.tokenizer.decode(ids)
            if not int8:
                assert model.tokenizer.decode(ids) == model.transcribe_batch(wave[None], torch.tensor([wave.numel()]))[0]


def test_broken_and_foreign_files_give_one_line_errors(tmp_path, exported, capsys):
    (tmp_path / "broken.pt").write_bytes(b"PK\x03\x04 not really a zip")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    for name, message in (("broken.pt", "not a readable tasr model file"), ("foreign.pt", "not a tasr model"),
                          ("missing.pt", "model file not found")):
        assert tasr_main(["export", str(tmp_path / name), "-o", str(tmp_path / "out")]) == 2
        error = capsys.readouterr().err
        assert error.startswith(f"tasr export: error: {tmp_path / name}: ") and message in error
        assert len(error.strip().splitlines()) == 1
    (tmp_path / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(TasrError, match="not a readable ONNX model"):
        export.OnnxModel(tmp_path)
    onnx = pytest.importorskip("onnx")
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "identity",
                                   [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]), tmp_path / "model.onnx")
    with pytest.raises(TasrError, match="not a model exported by tasr"):
        export.OnnxModel(tmp_path)
    _, folder, _ = exported
    with pytest.raises(TasrError, match="needs frames"):
        export.OnnxModel(folder).log_probs(torch.zeros(1, 3, 80), torch.tensor([3]))


def test_full_attention_transformer_without_cmvn_exports(tmp_path, one_thread):
    """Unlimited left context, relu attention, 6x subsampling, no CMVN: the other paths of the graph."""
    torch.manual_seed(0)
    config = {"sample_rate": 16000, "fbank": {"num_mel_bins": 40},
              "encoder": {"block": "transformer", "d_model": 32, "n_heads": 2, "n_layers": 2, "ff_dim": 64,
                          "subsampling": 6, "left": None, "right": 1, "attention_options": {"normalize": "relu"}}}
    model = SpeechRecognizer(config, train_tokenizer(WORDS, "char")).eval()
    export.export(model, tmp_path)
    onnx_model = export.OnnxModel(tmp_path, threads=1)
    assert onnx_model.min_frames == 11 and export.read_metadata(tmp_path / "model.onnx")["cmvn"] == "none"
    waves = 0.1 * torch.randn(2, 16000)
    assert largest_difference(model, onnx_model, waves, torch.tensor([16000, 4000])) < FP32_TOLERANCE


def test_sherpa_incompatible_front_ends_are_named():
    options = {**export.SHERPA_FIXED, "frame_shift": 20.0, "window_type": "hamming"}
    problems = export.sherpa_incompatibilities(options)
    assert len(problems) == 2 and problems[0].startswith("frame_shift=20.0") and "hamming" in problems[1]
    values = {"fbank": json.dumps(options), "sample_rate": "16000", "normalize_samples": "1"}
    with pytest.raises(TasrError, match="sherpa-onnx cannot compute this model's features: frame_shift"):
        export.sherpa_feature_options(values)


@pytest.mark.parametrize("left,right", [(4, 1), (0, 0), (100, 3), (None, 2), (3, None), (None, None)])
@pytest.mark.parametrize("score,normalize", [("dot", "softmax"), ("dot", "relu"), ("additive", "softmax")])
def test_traceable_attention_equals_dense(left, right, score, normalize):
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 2, 77, 8) for _ in range(3))
    weight = torch.randn(2, 8) if score == "additive" else None
    for lengths in (torch.tensor([77, 50, 3]), None):
        expected = dense_attention(q, k, v, left, right, lengths, score, normalize, weight)
        got = traceable_attention(q, k, v, left, right, lengths, score, normalize, weight, block_size=8)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
