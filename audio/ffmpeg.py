"""Decoding any container and codec FFmpeg knows (m4a/AAC, mp4/mov, webm/opus, wma, amr, ...) through PyAV.

    with FFmpegReader(open("talk.m4a", "rb"), "talk.m4a") as reader:
        reader.sample_rate, reader.channels, reader.duration     # Hz, count, seconds (None: not declared)
        for piece in reader.pieces(offset=60.0, duration=10.0):  # [n] float32 mono, native rate
            ...

The file's main audio stream (FFmpeg's choice, as its command line makes it: the audio track of a
video file) is decoded; its channels are averaged to one. Samples are numbered as they come out of
the decoder, from 0 (a codec's priming samples are there unless the container says to drop them):
an offset skips that many seconds of them. An offset past SEEK_PREROLL seeks; the position then
comes from the packets' timestamps, exact where the container counts in samples (mp4, mov, m4a,
amr) and to the millisecond in webm, mkv and wma.
"""

import itertools

import av
import numpy as np

from tasr.audio.errors import AudioError

SEEK_PREROLL = 0.5  # seconds decoded and dropped before an offset after a seek: decoders need them to settle
INDEXED_FORMATS = {"mov", "mp4", "matroska", "webm", "asf"}  # their headers give the length exactly
TRUNCATED_SECONDS = 0.25  # decoded audio this much shorter than an indexed header says: the file is truncated


class FFmpegReader:
    """An open audio file (a binary file object, seekable for offsets) decoded by FFmpeg.

    Raises AudioError naming `name` for a file FFmpeg cannot open, one without an audio stream, or
    one whose codec FFmpeg cannot decode.
    """

    def __init__(self, file, name: str):
        self.name = name
        try:
            self.container = av.open(file, metadata_errors="ignore")
        except av.FFmpegError as error:
            raise AudioError(f"{name}: not an audio file, or a corrupt or truncated one (neither libsndfile nor "
                             f"FFmpeg can read it: {_reason(error)})") from None
        try:
            streams = self.container.streams
            self.stream = streams.best("audio")
            if self.stream is None:
                held = ", ".join(f"{stream.type} ({stream.codec_context.name if stream.codec_context else '?'})"
                                 for stream in streams) or "nothing"
                raise AudioError(f"{name}: no audio stream (the file holds {held})")
            if self.stream.codec_context is None:
                raise AudioError(f"{name}: unknown audio codec (FFmpeg has no decoder for it)")
        except BaseException:
            self.container.close()
            raise
        context = self.stream.codec_context
        self.sample_rate = context.sample_rate
        self.channels = context.layout.nb_channels
        self.codec = f"{context.name} in {self.container.format.name} (FFmpeg)"
        if self.stream.duration is not None:
            self.duration = float(self.stream.duration * self.stream.time_base)
        elif self.container.duration is not None:
            self.duration = self.container.duration / av.time_base
        else:
            self.duration = None
        self._formats = set(self.container.format.name.split(","))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.container.close()

    def pieces(self, offset: float = 0.0, duration: float | None = None, frames: int | None = None):
        """Mono float32 pieces `[n]` at `sample_rate`, from `offset` for `duration` seconds (None: to the end).
        The pieces are the decoder's frames (about 20 to 100 ms each), whatever `frames` asks for.

        Raises AudioError for a corrupt packet, an offset past the end, a change of sample rate, and
        (when read to the end) a file that holds less audio than its header says."""
        rate = self.sample_rate
        start = round(offset * rate)
        stop = None if duration is None else start + round(duration * rate)
        position, frames = self._seek(offset) if offset > SEEK_PREROLL else (0, self._frames())
        for frame in frames:
            samples = _mono(frame)
            begin = position
            position += len(samples)
            if position <= start:
                continue
            piece = samples[max(0, start - begin):None if stop is None else max(0, stop - begin)]
            if piece.size:
                yield piece
            if stop is not None and position >= stop:
                return
        if offset > 0 and position <= start:
            raise AudioError(f"{self.name}: offset {offset} s is past the end ({position / rate:.2f} s)")
        if duration is None and self._formats & INDEXED_FORMATS and self.duration is not None:
            if position / rate < self.duration - TRUNCATED_SECONDS:
                raise AudioError(f"{self.name}: truncated file: it holds {position / rate:.2f} s of the "
                                 f"{self.duration:.2f} s of audio its header promises")

    def _seek(self, offset: float):
        """Seek to SEEK_PREROLL s before `offset`: (position in samples, frames from there). The position
        comes from timestamps, relative to the first frame's; without them, decoding starts from the start."""
        first = next(self._frames(), None)
        if first is not None and first.pts is not None:
            target = first.time + offset - SEEK_PREROLL
            try:
                self.container.seek(int(target / self.stream.time_base), stream=self.stream)
            except av.FFmpegError:
                pass
            else:
                frames = self._frames()
                frame = next(frames, None)
                if frame is not None and frame.pts is not None:
                    position = round((frame.time - first.time) * self.sample_rate)
                    if position <= round(offset * self.sample_rate):
                        return position, itertools.chain([frame], frames)
        try:
            self.container.seek(0)
        except av.FFmpegError as error:
            raise AudioError(f"{self.name}: cannot seek to {offset} s (FFmpeg: {_reason(error)})") from None
        return 0, self._frames()

    def _frames(self):
        """The stream's decoded frames, in the codec's sample format; a corrupt packet or a change of sample rate
        is an AudioError."""
        try:
            for frame in self.container.decode(self.stream):
                if frame.sample_rate != self.sample_rate:
                    raise AudioError(f"{self.name}: the sample rate changes from {self.sample_rate} Hz to "
                                     f"{frame.sample_rate} Hz at {frame.time or 0:.2f} s")
                yield frame
        except av.FFmpegError as error:
            raise AudioError(f"{self.name}: corrupt or truncated audio (FFmpeg: {_reason(error)})") from None


def _mono(frame) -> np.ndarray:
    """The frame's samples `[n]` as float32, its channels averaged."""
    planes = frame.to_ndarray()  # planar [C, n], packed [1, n * C]
    name = frame.format.name
    if not frame.format.is_planar:
        planes = planes.reshape(-1, frame.layout.nb_channels).T
    if name.startswith(("flt", "dbl")):
        samples = planes.astype(np.float32, copy=False)
    elif name.startswith("u8"):
        samples = (planes.astype(np.float32) - 128.0) / 128.0
    else:  # s16, s32, s64: full scale is 2 ** (bits - 1)
        samples = planes.astype(np.float32) / float(2 ** (8 * planes.dtype.itemsize - 1))
    return samples.mean(axis=0) if len(samples) > 1 else samples[0]


def _reason(error: av.FFmpegError) -> str:
    return error.strerror or str(error)
