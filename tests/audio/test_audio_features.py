"""audio.fbank / audio.mfcc against torchaudio.compliance.kaldi and kaldi_native_fbank, and batching."""

import pytest
import torch
import torchaudio.compliance.kaldi as kaldi

from tasr import audio
from audio_helpers import fsdd_speech, knf_features

WINDOWS = ["povey", "hamming", "hanning", "rectangular", "blackman"]
VARIANTS = [(bins, energy) for bins in (23, 40, 80) for energy in (False, True)]


def random_signal(sample_rate, seconds=0.6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(int(sample_rate * seconds), dtype=torch.float64) / sample_rate
    tone = 0.3 * torch.sin(2 * torch.pi * 440 * t) + 0.05  # a tone with a dc offset, plus noise
    return (tone + 0.2 * torch.randn(t.shape, generator=generator, dtype=torch.float64)).clamp(-1, 1)


def torchaudio_fbank(samples, sample_rate, **options):
    """torchaudio with Kaldi's defaults where torchaudio's differ (energy_floor 0), dither off."""
    options = {"energy_floor": 0.0, **options}
    return kaldi.fbank(samples.unsqueeze(0), sample_frequency=sample_rate, dither=0.0, **options)


def torchaudio_mfcc(samples, sample_rate, **options):
    """torchaudio with Kaldi's defaults where torchaudio's differ (energy_floor 0, use_energy true), dither off."""
    options = {"energy_floor": 0.0, "use_energy": True, **options}
    return kaldi.mfcc(samples.unsqueeze(0), sample_frequency=sample_rate, dither=0.0, **options)


def assert_close(ours, reference, tolerance, what):
    assert ours.shape == reference.shape, f"{what}: shape {list(ours.shape)} vs {list(reference.shape)}"
    difference = (ours.double() - reference.double()).abs().max().item() if ours.numel() else 0.0
    assert difference <= tolerance, f"{what}: max abs difference {difference:.2e} > {tolerance}"


@pytest.mark.parametrize("sample_rate", [8000, 16000])
@pytest.mark.parametrize("snip_edges", [True, False])
@pytest.mark.parametrize("window_type", WINDOWS)
@pytest.mark.parametrize("source", ["speech", "random"])
def test_agrees_with_torchaudio_and_kaldi_native_fbank(source, window_type, snip_edges, sample_rate):
    """Ours vs torchaudio both in float64 (the precise reference), and ours vs kaldi-native-fbank both in float32."""
    if source == "speech":
        # Kaldi's own scale: 16-bit samples as integers; ours takes [-1, 1] with int16_scale=True
        signal, scale, ours_scale = fsdd_speech(sample_rate), 32768.0, {"int16_scale": True}
    else:
        signal, scale, ours_scale = random_signal(sample_rate, seconds=0.3, seed=sample_rate), 1.0, {}
    common = dict(window_type=window_type, snip_edges=snip_edges)
    for bins, energy in VARIANTS:
        what = f"{source} {sample_rate} Hz {window_type} snip_edges={snip_edges} bins={bins} energy={energy}"
        options = dict(num_mel_bins=bins, use_energy=energy, **common)
        for kind, reference, tolerance in (("fbank", torchaudio_fbank, 1e-3), ("mfcc", torchaudio_mfcc, 1e-2)):
            compute = audio.fbank if kind == "fbank" else audio.mfcc
            ours64 = compute(signal, sample_rate, **options, **ours_scale)
            exact = reference(signal * scale, sample_rate, **options)
            assert_close(ours64, exact, tolerance, f"{kind} vs torchaudio, {what}")
            # kaldi-native-fbank computes in float32 only. In a few ill-conditioned bins (e.g. at 8 kHz
            # with 80 bins, mel bin 0 is FFT bin 1 alone, 30 dB down after preemphasis) its own rounding
            # takes it up to 9e-4 from the float64 result; there we allow twice its own deviation.
            ours32 = compute(signal.float(), sample_rate, **options, **ours_scale)
            knf = knf_features(kind, signal.float() * scale, sample_rate, **options)
            knf_error = (knf - exact).abs().max().item()
            assert_close(ours32, knf, max(tolerance, 2 * knf_error), f"{kind} vs kaldi-native-fbank, {what}")


OTHER_OPTIONS = [
    dict(raw_energy=False, use_energy=True),
    dict(use_energy=True, energy_floor=1.0),
    dict(use_energy=True, htk_compat=True),
    dict(use_log_fbank=False),
    dict(use_power=False),
    dict(remove_dc_offset=False),
    dict(preemphasis_coefficient=0.0),
    dict(preemphasis_coefficient=0.5),
    dict(round_to_power_of_two=False),
    dict(frame_length=20.0, frame_shift=12.5),
    dict(frame_length=25.0, frame_shift=30.0),  # shift longer than a frame
    dict(low_freq=100.0, high_freq=-400.0),
    dict(low_freq=0.0, high_freq=5000.0),
    dict(blackman_coeff=0.38, window_type="blackman"),
    dict(vtln_warp=0.9),
    dict(vtln_warp=1.1, vtln_low=200.0, vtln_high=5000.0),
    dict(subtract_mean=True),
]


@pytest.mark.parametrize("options", OTHER_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_every_other_kaldi_option_agrees_with_torchaudio(options):
    signal = random_signal(16000, seconds=0.5).float()
    for snip_edges in (True, False):
        ours = audio.fbank(signal, 16000, snip_edges=snip_edges, **options)
        reference = torchaudio_fbank(signal, 16000, num_mel_bins=80, snip_edges=snip_edges, **options)
        assert_close(ours, reference, 1e-3, f"fbank {options} snip_edges={snip_edges}")
        mfcc_options = {k: v for k, v in options.items() if k not in ("use_log_fbank", "use_power")}
        ours = audio.mfcc(signal, 16000, snip_edges=snip_edges, **mfcc_options)
        reference = torchaudio_mfcc(signal, 16000, snip_edges=snip_edges, **mfcc_options)
        assert_close(ours, reference, 1e-2, f"mfcc {options} snip_edges={snip_edges}")


@pytest.mark.parametrize("options", [dict(num_ceps=23, cepstral_lifter=0.0), dict(num_ceps=5, cepstral_lifter=10.0), dict(htk_compat=True, use_energy=False)])
def test_mfcc_options_agree_with_torchaudio(options):
    signal = random_signal(8000, seconds=0.5).float()
    assert_close(audio.mfcc(signal, 8000, **options), torchaudio_mfcc(signal, 8000, **options), 1e-2, f"mfcc {options}")


def test_int16_scale_is_kaldis_scale():
    """[-1, 1] input with int16_scale=True equals torchaudio on samples * 32768; without it, log-mel differs by log(32768^2)."""
    signal = random_signal(16000).float()
    scaled = audio.fbank(signal, int16_scale=True)
    assert_close(scaled, torchaudio_fbank(signal * 32768, 16000, num_mel_bins=80), 1e-3, "int16 scale")
    plain = audio.fbank(signal)
    assert torch.allclose(scaled - plain, torch.full_like(plain, 2 * torch.log(torch.tensor(32768.0)).item()), atol=1e-3)


@pytest.mark.parametrize("snip_edges", [True, False])
def test_frame_counts_for_every_length_near_the_edges(snip_edges):
    """Kaldi's frame counts (kaldi-native-fbank as the reference; torchaudio refuses N < window with snip_edges=false)."""
    signal = random_signal(16000, seconds=0.1)
    for n in [0, 1, 2, 79, 80, 81, 199, 200, 239, 240, 241, 399, 400, 401, 559, 560, 561, 1000]:
        reference = knf_features("fbank", signal[:n].float(), 16000, num_mel_bins=80, snip_edges=snip_edges)
        ours = audio.fbank(signal[:n].float(), snip_edges=snip_edges)
        assert ours.shape == (reference.shape[0], 80), f"{n} samples"
        assert audio.frame_count(n, snip_edges=snip_edges) == reference.shape[0]
        assert_close(ours, reference.view(-1, 80), 1e-3, f"{n} samples, snip_edges={snip_edges}")
    assert audio.frame_count(torch.tensor([0, 399, 400, 16000])).tolist() == [0, 0, 1, 98]


@pytest.mark.parametrize("snip_edges", [True, False])
def test_batch_with_padding_equals_one_by_one(snip_edges):
    generator = torch.Generator().manual_seed(1)
    lengths = torch.tensor([16000, 3001, 399, 400, 0, 12345, 1, 81, 560])
    waveforms = torch.randn(len(lengths), 16000, generator=generator) * 0.1
    waveforms[:, :] += 5.0 * (torch.arange(16000) >= lengths.unsqueeze(1))  # loud junk in the padding must not leak
    for module in (audio.Fbank(snip_edges=snip_edges, use_energy=True), audio.Mfcc(snip_edges=snip_edges)):
        feats, frame_lengths = module(waveforms, lengths)
        assert frame_lengths.tolist() == [audio.frame_count(n, snip_edges=snip_edges) for n in lengths.tolist()]
        assert feats.shape == (len(lengths), int(frame_lengths.max()), module.num_features)
        for i, n in enumerate(lengths.tolist()):
            alone, _ = module(waveforms[i : i + 1, :n])
            assert_close(feats[i, : frame_lengths[i]], alone[0], 1e-5, f"utterance {i} ({n} samples)")
            assert (feats[i, frame_lengths[i] :] == 0).all()


@pytest.mark.parametrize("snip_edges", [True, False])
def test_plain_path_equals_fast_path(snip_edges):
    """The plain per-block path (autograd, dither, GPU) and the fast CPU path give the same features."""
    generator = torch.Generator().manual_seed(2)
    lengths = torch.tensor([8000, 2345, 401, 0])
    waveforms = torch.randn(4, 8000, generator=generator) * 0.1 + 0.01
    for module in (audio.Fbank(snip_edges=snip_edges, use_energy=True, window_type="hamming"), audio.Mfcc(snip_edges=snip_edges)):
        fast, fast_lengths = module(waveforms, lengths)
        plain, plain_lengths = module(waveforms.clone().requires_grad_(), lengths)  # autograd takes the plain path
        assert plain.requires_grad and plain_lengths.tolist() == fast_lengths.tolist()
        assert_close(plain.detach(), fast, 1e-3, f"{type(module).__name__} snip_edges={snip_edges}")


def test_dither_adds_gaussian_noise_per_frame():
    signal = torch.zeros(16000)
    assert (audio.fbank(signal) == torch.log(torch.tensor(torch.finfo(torch.float32).eps))).all()
    dithered = audio.fbank(signal, dither=1.0)
    assert dithered.std() > 0 and not torch.equal(dithered, audio.fbank(signal, dither=1.0))


def test_leading_dimensions_are_a_batch():
    signal = torch.stack([random_signal(16000, seed=s).float() for s in range(6)]).view(2, 3, -1)
    feats = audio.fbank(signal)
    assert feats.shape[:2] == (2, 3)
    assert_close(feats[1, 2], audio.fbank(signal[1, 2]), 1e-5, "item [1, 2]")


def test_float64_and_gradient():
    signal = random_signal(16000, seconds=0.3).requires_grad_()
    feats = audio.fbank(signal)
    assert feats.dtype == torch.float64
    assert_close(feats, torchaudio_fbank(signal.detach(), 16000, num_mel_bins=80), 1e-4, "float64")
    feats.sum().backward()
    assert signal.grad is not None and torch.isfinite(signal.grad).all() and signal.grad.abs().sum() > 0
    small = random_signal(8000, seconds=0.06)[:480].requires_grad_()
    check = lambda x: audio.mfcc(x, 8000, snip_edges=False, num_mel_bins=10, num_ceps=5)  # noqa: E731
    assert torch.autograd.gradcheck(check, (small,), eps=1e-6, atol=1e-4, fast_mode=True)


def test_module_buffers_stay_out_of_the_state_dict():
    module = audio.Fbank()
    assert module.state_dict() == {}
    assert module.num_features == 80 and audio.Mfcc().num_features == 13


def test_bad_options_and_inputs_are_clear_errors():
    with pytest.raises(TypeError, match="unknown fbank option"):
        audio.fbank(torch.zeros(1000), num_mel_bin=40)
    with pytest.raises(ValueError, match="window_type"):
        audio.fbank(torch.zeros(1000), window_type="hann")
    with pytest.raises(ValueError, match="mel range"):
        audio.fbank(torch.zeros(1000), 8000, high_freq=6000)
    with pytest.raises(audio.AudioError, match="NaN"):
        audio.fbank(torch.tensor([0.0, float("nan")] * 500))
    with pytest.raises(audio.AudioError, match=r"\[1\]"):
        audio.Fbank()(torch.tensor([[0.0] * 1000, [float("inf")] * 1000]), torch.tensor([1000, 1000]))
    with pytest.raises(TypeError, match="floating point"):
        audio.Fbank()(torch.zeros(1, 1000, dtype=torch.int16))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    lengths = torch.tensor([16000, 8000, 300])
    waveforms = torch.randn(3, 16000) * 0.1
    for snip_edges in (True, False):
        module = audio.Fbank(snip_edges=snip_edges)
        cpu, cpu_lengths = module(waveforms, lengths)
        gpu, gpu_lengths = module.to("cuda")(waveforms.cuda(), lengths.cuda())
        assert gpu_lengths.tolist() == cpu_lengths.tolist()
        assert_close(gpu.cpu(), cpu, 1e-3, f"cuda snip_edges={snip_edges}")
