"""Reading audio into a mono float32 waveform at the model's sample rate: libsndfile first, FFmpeg for the rest.

libsndfile reads wav, flac, ogg (vorbis, opus), mp3, aiff, SPHERE, ... exactly and fast; a file whose
format it does not recognise goes to FFmpeg (audio/ffmpeg.py): m4a/AAC, mp4/mov (the audio track of
a video), webm/mkv, wma, amr and whatever else FFmpeg decodes.
"""

import contextlib
import io
import os
from dataclasses import dataclass

import numpy as np
import soundfile
import soxr
import torch

from tasr.audio.errors import AudioError
from tasr.audio.ffmpeg import FFmpegReader

WAV_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # data chunk sizes that streaming writers leave in a WAV header
NOT_FOR_LIBSNDFILE = (1, 4)  # libsndfile's "format not recognised" and "unsupported encoding": FFmpeg's turn
FILE_SUFFIXES = frozenset({  # of the files `load` reads, for finding them in folders
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".au", ".snd", ".sph", ".nist",
    ".w64", ".caf", ".rf64", ".voc", ".wv",  # libsndfile
    ".m4a", ".m4b", ".aac", ".mp4", ".m4v", ".mov", ".3gp", ".webm", ".mkv", ".mka", ".wma", ".wmv", ".asf",
    ".amr", ".ac3", ".avi",  # FFmpeg
})


@dataclass(frozen=True)
class AudioInfo:
    """What an audio file holds: `duration` in seconds (exact with libsndfile; as the container declares it
    with FFmpeg, None where it does not), `sample_rate` in Hz, `channels`, and `codec` (and who decodes it)."""

    duration: float | None
    sample_rate: int
    channels: int
    codec: str


def load(source, sample_rate: int = 16000, offset: float = 0.0, duration: float | None = None) -> torch.Tensor:
    """Read audio and return a mono float32 waveform `[N]` in [-1, 1] at `sample_rate` Hz.

    `source` is one of:
      - a path (str or os.PathLike; any name the file system allows, UTF-8 or not) to anything
        libsndfile reads (wav, flac, ogg, mp3, ...) or FFmpeg decodes (m4a/AAC, mp4, mov, webm/opus,
        wma, amr, ...: the first audio stream);
      - raw encoded bytes, or a binary file object;
      - a `(waveform, rate)` pair, waveform `[N]` or `[C, N]` (channels first), tensor or numpy array.

    `offset` and `duration` (seconds) read only that part: a file is seeked, never read whole (FFmpeg:
    to the container's timestamp precision, see audio/ffmpeg.py). Several channels are averaged to one.
    A file at another rate is resampled with soxr (high quality). A valid file with no samples gives an
    empty tensor. Raises `AudioError` naming the source and the reason for a missing, empty (0 bytes),
    truncated, corrupt, non-audio or unsupported file, one with no audio stream or an unknown codec, an
    offset past the end, or non-finite samples. A file shorter than its header says (a WAV data chunk,
    an mp4/webm/wma index) is truncated: an error, never read in part.
    """
    check_read_arguments(sample_rate, offset, duration)
    if isinstance(source, tuple):
        name, samples, rate = _from_pair(source, offset, duration)
    else:
        with open_audio(source) as reader:
            name, rate = reader.name, reader.sample_rate
            pieces = list(reader.pieces(offset, duration))
        samples = np.concatenate(pieces) if len(pieces) > 1 else pieces[0] if pieces else np.zeros(0, np.float32)
    if not np.isfinite(samples).all():
        raise AudioError(f"{name}: contains NaN or infinite samples")
    if rate != sample_rate and samples.size > 0:
        samples = soxr.resample(samples, rate, sample_rate)
    return torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))


def info(source) -> AudioInfo:
    """Duration, sample rate, channels and codec of a path, bytes or binary file object, without decoding it.

    Raises AudioError as `load` does."""
    with open_audio(source) as reader:
        return AudioInfo(reader.duration, reader.sample_rate, reader.channels, reader.codec)


@contextlib.contextmanager
def open_audio(source):
    """Open a path, bytes or binary file object for reading: a `SndfileReader` where libsndfile knows the
    format, else an `FFmpegReader` (audio/ffmpeg.py). Both have `name`, `sample_rate`, `channels`, `duration`,
    `codec` and `pieces(offset, duration, frames)`. Use as a context manager; raises AudioError."""
    name, file, owned = _open_source(source)
    try:
        with _reader(file, name) as reader:
            yield reader
    finally:
        if owned:
            file.close()


