"""Reference implementations and real speech for the audio tests."""

import numpy as np
import pytest
import soundfile
import soxr
import torch

import corpora

FSDD = corpora.fsdd.root / "recordings"


def fsdd_speech(sample_rate: int, names=("3_george_7", "7_jackson_12")) -> torch.Tensor:
    """Some real FSDD recordings (8 kHz) joined and resampled to `sample_rate`, float64 in [-1, 1],
    with a noise floor of std 1e-3 (-60 dBFS, seeded) added.

    Why the noise floor: resampled to 16 kHz, the band above 4 kHz holds only rounding noise (soxr's
    stop band is ~1e-16 below the speech), and some frames of these files are nearly silent at low
    frequencies. In such bins any float32 implementation returns its own rounding noise: measured,
    torchaudio and kaldi-native-fbank then differ from each other by up to 0.17 (16 kHz) and 4e-3
    (8 kHz, 80 bins). A real recording has a noise floor (Kaldi adds one with dither=1 by default).
    """
    corpora.fsdd.require()
    parts = [soundfile.read(FSDD / f"{name}.wav", dtype="float64")[0] for name in names]
    joined = np.concatenate(parts)
    if sample_rate != 8000:
        joined = soxr.resample(joined, 8000, sample_rate)
    joined = joined + 1e-3 * np.random.default_rng(0).standard_normal(joined.shape)
    return torch.from_numpy(joined)


def knf_features(kind: str, samples: torch.Tensor, sample_rate: int, **options) -> torch.Tensor:
    """kaldi_native_fbank's fbank/mfcc of `samples` (same scale as given), `[T, F]` float64."""
    knf = pytest.importorskip("kaldi_native_fbank")
    opts = knf.FbankOptions() if kind == "fbank" else knf.MfccOptions()
    opts.frame_opts.samp_freq = sample_rate
    opts.frame_opts.dither = 0.0
    opts.frame_opts.snip_edges = options.pop("snip_edges", True)
    opts.frame_opts.window_type = options.pop("window_type", "povey")
    opts.mel_opts.num_bins = options.pop("num_mel_bins")
    for name, value in options.items():
        setattr(opts, name, value)
    computer = knf.OnlineFbank(opts) if kind == "fbank" else knf.OnlineMfcc(opts)
    computer.accept_waveform(sample_rate, samples.float().numpy())
    computer.input_finished()
    frames = [computer.get_frame(i) for i in range(computer.num_frames_ready)]
    width = options.get("num_ceps", 13) if kind == "mfcc" else None
    if not frames:
        return torch.zeros(0, width or 0, dtype=torch.float64)
    return torch.from_numpy(np.stack(frames)).double()
