"""Media files for the audio tests, encoded through PyAV in a temporary folder. The few made with an encoder
that some PyAV wheels lack are kept in tests/media and copied from there (TASR_STORE_MEDIA=1 writes them)."""

import hashlib
import os
import shutil
from pathlib import Path

import av
import numpy as np

VIDEO_RATE = 25  # frames per second of the test videos (64 x 48, a grey level that changes)
MEDIA = Path(__file__).parent / "media"
STORED_CODECS = {"libopencore_amrnb"}  # PyAV 18.1.1 decodes AMR but no longer encodes it


def speechlike(rate: int, seconds: float = 2.0) -> np.ndarray:
    """`[N]` float64 in [-0.5, 0.5]: two chirps (200-1800 Hz, 700-3000 Hz) under a syllable-rate envelope,
    aperiodic so that a cross-correlation finds one delay."""
    t = np.arange(round(rate * seconds)) / rate
    sweep = lambda f0, f1: np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * seconds)))  # noqa: E731
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 3.3 * t) * np.sin(2 * np.pi * 0.7 * t + 1.0)
    return 0.3 * envelope * (sweep(200, 1800) + 0.5 * sweep(700, 3000))


def encode(path, samples, rate: int, codec: str, layout: str = "mono", bit_rate: int | None = None,
           video: str | None = None, with_audio: bool = True, container_format: str | None = None):
    """Write `samples` (`[N]`, or `[C, N]` channels first, float in [-1, 1]) at `rate` Hz as `codec` in the
    container that `path`'s suffix names (or `container_format`); `video` adds a video stream of that
    codec, as long as the audio; `with_audio=False` writes the video alone."""
    samples = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    if codec not in STORED_CODECS or video or not with_audio:
        return encode_with_pyav(path, samples, rate, codec, layout, bit_rate, video, with_audio, container_format)
    pcm = np.round(samples * 32767).astype(np.int16)  # 16-bit: the same on CPUs whose sin() differ in the last bit
    digest = hashlib.sha256(pcm.tobytes()).hexdigest()[:12]
    stored = MEDIA / f"{codec}-{rate}hz-{bit_rate or 'default'}bps-{layout}-{digest}{Path(path).suffix}"
    if os.environ.get("TASR_STORE_MEDIA"):
        MEDIA.mkdir(exist_ok=True)
        encode_with_pyav(stored, samples, rate, codec, layout, bit_rate, None, True, container_format)
    if not stored.exists():
        raise FileNotFoundError(f"{stored}: not stored; write it with TASR_STORE_MEDIA=1 and a PyAV that has {codec}")
    shutil.copyfile(stored, path)
    return path


def encode_with_pyav(path, samples, rate, codec, layout, bit_rate, video, with_audio, container_format):
    """encode() through PyAV's encoders; `samples` is `[C, N]`."""
    seconds = samples.shape[1] / rate
    with av.open(str(path), "w", format=container_format) as out:
        picture = None
        if video:
            picture = out.add_stream(video, rate=VIDEO_RATE)
            picture.width, picture.height, picture.pix_fmt = 64, 48, "yuv420p"
        if with_audio:
            sound = out.add_stream(codec, rate=rate, layout=layout)
            if bit_rate:
                sound.bit_rate = bit_rate
            context = sound.codec_context
            resampler = av.AudioResampler(format=context.format.name, layout=layout, rate=rate,
                                          frame_size=context.frame_size or 1024)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=layout)
            frame.sample_rate = rate
            for piece in resampler.resample(frame) + resampler.resample(None):
                out.mux(sound.encode(piece))
            out.mux(sound.encode(None))
        if video:
            for i in range(round(seconds * VIDEO_RATE)):
                image = np.full((48, 64, 3), 8 * i % 256, np.uint8)
                out.mux(picture.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            out.mux(picture.encode(None))
    return path


def align(decoded: np.ndarray, source: np.ndarray, max_delay: int):
    """Line `decoded` up with `source` (codecs add a priming delay, some remove one): returns (delay in
    samples, SNR in dB, correlation) over the overlap, the delay in [-max_delay, max_delay] that
    maximises the cross-correlation."""
    decoded, source = np.asarray(decoded, np.float64), np.asarray(source, np.float64)
    size = 1 << int(np.ceil(np.log2(len(decoded) + len(source))))
    cross = np.fft.irfft(np.fft.rfft(decoded, size) * np.conj(np.fft.rfft(source, size)), size)
    lags = np.r_[np.arange(0, max_delay + 1), np.arange(-max_delay, 0)]
    delay = int(lags[np.argmax(cross[lags])])
    a, b = (decoded[delay:], source) if delay >= 0 else (decoded, source[-delay:])
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    snr = 10 * np.log10(np.sum(b * b) / max(np.sum((a - b) ** 2), 1e-30))
    return delay, snr, float(np.corrcoef(a, b)[0, 1])
