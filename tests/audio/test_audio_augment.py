"""GlobalCMVN, SpecAugment, speed perturbation, narrowband audio and noise."""

import json
import os
import stat

import pytest
import torch

from tasr import audio


def batch(seed=0):
    generator = torch.Generator().manual_seed(seed)
    feats = torch.randn(3, 50, 8, generator=generator) * 2 + 5
    lengths = torch.tensor([50, 30, 10])
    feats[1, 30:] = 0
    feats[2, 10:] = 0
    return feats, lengths


def test_cmvn_statistics_ignore_padding_and_normalise():
    feats, lengths = batch()
    cmvn = audio.GlobalCMVN()
    cmvn.accumulate(feats[:2], lengths[:2])
    cmvn.accumulate(feats[2, :10])  # [T, F] without lengths
    real = torch.cat([feats[0], feats[1, :30], feats[2, :10]]).double()
    mean, std = cmvn.mean_std()
    assert torch.allclose(mean, real.mean(0)) and torch.allclose(std, real.std(0, unbiased=False))
    normalised = cmvn(feats, lengths)
    flat = torch.cat([normalised[0], normalised[1, :30], normalised[2, :10]])
    assert flat.mean(0).abs().max() < 1e-5 and (flat.std(0, unbiased=False) - 1).abs().max() < 1e-4
    assert (normalised[2, 10:] == 0).all() and normalised.dtype == torch.float32


def test_cmvn_save_load_and_state_dict(tmp_path):
    feats, lengths = batch()
    cmvn = audio.GlobalCMVN(norm_vars=False)
    cmvn.accumulate(feats, lengths)
    cmvn.save(tmp_path / "cmvn.json")
    loaded = audio.GlobalCMVN.load(tmp_path / "cmvn.json")
    assert torch.equal(loaded(feats), cmvn(feats))
    state = cmvn.state_dict()
    assert all(isinstance(value, torch.Tensor) for value in state.values())
    rebuilt = audio.GlobalCMVN.from_state_dict(state)
    assert torch.equal(rebuilt(feats), cmvn(feats)) and not bool(rebuilt.norm_vars)
    json.loads((tmp_path / "cmvn.json").read_text())


def test_cmvn_file_gets_the_permissions_of_a_new_file_and_errors_name_it(tmp_path):
    cmvn = audio.GlobalCMVN()
    cmvn.accumulate(*batch())
    cmvn.save(tmp_path / "cmvn.json")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "cmvn.json").stat().st_mode) == 0o666 & ~umask
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError) as error:
        cmvn.save(tmp_path / "folder")
    assert error.value.filename == str(tmp_path / "folder")
    assert sorted(os.listdir(tmp_path)) == ["cmvn.json", "folder"]  # no temporary file left


def test_cmvn_errors(tmp_path):
    with pytest.raises(RuntimeError, match="no statistics"):
        audio.GlobalCMVN()(torch.zeros(1, 2, 3))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json: not a CMVN statistics file"):
        audio.GlobalCMVN.load(bad)
    cmvn = audio.GlobalCMVN()
    cmvn.accumulate(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="3"):
        cmvn.accumulate(torch.zeros(4, 5))


def test_specaugment_masks_only_real_frames_in_training():
    torch.manual_seed(0)
    feats, lengths = batch()
    feats = feats + 10  # no value is 0 before masking
    augment = audio.SpecAugment(num_freq_masks=2, freq_mask_width=3, num_time_masks=2, time_mask_width=20, time_mask_ratio=0.2)
    augment.eval()
    assert torch.equal(augment(feats, lengths), feats)
    augment.train()
    masked_any = False
    for _ in range(20):
        out = augment(feats, lengths)
        zero = out == 0
        masked_any |= bool(zero.any())
        # time masks: at most 2 spans of at most min(20, 0.2 * length) frames
        for b, length in enumerate(lengths.tolist()):
            frames_masked = zero[b, :length].all(1).sum().item()
            features_masked = zero[b, :length].all(0).sum().item()
            everything = bool(zero[b, :length].all())
            assert frames_masked <= 2 * int(0.2 * length) or everything
            assert features_masked <= 2 * 3 or everything  # at most 2 bands of at most 3 features
            assert torch.equal(out[b, length:], feats[b, length:])  # padding untouched
    assert masked_any


