"""The fixed matrices of Kaldi's features: window functions, mel filters, DCT and lifter.

All are computed in float64 and cast by the caller.
"""

import math

import torch

from tasr.audio.options import FrameOptions, MelOptions


def window(opts: FrameOptions) -> torch.Tensor:
    """Kaldi's window `[window_size]` (float64); a = 2 pi / (size - 1), as in FeatureWindowFunction."""
    size = opts.window_size
    a = 2 * math.pi / (size - 1)
    i = torch.arange(size, dtype=torch.float64)
    kind = opts.window_type
    if kind == "hanning":
        return 0.5 - 0.5 * torch.cos(a * i)
    if kind == "hamming":
        return 0.54 - 0.46 * torch.cos(a * i)
    if kind == "povey":  # like hanning but goes to zero at the edges more slowly
        return (0.5 - 0.5 * torch.cos(a * i)).pow(0.85)
    if kind == "rectangular":
        return torch.ones(size, dtype=torch.float64)
    if kind == "blackman":
        c = opts.blackman_coeff
        return c - 0.5 * torch.cos(a * i) + (0.5 - c) * torch.cos(2 * a * i)
    raise ValueError(f"unknown window_type {kind!r}")


def mel_scale(freq):
    """Hz to mel: 1127 ln(1 + f / 700) (Kaldi's MelScale)."""
    return 1127.0 * torch.log1p(torch.as_tensor(freq, dtype=torch.float64) / 700.0)


def inverse_mel_scale(mel):
    return 700.0 * (torch.exp(torch.as_tensor(mel, dtype=torch.float64) / 1127.0) - 1.0)


def vtln_warp_freq(vtln_low, vtln_high, low_freq, high_freq, warp, freq):
    """Kaldi's piecewise-linear VTLN frequency warp (MelBanks::VtlnWarpFreq), for a tensor of Hz."""
    if warp == 1.0:
        return freq
    # the inflection points are scaled so that they stay inside [low_freq, high_freq] after warping
    lower = vtln_low * max(1.0, warp)
    upper = vtln_high * min(1.0, warp)
    scale = 1.0 / warp
    f_low = scale * lower
    f_high = scale * upper
    left_slope = (f_low - low_freq) / (lower - low_freq)
    right_slope = (high_freq - f_high) / (high_freq - upper)
    return torch.where(
        (freq < low_freq) | (freq > high_freq),
        freq,
        torch.where(
            freq < lower,
            low_freq + left_slope * (freq - low_freq),
            torch.where(freq < upper, scale * freq, high_freq + right_slope * (freq - high_freq)),
        ),
    )


def mel_banks(frame: FrameOptions, mel: MelOptions) -> torch.Tensor:
    """Kaldi's triangular filters as a matrix `[padded_window_size // 2 + 1, num_mel_bins]` (float64 values).

    Filter b spans mels (m_low + b d, m_low + (b + 2) d) with its peak at m_low + (b + 1) d,
    d = (m_high - m_low) / (num_bins + 1). FFT bin i (frequency i * rate / fft_size) gets the
    triangle's height at its mel value; bins on the edges and the Nyquist bin get 0, as in Kaldi.
    Computed in float32 like Kaldi (BaseFloat) and torchaudio: where a band holds almost no energy
    next to a loud one, the weights' last bits decide the log, so we round as they do.
    """
    low_freq, high_freq = mel.edges(frame.sample_rate)
    num_bins = mel.num_mel_bins
    fft_size = frame.padded_window_size
    num_fft_bins = fft_size // 2
    nyquist = 0.5 * frame.sample_rate
    vtln_high = mel.vtln_high if mel.vtln_high > 0 else mel.vtln_high + nyquist
    if mel.vtln_warp != 1.0 and not (low_freq < mel.vtln_low < vtln_high < high_freq and mel.vtln_low > 0):
        raise ValueError(
            f"bad VTLN settings: need low_freq < vtln_low < vtln_high < high_freq, got {low_freq}, "
            f"{mel.vtln_low}, {vtln_high}, {high_freq}"
        )
    f32 = torch.float32
    mel_low = 1127.0 * math.log(1.0 + low_freq / 700.0)
    mel_high = 1127.0 * math.log(1.0 + high_freq / 700.0)
    delta = (mel_high - mel_low) / (num_bins + 1)
    b = torch.arange(num_bins, dtype=f32).unsqueeze(1)
    left, center, right = mel_low + b * delta, mel_low + (b + 1.0) * delta, mel_low + (b + 2.0) * delta
    if mel.vtln_warp != 1.0:
        def warp(m):  # Kaldi warps the edges of each filter in Hz
            hz = vtln_warp_freq(mel.vtln_low, vtln_high, low_freq, high_freq, mel.vtln_warp, inverse_mel_scale(m))
            return mel_scale(hz).to(f32)

        left, center, right = warp(left), warp(center), warp(right)
    freq = frame.sample_rate / fft_size * torch.arange(num_fft_bins, dtype=f32)
    m = (1127.0 * (1.0 + freq / 700.0).log()).unsqueeze(0)
    up = (m - left) / (center - left)
    down = (right - m) / (right - center)
    weights = torch.where(m <= center, up, down)
    weights = torch.where((m > left) & (m < right), weights, torch.zeros((), dtype=f32))
    banks = torch.zeros(num_fft_bins + 1, num_bins, dtype=torch.float64)
    banks[:num_fft_bins] = weights.T.double()
    return banks


def dct_matrix(num_bins: int, num_ceps: int) -> torch.Tensor:
    """Kaldi's orthonormal DCT-II rows 0..num_ceps-1, transposed: `[num_bins, num_ceps]` (float64)."""
    n = torch.arange(num_bins, dtype=torch.float64)
    k = torch.arange(num_ceps, dtype=torch.float64).unsqueeze(1)
    matrix = torch.cos(math.pi / num_bins * (n + 0.5) * k) * math.sqrt(2.0 / num_bins)
    matrix[0] = math.sqrt(1.0 / num_bins)
    return matrix.T.contiguous()


def lifter(num_ceps: int, q: float) -> torch.Tensor:
    """Kaldi's cepstral lifter `[num_ceps]`: 1 + Q/2 sin(pi i / Q), or ones when Q == 0."""
    i = torch.arange(num_ceps, dtype=torch.float64)
    if q == 0:
        return torch.ones(num_ceps, dtype=torch.float64)
    return 1.0 + 0.5 * q * torch.sin(math.pi * i / q)