class SndfileReader:
    """A file libsndfile reads. Raises AudioError, or `_NotForLibsndfile` for formats it does not know."""

    def __init__(self, file, name: str):
        self.name = name
        try:
            self.file = soundfile.SoundFile(file)
        except soundfile.LibsndfileError as error:
            if error.code in NOT_FOR_LIBSNDFILE:
                raise _NotForLibsndfile(_libsndfile_reason(error)) from None
            raise AudioError(f"{name}: unreadable or truncated audio ({_libsndfile_reason(error)})") from None
        except (RuntimeError, TypeError, ValueError) as error:
            raise AudioError(f"{name}: unreadable audio ({error})") from None
        f = self.file
        self.sample_rate, self.channels = f.samplerate, f.channels
        self.duration = f.frames / f.samplerate
        self.codec = f"{f.format} {f.subtype} (libsndfile)"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()

    def pieces(self, offset: float = 0.0, duration: float | None = None, frames: int | None = None):
        """Mono float32 pieces `[n]` at `sample_rate`, from `offset` for `duration` seconds (None: to the end),
        `frames` samples each (None: all in one piece)."""
        f = self.file
        start = round(offset * f.samplerate)
        if offset > 0 and start >= f.frames:
            raise AudioError(f"{self.name}: offset {offset} s is past the end ({f.frames / f.samplerate:.2f} s)")
        left = -1 if duration is None else round(duration * f.samplerate)
        try:
            if start:
                f.seek(start)
            while left != 0:
                count = left if frames is None else frames if left < 0 else min(frames, left)
                data = f.read(count, dtype="float32", always_2d=False)
                if not len(data):
                    break
                yield data.mean(axis=1) if data.ndim == 2 else data  # soundfile gives [n, channels]
                left = max(0, left - len(data)) if left > 0 else left
                if frames is None:
                    break
        except soundfile.LibsndfileError as error:
            raise AudioError(f"{self.name}: unreadable or truncated audio ({_libsndfile_reason(error)})") from None
        except (RuntimeError, TypeError, ValueError) as error:
            raise AudioError(f"{self.name}: unreadable audio ({error})") from None


class _NotForLibsndfile(Exception):
    """libsndfile does not know this format (or encoding): FFmpeg may."""


def _reader(file, name: str):
    """A SndfileReader, else (for formats libsndfile does not know, in a seekable file) an FFmpegReader."""
    _check_wav_length(file, name)
    start = file.tell() if hasattr(file, "seekable") and file.seekable() else None
    try:
        return SndfileReader(file, name)
    except _NotForLibsndfile as reason:
        if start is None:
            raise AudioError(f"{name}: not an audio file that libsndfile can read ({reason}); FFmpeg needs a "
                             "seekable file") from None
    file.seek(start)
    return FFmpegReader(file, name)


def _libsndfile_reason(error) -> str:
    return str(error.error_string) if getattr(error, "error_string", None) else str(error)


def check_read_arguments(sample_rate, offset, duration):
    """Raise ValueError for a sample rate that is not positive, or a negative offset or duration (seconds)."""
    if sample_rate is None or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
    if not offset >= 0:
        raise ValueError(f"offset must be >= 0 seconds, got {offset!r}")
    if duration is not None and not duration >= 0:
        raise ValueError(f"duration must be >= 0 seconds or None, got {duration!r}")


def _from_pair(source: tuple, offset: float, duration: float | None):
    """(name, samples [N] float32, rate) of a (waveform [N] or [C, N], rate) pair, from `offset` for `duration` s."""
    name = "waveform"
    if len(source) != 2:
        raise AudioError(f"{name}: expected a (waveform, rate) pair, got a tuple of {len(source)} items")
    samples, rate = source
    samples = samples.detach().cpu().numpy() if isinstance(samples, torch.Tensor) else np.asarray(samples)
    if samples.ndim == 2:
        samples = samples.mean(axis=0)
    elif samples.ndim != 1:
        raise AudioError(f"{name}: expected shape [N] or [channels, N], got {list(samples.shape)}")
    start = round(offset * rate)
    if offset > 0 and start >= len(samples):
        raise AudioError(f"{name}: offset {offset} s is past the end ({len(samples) / rate:.2f} s)")
    stop = None if duration is None else start + round(duration * rate)
    return name, samples[start:stop].astype(np.float32, copy=False), rate


def _open_source(source):
    """(name for messages, binary file object, whether we opened it) for a path, bytes or a file object."""
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        if not os.path.exists(name):
            raise AudioError(f"{name}: no such file")
        if os.path.isdir(name):
            raise AudioError(f"{name}: is a directory, not an audio file")
        if os.path.getsize(name) == 0:
            raise AudioError(f"{name}: empty file (0 bytes)")
        try:  # Python opens any name; libsndfile cannot open names that are not UTF-8
            return name, open(name, "rb"), True
        except (OSError, ValueError) as error:
            raise AudioError(f"{name}: cannot open ({getattr(error, 'strerror', None) or error})") from None
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise AudioError("<bytes>: empty (0 bytes)")
        return f"<{len(source)} bytes>", io.BytesIO(bytes(source)), True
    if hasattr(source, "read"):
        return getattr(source, "name", None) or "<file object>", source, False
    raise AudioError(f"cannot read audio from a {type(source).__name__}: give a path, bytes, a file object or a (waveform, rate) pair")


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
