"""Reading audio into a mono float32 waveform at the model's sample rate."""

import io
import os

import numpy as np
import soundfile
import soxr
import torch

from audio.errors import AudioError

WAV_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # data chunk sizes that streaming writers leave in a WAV header


def load(source, sample_rate: int = 16000, offset: float = 0.0, duration: float | None = None) -> torch.Tensor:
    """Read audio and return a mono float32 waveform `[N]` in [-1, 1] at `sample_rate` Hz.

    `source` is one of:
      - a path (str or os.PathLike; any name the file system allows, UTF-8 or not) to anything
        libsndfile reads (wav, flac, ogg, mp3, ...);
      - raw encoded bytes, or a binary file object;
      - a `(waveform, rate)` pair, waveform `[N]` or `[C, N]` (channels first), tensor or numpy array.

    `offset` and `duration` (seconds) read only that part: a file is seeked, never read whole.
    Several channels are averaged to one. A file at another rate is resampled with soxr (high quality).
    A valid file with no samples gives an empty tensor. Raises `AudioError` naming the source and the
    reason for a missing, empty (0 bytes), truncated, non-audio or unsupported file, an offset past
    the end, or non-finite samples. A WAV file whose data chunk is shorter than its header says is
    truncated: an error, never read in part (commands skip it, or stop, as for any corrupt file).
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
        start = round(offset * rate)
        if offset > 0 and start >= len(samples):
            raise AudioError(f"{name}: offset {offset} s is past the end ({len(samples) / rate:.2f} s)")
        stop = None if duration is None else start + round(duration * rate)
        samples = samples[start:stop].astype(np.float32, copy=False)
    else:
        name, samples, rate = _read(source, offset, duration)
        if samples.ndim == 2:
            samples = samples.mean(axis=1)  # soundfile gives [N, channels]
    if not np.isfinite(samples).all():
        raise AudioError(f"{name}: contains NaN or infinite samples")
    if rate != sample_rate and samples.size > 0:
        samples = soxr.resample(samples, rate, sample_rate)
    return torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))


def _read(source, offset: float, duration: float | None):
    """(name for messages, samples [N] or [N, C] float32, rate) from a path, bytes or a file object."""
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        if not os.path.exists(name):
            raise AudioError(f"{name}: no such file")
        if os.path.isdir(name):
            raise AudioError(f"{name}: is a directory, not an audio file")
        if os.path.getsize(name) == 0:
            raise AudioError(f"{name}: empty file (0 bytes)")
        try:  # Python opens any name; libsndfile cannot open names that are not UTF-8
            file = open(name, "rb")
        except (OSError, ValueError) as error:
            raise AudioError(f"{name}: cannot open ({getattr(error, 'strerror', None) or error})") from None
        with file:
            return name, *_decode(file, name, offset, duration)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise AudioError("<bytes>: empty (0 bytes)")
        name = f"<{len(source)} bytes>"
        return name, *_decode(io.BytesIO(bytes(source)), name, offset, duration)
    if hasattr(source, "read"):
        name = getattr(source, "name", None) or "<file object>"
        return name, *_decode(source, name, offset, duration)
    raise AudioError(f"cannot read audio from a {type(source).__name__}: give a path, bytes, a file object or a (waveform, rate) pair")


def _decode(file, name: str, offset: float, duration: float | None):
    """(samples [N] or [N, C] float32, rate) of an open binary file, from `offset` for `duration` seconds."""
    _check_wav_length(file, name)
    try:
        with soundfile.SoundFile(file) as f:
            start = round(offset * f.samplerate)
            if offset > 0 and start >= f.frames:
                raise AudioError(f"{name}: offset {offset} s is past the end ({f.frames / f.samplerate:.2f} s)")
            if start:
                f.seek(start)
            frames = -1 if duration is None else round(duration * f.samplerate)
            return f.read(frames, dtype="float32", always_2d=False), f.samplerate
    except AudioError:
        raise
    except soundfile.LibsndfileError as error:
        reason = str(error.error_string) if getattr(error, "error_string", None) else str(error)
        if "Format not recognised" in reason or "unknown format" in reason.lower():
            reason = "not an audio file that libsndfile can read (format not recognised)"
        else:
            reason = f"unreadable or truncated audio ({reason})"
        raise AudioError(f"{name}: {reason}") from None
    except (RuntimeError, TypeError, ValueError) as error:
        raise AudioError(f"{name}: unreadable audio ({error})") from None


def _check_wav_length(file, name: str) -> None:
    """Raise AudioError if `file` is a WAV whose data chunk holds fewer bytes than its header says.

    libsndfile reads such a file up to where it ends and says nothing. Files that are not RIFF
    WAVE, not seekable, or whose header leaves the size unknown pass unchecked.
    """
    if not (hasattr(file, "seekable") and file.seekable()):
        return
    start = file.tell()
    try:
        riff = file.read(12)
        if riff[:4] != b"RIFF" or riff[8:] != b"WAVE":
            return
        byte_rate = 0
        while len(head := file.read(8)) == 8:
            chunk, size = head[:4], int.from_bytes(head[4:], "little")
            if chunk == b"fmt " and size >= 12:
                byte_rate = int.from_bytes(file.read(12)[8:12], "little")
                size -= 12
            elif chunk == b"data":
                if size in WAV_UNKNOWN_SIZES:
                    return
                here = file.tell()
                present = file.seek(0, io.SEEK_END) - here
                if present < size:
                    held = f"{present / byte_rate:.2f} s of {size / byte_rate:.2f} s, " if byte_rate else ""
                    raise AudioError(f"{name}: truncated file: it holds {held}{present} of the {size} bytes "
                                     "of audio its header promises")
                return
            file.seek(size + size % 2, io.SEEK_CUR)  # chunks are padded to an even size
    finally:
        file.seek(start)
