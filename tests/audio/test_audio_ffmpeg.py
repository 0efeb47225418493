"""audio.load through FFmpeg (PyAV): m4a/AAC, mp4 and mov video files, webm/opus, opus in mp4, wma, amr;
rate conversion, offsets, and clear errors for files without audio, unknown codecs, corrupt and truncated files."""

import io

import numpy as np
import pytest
import soundfile
import soxr
import torch

from tasr import audio
from encode_helpers import align, encode, speechlike

MAX_DELAY = 4096  # samples: more than any of these codecs' priming (AAC 1024, WMA 2048)

# suffix, codec, rate, layout, video codec, bit rate, the bound on the decoded audio: ("snr", dB) or ("corr", r)
CODECS = [
    ("m4a", "aac", 44100, "stereo", None, None, ("snr", 25)),
    ("mp4", "aac", 44100, "stereo", "mpeg4", None, ("snr", 25)),
    ("mov", "aac", 48000, "mono", "mpeg4", None, ("snr", 20)),
    ("webm", "libopus", 48000, "stereo", None, None, ("snr", 30)),
    ("mp4", "libopus", 48000, "mono", None, None, ("snr", 30)),
    ("wma", "wmav2", 44100, "stereo", None, 128000, ("snr", 30)),
    ("amr", "libopencore_amrnb", 8000, "mono", None, 12200, ("corr", 0.85)),  # a speech codec: not waveform-exact
]


def stereo_pair(mono):
    """[2, N]: left the signal, right half of it; their average is 0.75 times the signal."""
    return np.stack([mono, 0.5 * mono])


def encoded(tmp_path, suffix, codec, rate, layout, video, bit_rate, seconds=2.0):
    """(path, the mono signal load should give back) of a test file."""
    source = speechlike(rate, seconds)
    path = tmp_path / f"{codec}.{suffix}"
    if layout == "stereo":
        encode(path, stereo_pair(source), rate, codec, layout, bit_rate, video)
        return path, 0.75 * source
    encode(path, source, rate, codec, layout, bit_rate, video)
    return path, source


@pytest.mark.parametrize("suffix,codec,rate,layout,video,bit_rate,bound", CODECS,
                         ids=[f"{c[1]}-{c[0]}" + ("-video" if c[4] else "") for c in CODECS])
def test_decodes_each_container_and_codec(tmp_path, suffix, codec, rate, layout, video, bit_rate, bound):
    path, expected = encoded(tmp_path, suffix, codec, rate, layout, video, bit_rate)
    wave = audio.load(path, sample_rate=rate)
    assert wave.dtype == torch.float32 and wave.dim() == 1 and float(wave.abs().max()) <= 1.0
    assert abs(wave.numel() - len(expected)) <= MAX_DELAY
    delay, snr, correlation = align(wave.numpy(), expected, MAX_DELAY)
    kind, least = bound
    assert (snr if kind == "snr" else correlation) >= least, (delay, snr, correlation)
    info = audio.info(path)
    assert (info.sample_rate, info.channels) == (rate, 2 if layout == "stereo" else 1)
    assert info.duration == pytest.approx(2.0, abs=0.15) and "(FFmpeg)" in info.codec
    assert torch.equal(audio.load(path.read_bytes(), rate), wave)  # bytes and file objects too
    with open(path, "rb") as f:
        assert torch.equal(audio.load(f, rate), wave)


@pytest.mark.parametrize("suffix,codec,rate", [("webm", "libopus", 48000), ("m4a", "aac", 44100), ("amr", "libopencore_amrnb", 8000)])
def test_resamples_to_the_requested_rate(tmp_path, suffix, codec, rate):
    path, expected = encoded(tmp_path, suffix, codec, rate, "mono", None, None)
    native = audio.load(path, rate)
    wave = audio.load(path, 16000)
    assert torch.allclose(wave, torch.from_numpy(soxr.resample(native.numpy(), rate, 16000)), atol=1e-6)
    assert abs(wave.numel() - native.numel() * 16000 / rate) <= 1
    if codec == "libopus":  # no priming delay left: compare with the source resampled
        delay, snr, _ = align(wave.numpy(), soxr.resample(expected, rate, 16000), 100)
        assert delay == 0 and snr > 30


