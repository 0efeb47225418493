"""Speed perturbation (Ko et al., 2015), as Kaldi/ESPnet/WeNet recipes do it with `sox speed`."""

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