def test_specaugment_adaptive_count_and_time_warp():
    torch.manual_seed(1)
    feats = torch.arange(200, dtype=torch.float32).view(1, 200, 1).expand(2, 200, 4).contiguous() + 1
    lengths = torch.tensor([200, 100])
    augment = audio.SpecAugment(num_freq_masks=0, time_masks_per_frame=0.05, time_mask_width=5, time_mask_ratio=None, time_warp=10).train()
    out = augment(feats, lengths)
    assert out.shape == feats.shape
    assert torch.equal(out[1, 100:], feats[1, 100:])
    kept = out[0, :, 0][out[0, :, 0] != 0]
    assert (kept[1:] >= kept[:-1] - 1e-4).all()  # a warp keeps time in order
    assert (out[0, :, 0] == 0).sum() <= 10 * 5


def test_speed_perturb_changes_length_and_pitch():
    rate = 16000
    t = torch.arange(rate) / rate
    wave = torch.sin(2 * torch.pi * 500 * t)
    assert audio.speed_perturb(wave, rate, 1.0) is wave
    for factor in (0.9, 1.1):
        out = audio.speed_perturb(wave, rate, factor)
        assert abs(out.numel() - round(rate / factor)) <= 2
        spectrum = torch.fft.rfft(out).abs()
        peak_hz = spectrum.argmax().item() * rate / out.numel()
        assert abs(peak_hz - 500 * factor) < 5
    with pytest.raises(ValueError, match="factor"):
        audio.speed_perturb(wave, rate, 0)
    # tensors that need gradients (or live on a GPU) go through torchaudio's resampler instead of soxr
    resampled = audio.speed_perturb(wave.clone().requires_grad_(), rate, 1.1)
    assert resampled.requires_grad and abs(resampled.numel() - round(rate / 1.1)) <= 2


def test_narrowband_removes_what_a_lower_rate_cannot_hold():
    rate = 16000
    t = torch.arange(rate) / rate
    wave = torch.sin(2 * torch.pi * 500 * t) + torch.sin(2 * torch.pi * 6000 * t)
    out = audio.narrowband(wave, rate, 8000)
    assert out.shape == wave.shape and out.dtype == wave.dtype
    spectrum = torch.fft.rfft(out).abs()  # 1 Hz bins
    assert spectrum[500] > 0.9 * torch.fft.rfft(wave).abs()[500]  # below 4 kHz: kept
    assert spectrum[6000] < 1e-3 * spectrum[500]  # above: gone
    for bad in (0, 16000, 22050):
        with pytest.raises(ValueError, match="narrowband rate"):
            audio.narrowband(wave, rate, bad)


@pytest.mark.parametrize("slope", [0.0, 1.0, 2.0])
def test_noise_lies_at_its_snr_and_falls_with_frequency_by_its_slope(slope):
    import numpy as np

    rate = 16000
    wave = torch.sin(2 * torch.pi * 440 * torch.arange(4 * rate) / rate) * 0.3
    noisy = audio.add_noise(wave, 20.0, slope, np.random.default_rng(0))
    noise = (noisy - wave).double().numpy()
    assert noisy.shape == wave.shape and noisy.dtype == wave.dtype
    assert 10 * np.log10(wave.double().square().mean().item() / np.mean(noise ** 2)) == pytest.approx(20.0, abs=0.01)
    power = np.abs(np.fft.rfft(noise)) ** 2
    frequency = np.fft.rfftfreq(noise.size, 1 / rate)
    low, high = power[(frequency > 200) & (frequency < 400)].mean(), power[(frequency > 3200) & (frequency < 6400)].mean()
    # an octave band 4 octaves up holds 16x the bins: power per bin falls by 16^slope
    assert 10 * np.log10(low / high) == pytest.approx(10 * np.log10(16 ** slope), abs=1.5)
    again = audio.add_noise(wave, 20.0, slope, np.random.default_rng(0))
    assert torch.equal(noisy, again)
    assert audio.add_noise(wave[:0], 20.0, slope, np.random.default_rng(0)).numel() == 0
