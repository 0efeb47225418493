import pytest
import torch

from tasr import audio
from tasr.errors import TasrError
from tasr.model import SpeechRecognizer
from tasr.text import train_tokenizer

CONFIG = {
    "sample_rate": 8000,
    "fbank": {"num_mel_bins": 40},
    "encoder": {"block": "conformer", "d_model": 32, "n_heads": 4, "n_layers": 2, "ff_dim": 64,
                "left": 8, "right": 2, "conv_kernel": 7, "dropout": 0.1},
    "specaugment": {"num_freq_masks": 1, "freq_mask_width": 5, "num_time_masks": 1, "time_mask_width": 5},
}


def make_model(kind="char", cmvn=True):
    torch.manual_seed(0)
    tokenizer = train_tokenizer(["zero one two three four five six seven eight nine"] * 5, kind, vocab_size=30)
    waves = torch.randn(3, 8000) * 0.1
    lengths = torch.tensor([8000, 6000, 3000])
    stats = None
    if cmvn:
        stats = audio.GlobalCMVN()
        stats.accumulate(*audio.Fbank(sample_rate=8000, num_mel_bins=40)(waves, lengths))
    return SpeechRecognizer(CONFIG, tokenizer, stats).eval(), waves, lengths


@pytest.mark.parametrize("kind,cmvn", [("char", True), ("bpe", False)])
def test_save_load_round_trip_gives_same_outputs(tmp_path, kind, cmvn):
    model, waves, lengths = make_model(kind, cmvn)
    log_probs, out_lengths = model(waves, lengths)
    assert log_probs.shape == (3, int(out_lengths.max()), model.tokenizer.vocab_size)
    model.save(tmp_path / "exp" / "model.pt", info={"steps": 3})
    assert [p.name for p in (tmp_path / "exp").iterdir()] == ["model.pt"]  # no temporary file left
    torch.load(tmp_path / "exp" / "model.pt", weights_only=True)  # plain values and tensors only
    loaded = SpeechRecognizer.load(tmp_path / "exp" / "model.pt")
    assert not loaded.training and loaded.info == {"steps": 3}
    assert loaded.tokenizer.tokens == model.tokenizer.tokens
    assert (loaded.cmvn is None) == (not cmvn)
    again, again_lengths = loaded(waves, lengths)
    torch.testing.assert_close(again, log_probs)
    assert again_lengths.tolist() == out_lengths.tolist()
    assert loaded.transcribe_batch(waves, lengths) == model.transcribe_batch(waves, lengths)


def test_parts_compose_and_specaugment_acts_only_in_training():
    model, waves, lengths = make_model()
    feats, frame_lengths = model.features(waves, lengths)
    assert feats.shape[-1] == 40 and frame_lengths.tolist() == audio.Fbank(8000, num_mel_bins=40)(waves, lengths)[1].tolist()
    log_probs, _ = model.encode_features(feats, frame_lengths)
    torch.testing.assert_close(log_probs, model(waves, lengths)[0])
    model.train()
    model.encoder.eval()  # no dropout: any difference now comes from SpecAugment
    model.ctc.eval()
    torch.manual_seed(1)
    augmented, _ = model.encode_features(feats, frame_lengths)
    assert not torch.allclose(augmented, log_probs)


def test_describe_and_parameters():
    model, _, _ = make_model()
    assert model.num_parameters == sum(p.numel() for p in model.parameters()) > 0
    text = model.describe()
    assert "conformer-CTC, 2 blocks" in text and "look-ahead" in text and "CMVN yes" in text
    assert model.frame_ms == 40.0


def test_broken_files_give_errors_naming_them(tmp_path):
    model, _, _ = make_model()
    good = tmp_path / "model.pt"
    model.save(good)
    data = good.read_bytes()
    cases = {
        "truncated.pt": data[: len(data) // 2],
        "empty.pt": b"",
        "text.pt": b"this is not a model\n",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    torch.save({"epoch": 3, "weights": torch.zeros(2)}, tmp_path / "checkpoint.pt")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "pickled_module.pt")  # refused by weights_only
    for name in list(cases) + ["checkpoint.pt", "pickled_module.pt", "missing.pt"]:
        with pytest.raises(TasrError, match=name):
            SpeechRecognizer.load(tmp_path / name)
    state = model.file_state()
    state["state_dict"].pop("ctc.linear.weight")
    torch.save(state, tmp_path / "incomplete.pt")
    with pytest.raises(TasrError, match="incomplete.pt: the weights do not match"):
        SpeechRecognizer.load(tmp_path / "incomplete.pt")



def cmvn_state(features: int, frames: int) -> dict:
    stats = audio.GlobalCMVN(features)
    stats.count.fill_(frames)
    return stats.state_dict()


@pytest.mark.parametrize("cmvn, message", [
    ("junk", "its CMVN statistics are not readable"),
    ({"count": torch.tensor(5.0)}, "its CMVN statistics are not readable .*Missing key"),
    (cmvn_state(3, 5), r"its CMVN statistics are not usable \(3 features over 5 frames; the front-end gives 40\)"),
    (cmvn_state(40, 0), r"its CMVN statistics are not usable \(40 features over 0 frames"),
])
def test_a_malformed_cmvn_entry_is_an_error_naming_the_file(tmp_path, cmvn, message):
    model, _, _ = make_model()
    state = model.file_state()
    state["cmvn"] = cmvn
    torch.save(state, tmp_path / "bad_cmvn.pt")
    with pytest.raises(TasrError, match=f"bad_cmvn.pt: {message}"):
        SpeechRecognizer.load(tmp_path / "bad_cmvn.pt")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu_and_runs_under_bf16(tmp_path):
    model, waves, lengths = make_model()
    expected, expected_lengths = model(waves, lengths)
    model.save(tmp_path / "model.pt")
    on_gpu = SpeechRecognizer.load(tmp_path / "model.pt", map_location="cuda")
    log_probs, out_lengths = on_gpu(waves.cuda(), lengths.cuda())
    torch.testing.assert_close(log_probs.cpu(), expected, atol=1e-3, rtol=1e-3)
    assert out_lengths.tolist() == expected_lengths.tolist()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        log_probs, _ = on_gpu(waves.cuda(), lengths.cuda())
    assert log_probs.dtype == torch.float32 and torch.isfinite(log_probs).all()
    assert len(on_gpu.transcribe_batch(waves, lengths)) == 3


def test_config_mistakes_are_clear_errors():
    tokenizer = train_tokenizer(["one two"], "char")
    for config, message in [({"encoder": {"d_modle": 32}}, "model config, encoder: .*d_modle"),
                            ({"encoder": {"subsampling": 5}}, "model config, encoder: subsampling"),
                            ({"encoder": {"n_heads": 0}}, "model config, encoder: .*by zero"),
                            ({"encoder": {"d_model": -4, "n_heads": 2}}, "model config, encoder: .*negative"),
                            ({"fbank": {"num_mel_bin": 40}}, "model config, fbank"),
                            ({"specaugment": {"masks": 2}}, "model config, specaugment"),
                            ({"frontend": {}}, "unknown setting.*frontend")]:
        with pytest.raises(TasrError, match=message):
            SpeechRecognizer(config, tokenizer)


def test_transcribe_batch_decodes_in_eval_mode_and_restores_the_mode():
    model, waves, lengths = make_model()
    expected = model.transcribe_batch(waves, lengths)
    model.train()
    assert model.transcribe_batch(waves, lengths) == expected  # no SpecAugment/dropout while decoding
    assert model.training
