"""`tasr transcribe --runtime onnxruntime`: an exported model gives the outputs of PyTorch, word times included."""

import json

import pytest
import soundfile
import torch

from tasr import audio
from tasr import export
from tasr.cli import main as tasr_main
from tasr.model import SpeechRecognizer
from tasr.text import CharTokenizer
from tasr.transcription import Transcriber, load_audio

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.usefixtures("one_thread")

RATE = 16000
CONFIG = {"sample_rate": RATE, "fbank": {"num_mel_bins": 40},
          "encoder": {"block": "conformer", "d_model": 32, "n_heads": 2, "n_layers": 2, "ff_dim": 64,
                      "subsampling_channels": 8, "conv_kernel": 7, "left": 8, "right": 2, "dropout": 0.0}}
WORDS = "zero one two three four five six seven eight nine".split()
TRAIN_STEPS = 1500  # CTC steps on 3 FSDD digits in a row: enough for words and pauses (~15 s on one core)
FORMATS = ("txt", "srt", "vtt", "tsv")  # compared as they are; json with confidences to CONFIDENCE
CONFIDENCE = 1e-3  # word confidences of onnxruntime fp32 against PyTorch's
FP32_TOLERANCE = 1e-4  # largest |log-prob difference|


def digits_model(recordings) -> SpeechRecognizer:
    """A tiny model trained briefly on FSDD digits (`recordings`, named digit_speaker_index.wav)."""
    waves = [load_audio(str(p), RATE) for p in recordings]
    texts = [WORDS[int(p.name[0])] for p in recordings]
    tokenizer = CharTokenizer(sorted(set(" ".join(WORDS))))
    cmvn, frontend = audio.GlobalCMVN(), audio.Fbank(sample_rate=RATE, num_mel_bins=40)
    for wave in waves:
        cmvn.accumulate(frontend(wave[None])[0])
    torch.manual_seed(0)
    model = SpeechRecognizer(CONFIG, tokenizer, cmvn)
    optimizer = torch.optim.AdamW(model.parameters(), 3e-3)
    pause = torch.zeros(RATE // 5)
    generator = torch.Generator().manual_seed(0)
    for _ in range(TRAIN_STEPS):
        picked = torch.randint(len(waves), (3,), generator=generator).tolist()
        wave = torch.cat([torch.cat([waves[i], pause]) for i in picked])
        target = torch.tensor(tokenizer.encode(" ".join(texts[i] for i in picked)))
        log_probs, out_lengths = model(wave[None], torch.tensor([wave.numel()]))
        loss = torch.nn.functional.ctc_loss(log_probs.transpose(0, 1), target[None], out_lengths,
                                            torch.tensor([target.numel()]), zero_infinity=True)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory, fsdd_root, an4_root):
    """(folder with model.pt, its `tasr export --int8` folder, the input files): real FSDD and AN4
    recordings, and FSDD digits of other speakers one after another, with pauses."""
    recordings = sorted((fsdd_root / "recordings").glob("*.wav"))
    model = digits_model(recordings[::10])
    root = tmp_path_factory.mktemp("onnx")
    model.save(root / "model.pt")
    export.export(model, root / "onnx", int8=True)
    files = recordings[5::700] + sorted(an4_root.rglob("*.wav"))[:2]
    pause = torch.zeros(RATE // 3)
    for n in range(3):
        path = root / f"digits{n}.wav"
        soundfile.write(path, torch.cat([torch.cat([load_audio(str(p), RATE), pause])
                                         for p in recordings[n + 3::400]]).numpy(), RATE)
        files.append(path)
    return root, root / "onnx", files


def transcribe(root, model, runtime, files, name, *flags):
    out = root / name
    argv = ["transcribe", str(model), *map(str, files), "-o", str(out), "-f", "all", "-q", "--threads", "1",
            "--runtime", runtime, *flags]
    assert tasr_main(argv) == 0
    return out


def test_the_command_gives_pytorch_s_outputs(exported):
    root, folder, files = exported
    torch_out = transcribe(root, root / "model.pt", "torch", files, "torch")
    onnx_out = transcribe(root, folder, "onnxruntime", files, "onnxruntime")
    frame_s = export.OnnxModel(folder).output_frame_s
    words = 0
    for path in files:
        for fmt in FORMATS:
            assert (onnx_out / f"{path.stem}.{fmt}").read_text() == (torch_out / f"{path.stem}.{fmt}").read_text()
        expected = json.loads((torch_out / f"{path.stem}.json").read_text())
        got = json.loads((onnx_out / f"{path.stem}.json").read_text())
        assert got["text"] == expected["text"] and got["duration"] == expected["duration"]
        pairs = [(a, b) for sa, sb in zip(got["segments"], expected["segments"]) for a, b in zip(sa["words"], sb["words"])]
        assert len(pairs) == sum(len(s["words"]) for s in expected["segments"])
        for a, b in pairs:
            assert a["word"] == b["word"] and abs(a["confidence"] - b["confidence"]) <= CONFIDENCE
            assert abs(a["start"] - b["start"]) <= frame_s and abs(a["end"] - b["end"]) <= frame_s
        words += len(pairs)
    assert words > len(files)  # the comparison saw words (several in the digit sequences)


def test_int8_writes_every_output_with_the_same_durations(exported):
    root, folder, files = exported
    torch_out = transcribe(root, root / "model.pt", "torch", files, "torch-int8-peer")
    int8_out = transcribe(root, folder, "onnxruntime-int8", files, "int8")
    for path in files:
        got = json.loads((int8_out / f"{path.stem}.json").read_text())
        assert got["duration"] == json.loads((torch_out / f"{path.stem}.json").read_text())["duration"]
        assert got["text"] == " ".join(w["word"] for s in got["segments"] for w in s["words"])
        times = [t for s in got["segments"] for w in s["words"] for t in (w["start"], w["end"])]
        assert times == sorted(times) and all(0 <= t <= got["duration"] for t in times)


def test_beam_search_and_windows_give_pytorch_s_results(exported):
    """A long recording (the inputs one after another) in windows of 300 frames, and beam search."""
    root, folder, files = exported
    model = SpeechRecognizer.load(root / "model.pt")
    onnx_model = export.OnnxModel(folder, threads=1)
    wave = torch.cat([load_audio(str(p), RATE) for p in files])
    reference = Transcriber(model, max_frames=None).log_probs(wave)
    windowed = Transcriber(onnx_model, max_frames=300).log_probs(wave)
    assert windowed.shape == reference.shape and float((windowed - reference).abs().max()) < FP32_TOLERANCE
    for beam in (None, 4):
        expected, got = model.transcribe(wave, beam=beam), onnx_model.transcribe(wave, beam=beam, max_frames=300)
        assert got.text == expected.text and len(got.words) == len(expected.words) > 0
        assert all(abs(a.start - b.start) <= onnx_model.output_frame_s for a, b in zip(got.words, expected.words))


def test_a_file_over_a_minute_gives_pytorch_s_text(exported):
    """Files over 60 s: torch reads them block by block through the encoder's stream, onnxruntime in windows."""
    root, folder, files = exported
    wave = torch.cat([load_audio(str(p), RATE) for p in files])
    long = root / "long.wav"
    soundfile.write(long, wave.repeat(65 * RATE // wave.numel() + 1).numpy(), RATE)
    torch_out = transcribe(root, root / "model.pt", "torch", [long], "torch-long")
    onnx_out = transcribe(root, folder, "onnxruntime", [long], "onnxruntime-long")
    assert (onnx_out / "long.txt").read_text() == (torch_out / "long.txt").read_text() != ""
    assert export.OnnxModel(folder, threads=1).transcribe(str(long)).text == (torch_out / "long.txt").read_text().strip()


def test_short_inputs_in_a_batch(exported):
    """Inputs shorter than the subsampling's receptive field decode to nothing, beside a real one."""
    root, folder, files = exported
    model, onnx_model = SpeechRecognizer.load(root / "model.pt"), export.OnnxModel(folder, threads=1)
    waves = [torch.zeros(160), load_audio(str(files[0]), RATE), 0.1 * torch.ones(400)]
    results = {}
    for name, m in (("torch", model), ("onnxruntime", onnx_model)):
        results[name] = [r.text for *_, r in sorted(Transcriber(m).results(enumerate(waves)), key=lambda x: x[0])]
    assert results["onnxruntime"] == results["torch"] and results["torch"][0] == ""


def test_wrong_model_or_flags_are_one_line_errors(exported, capsys):
    root, folder, files = exported
    for model, flags, message in ((root / "model.pt", [], "is a file; the ONNX runtimes take the folder"),
                                  (root, [], "model.onnx: not found"),
                                  (folder, ["--streaming"], "streaming.onnx: not found; streaming in onnxruntime needs the "
                                                           "streaming graph (tasr export --streaming)"),
                                  (folder, ["--device", "cuda"], "use --runtime torch for --device cuda")):
        assert tasr_main(["transcribe", str(model), str(files[0]), "--runtime", "onnxruntime", *flags]) == 2
        error = capsys.readouterr().err
        assert error.startswith("tasr transcribe: error: ") and message in error and len(error.strip().splitlines()) == 1
