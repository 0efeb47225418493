"""Reading audio into a mono float32 waveform at the model's sample rate."""

import io
import os

import numpy as np
import soundfile
import soxr
import torch

from audio.errors import AudioError


def load(source, sample_rate: int = 16000) -> torch.Tensor:
    """Read audio and return a mono float32 waveform `[N]` in [-1, 1] at `sample_rate` Hz.

    `source` is one of:
      - a path (str or os.PathLike) to anything libsndfile reads (wav, flac, ogg, mp3, ...);
      - raw encoded bytes, or a binary file object;
      - a `(waveform, rate)` pair, waveform `[N]` or `[C, N]` (channels first), tensor or numpy array.

    Several channels are averaged to one. A file at another rate is resampled with soxr (high quality).
    A valid file with no samples gives an empty tensor. Raises `AudioError` naming the source and the
    reason for a missing, empty (0 bytes), truncated, non-audio or unsupported file, or non-finite samples.
    """
    if sample_rate is None or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
    if isinstance(source, tuple):
        name = "waveform"
        if len(source) != 2:
            raise AudioError(f"{name}: expected a (waveform, rate) pair, got a tuple of {len(source)} items")
        samples, rate = source
        samples = samples.detach().cpu().numpy() if isinstance(source[0], torch.Tensor) else np.asarray(samples)
        if samples.ndim == 2:
            samples = samples.mean(axis=0)
        elif samples.ndim != 1:
            raise AudioError(f"{name}: expected shape [N] or [channels, N], got {list(samples.shape)}")
        samples = samples.astype(np.float32, copy=False)
    else:
        name, samples, rate = _read(source)
        if samples.ndim == 2:
            samples = samples.mean(axis=1)  # soundfile gives [N, channels]
    if not np.isfinite(samples).all():
        raise AudioError(f"{name}: contains NaN or infinite samples")
    if rate != sample_rate and samples.size > 0:
        samples = soxr.resample(samples, rate, sample_rate)
    return torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))


def _read(source):
    """(name for messages, samples [N] or [N, C] float32, rate) from a path, bytes or a file object."""
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        if not os.path.exists(name):
            raise AudioError(f"{name}: no such file")
        if os.path.isdir(name):
            raise AudioError(f"{name}: is a directory, not an audio file")
        if os.path.getsize(name) == 0:
            raise AudioError(f"{name}: empty file (0 bytes)")
        stream = name
    elif isinstance(source, (bytes, bytearray, memoryview)):
        name = f"<{len(source)} bytes>"
        if len(source) == 0:
            raise AudioError("<bytes>: empty (0 bytes)")
        stream = io.BytesIO(bytes(source))
    elif hasattr(source, "read"):
        name = getattr(source, "name", None) or "<file object>"
        stream = source
    else:
        raise AudioError(f"cannot read audio from a {type(source).__name__}: give a path, bytes, a file object or a (waveform, rate) pair")
    try:
        samples, rate = soundfile.read(stream, dtype="float32", always_2d=False)
    except soundfile.LibsndfileError as error:
        reason = str(error.error_string) if getattr(error, "error_string", None) else str(error)
        if "Format not recognised" in reason or "unknown format" in reason.lower():
            reason = "not an audio file that libsndfile can read (format not recognised)"
        else:
            reason = f"unreadable or truncated audio ({reason})"
        raise AudioError(f"{name}: {reason}") from None
    except (RuntimeError, TypeError, ValueError) as error:
        raise AudioError(f"{name}: unreadable audio ({error})") from None
    return name, samples, rate