def test_offset_and_duration_seek(tmp_path):
    path, _ = encoded(tmp_path, "m4a", "aac", 44100, "mono", None, None, seconds=4.0)
    whole = audio.load(path, 16000)
    part = audio.load(path, 16000, offset=2.5, duration=1.0)  # seeks: mp4 counts time in samples
    native_whole, native_part = audio.load(path, 44100), audio.load(path, 44100, offset=2.5, duration=1.0)
    assert torch.allclose(native_part, native_whole[110250:110250 + 44100], atol=1e-4)
    assert part.numel() == 16000
    assert torch.allclose(part[200:-200], whole[40000:56000][200:-200], atol=1e-3)  # the resampler's edges differ
    assert torch.allclose(audio.load(path, 44100, offset=0.25, duration=0.5), native_whole[11025:33075], atol=1e-4)
    with pytest.raises(audio.AudioError, match=r"aac\.m4a: offset 9\.0 s is past the end \(4\.\d\d s\)"):
        audio.load(path, offset=9.0)


def test_offset_in_a_container_that_counts_milliseconds(tmp_path):
    path, _ = encoded(tmp_path, "webm", "libopus", 48000, "mono", None, None, seconds=4.0)
    whole = audio.load(path, 48000).numpy()
    part = audio.load(path, 48000, offset=2.5, duration=1.0).numpy()
    assert len(part) == 48000
    delay, snr, _ = align(part, whole[120000:168000], 200)
    assert abs(delay) <= 48 and snr > 40  # within the timestamps' millisecond


def test_video_without_audio_is_refused(tmp_path):
    path = encode(tmp_path / "silent film.mp4", speechlike(16000), 16000, "aac", video="mpeg4", with_audio=False)
    with pytest.raises(audio.AudioError, match=r"silent film\.mp4: no audio stream \(the file holds video \(mpeg4\)\)"):
        audio.load(path)
    with pytest.raises(audio.AudioError, match="no audio stream"):
        audio.info(path)


def test_unknown_codec_is_refused(tmp_path):
    path, _ = encoded(tmp_path, "webm", "libopus", 48000, "mono", None, None)
    data = path.read_bytes()
    assert data.count(b"A_OPUS") == 1
    unknown = tmp_path / "unknown.webm"
    unknown.write_bytes(data.replace(b"A_OPUS", b"A_ZZZZ"))  # a Matroska codec id no decoder has
    with pytest.raises(audio.AudioError, match=r"unknown\.webm: unknown audio codec"):
        audio.load(unknown)


def test_corrupt_and_truncated_files_are_refused(tmp_path):
    noise = tmp_path / "noise.m4a"
    noise.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(audio.AudioError, match=r"noise\.m4a: not an audio file, or a corrupt or truncated one"):
        audio.load(noise)
    for suffix, codec, rate, reason in [("m4a", "aac", 44100, "not an audio file, or a corrupt or truncated one"),
                                        ("webm", "libopus", 48000, r"truncated file: it holds 1\.\d\d s of the 2\.01 s"),
                                        ("wma", "wmav2", 44100, "corrupt or truncated audio"),
                                        ("amr", "libopencore_amrnb", 8000, "corrupt or truncated audio")]:
        path, _ = encoded(tmp_path, suffix, codec, rate, "mono", None, 64000 if codec == "wmav2" else None)
        data = path.read_bytes()
        cut = tmp_path / f"cut.{suffix}"
        cut.write_bytes(data[: len(data) // 2 + 1])
        with pytest.raises(audio.AudioError, match=rf"cut\.{suffix}: {reason}"):
            audio.load(cut)


def test_libsndfile_still_reads_what_it_knows(tmp_path):
    path = tmp_path / "tone.flac"
    soundfile.write(path, np.stack([speechlike(22050), np.zeros(44100)], axis=1), 22050)
    info = audio.info(path)
    assert info == audio.AudioInfo(duration=2.0, sample_rate=22050, channels=2, codec="FLAC PCM_16 (libsndfile)")
    buffer = io.BytesIO()
    soundfile.write(buffer, speechlike(16000), 16000, format="WAV", subtype="FLOAT")
    assert audio.info(buffer.getvalue()).codec == "WAV FLOAT (libsndfile)"
    assert torch.equal(audio.load(buffer.getvalue()), torch.from_numpy(speechlike(16000).astype(np.float32)))
