"""Speed perturbation (Ko et al., 2015), as Kaldi/ESPnet/WeNet recipes do it with `sox speed`,
narrowband audio (a recording made at a lower sample rate, such as 8 kHz telephone speech) and
background noise of any colour at a given signal-to-noise ratio."""

import numpy as np
import soxr
import torch
import torchaudio


def speed_perturb(waveform: torch.Tensor, sample_rate: int, factor: float) -> torch.Tensor:
    """Play `waveform [N]` (or `[C, N]`) `factor` times faster: both tempo and pitch change, length N / factor.

    Done by resampling from sample_rate * factor to sample_rate (soxr on CPU, torchaudio's resampler on
    other devices). factor 1.0 returns the input unchanged; typical factors are 0.9, 1.0, 1.1.
    """
    if not factor > 0:
        raise ValueError(f"speed factor must be > 0, got {factor}")
    if factor == 1.0 or waveform.shape[-1] == 0:
        return waveform
    if waveform.device.type == "cpu" and waveform.dim() in (1, 2) and not waveform.requires_grad:
        samples = waveform.detach().numpy()
        samples = samples.T if samples.ndim == 2 else samples  # soxr wants [N, channels]
        out = soxr.resample(np.ascontiguousarray(samples), sample_rate * factor, sample_rate)
        out = out.T if out.ndim == 2 else out
        return torch.from_numpy(np.ascontiguousarray(out)).to(waveform.dtype)
    source = int(round(sample_rate * factor))
    return torchaudio.functional.resample(waveform, source, int(sample_rate))


def narrowband(waveform: torch.Tensor, sample_rate: int, rate: int) -> torch.Tensor:
    """`waveform [N]` (CPU) as if recorded at `rate` Hz and then resampled to `sample_rate`: nothing
    above rate / 2 is left. Same length N. A model trained only on full-band audio fails on such
    input (an 8 kHz file holds no energy where the upper half of a 16 kHz model's mel bins look)."""
    if not 0 < rate < sample_rate:
        raise ValueError(f"narrowband rate must be between 0 and the sample rate {sample_rate} Hz, got {rate}")
    samples = waveform.detach().numpy()
    out = soxr.resample(soxr.resample(samples, sample_rate, rate), rate, sample_rate)
    out = np.pad(out[: samples.shape[-1]], (0, max(0, samples.shape[-1] - out.shape[-1])))
    return torch.from_numpy(np.ascontiguousarray(out)).to(waveform.dtype)


def add_noise(waveform: torch.Tensor, snr_db: float, slope: float, generator: np.random.Generator) -> torch.Tensor:
    """`waveform [N]` (CPU) plus stationary Gaussian noise `snr_db` dB below its mean power, whose power
    spectrum falls as 1 / f^slope: 0 white, 1 pink, 2 brown (a hum, a fan, a room, a street)."""
    samples = waveform.detach().numpy()
    n = samples.shape[-1]
    if n == 0:
        return waveform
    spectrum = np.fft.rfft(generator.standard_normal(n))
    spectrum[1:] *= np.arange(1, spectrum.shape[-1]) ** (-slope / 2)  # power ~ f^-slope
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n)
    power = float(np.mean(samples.astype(np.float64) ** 2))
    noise *= np.sqrt(power / max(float(np.mean(noise ** 2)), 1e-20) * 10 ** (-snr_db / 10))
    return torch.from_numpy((samples + noise).astype(np.float32)).to(waveform.dtype)
