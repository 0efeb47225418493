"""audio.load: formats, channels, resampling, and clear errors for bad input."""

import io
import os

import numpy as np
import pytest
import soundfile
import torch

from tasr import audio
from audio_helpers import FSDD


def tone(rate, seconds=0.5, channels=1):
    t = np.arange(int(rate * seconds)) / rate
    wave = 0.5 * np.sin(2 * np.pi * 440 * t)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


@pytest.mark.usefixtures("fsdd_root")
def test_reads_real_speech_as_float32_mono_at_the_requested_rate():
    path = FSDD / "0_george_0.wav"
    native, rate = soundfile.read(path, dtype="float32")
    same = audio.load(path, sample_rate=rate)
    assert same.dtype == torch.float32 and same.shape == (len(native),)
    assert torch.equal(same, torch.from_numpy(native))
    upsampled = audio.load(str(path), sample_rate=16000)
    assert abs(upsampled.numel() - 2 * len(native)) <= 1 and upsampled.abs().max() <= 1.0


@pytest.mark.parametrize("suffix,subtype", [(".wav", "PCM_16"), (".flac", "PCM_16"), (".ogg", "VORBIS"), (".wav", "FLOAT")])
def test_formats_channels_and_resampling(tmp_path, suffix, subtype):
    path = tmp_path / f"tone{suffix}"
    soundfile.write(path, tone(22050, channels=2), 22050, subtype=subtype)
    wave = audio.load(path, sample_rate=16000)
    assert wave.dtype == torch.float32 and wave.dim() == 1
    assert abs(wave.numel() - 8000) <= 2
    assert 0.4 < wave.abs().max() <= 0.55  # the two channels averaged (lossy codecs overshoot a little)


def test_bytes_file_objects_and_waveform_pairs():
    buffer = io.BytesIO()
    soundfile.write(buffer, tone(16000), 16000, format="WAV", subtype="PCM_16")
    data = buffer.getvalue()
    from_bytes = audio.load(data)
    from_file = audio.load(io.BytesIO(data))
    assert torch.equal(from_bytes, from_file) and from_bytes.numel() == 8000
    stereo = torch.from_numpy(tone(8000, channels=2).T.copy())
    pair = audio.load((stereo, 8000), sample_rate=16000)
    assert pair.dtype == torch.float32 and abs(pair.numel() - 8000) <= 1
    assert torch.equal(audio.load((from_bytes, 16000)), from_bytes)


def test_missing_file(tmp_path):
    with pytest.raises(audio.AudioError, match=r"nothere\.wav: no such file"):
        audio.load(tmp_path / "nothere.wav")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(audio.AudioError, match=r"empty\.wav: empty file \(0 bytes\)"):
        audio.load(path)
    with pytest.raises(audio.AudioError, match="empty"):
        audio.load(b"")


def test_text_file_named_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 10)
    with pytest.raises(audio.AudioError, match=r"notes\.wav: not an audio file"):
        audio.load(path)


def test_truncated_flac(tmp_path):
    path = tmp_path / "cut.flac"
    buffer = io.BytesIO()
    soundfile.write(buffer, np.random.default_rng(0).uniform(-0.5, 0.5, 16000), 16000, format="FLAC")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(audio.AudioError, match=r"cut\.flac: unreadable or truncated"):
        audio.load(path)


def test_zero_length_audio_gives_zero_frames(tmp_path):
    path = tmp_path / "nothing.wav"
    soundfile.write(path, np.zeros(0), 16000)
    wave = audio.load(path)
    assert wave.shape == (0,)
    assert audio.fbank(wave).shape == (0, 80)
    assert audio.mfcc(wave).shape == (0, 13)
    feats, frame_lengths = audio.Fbank()(wave.view(1, 0))
    assert feats.shape == (1, 0, 80) and frame_lengths.tolist() == [0]


def test_shorter_than_one_frame_gives_zero_frames_without_crashing():
    short = torch.rand(399) - 0.5  # one sample short of a 25 ms frame at 16 kHz
    assert audio.fbank(short).shape == (0, 80)
    assert audio.fbank(short, snip_edges=False).shape == (2, 80)  # Kaldi: (399 + 80) // 160 frames, edges reflected
    feats, frame_lengths = audio.Fbank()(torch.rand(2, 500), torch.tensor([100, 500]))
    assert frame_lengths.tolist() == [0, 1] and (feats[0] == 0).all()


def test_nan_samples_are_a_clear_error(tmp_path):
    samples = np.zeros(16000, dtype=np.float32)
    samples[5000] = np.nan
    path = tmp_path / "nan.wav"
    soundfile.write(path, samples, 16000, subtype="FLOAT")
    with pytest.raises(audio.AudioError, match=r"nan\.wav: contains NaN or infinite samples"):
        audio.load(path)
    with pytest.raises(audio.AudioError, match="NaN"):
        audio.fbank(torch.from_numpy(samples))
    with pytest.raises(audio.AudioError, match="NaN"):
        audio.load((torch.from_numpy(samples), 16000))


def test_unsupported_source_type():
    with pytest.raises(audio.AudioError, match="cannot read audio from a int"):
        audio.load(42)


def wav_bytes(samples, rate=16000):
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_truncated_wav_is_an_error_not_half_the_audio(tmp_path):
    whole = wav_bytes(tone(16000, seconds=1.0))  # 44-byte header, then 32000 bytes of samples
    path = tmp_path / "cut.wav"
    path.write_bytes(whole[: 44 + 16000])
    truncated = r"cut\.wav: truncated file: it holds 0\.50 s of 1\.00 s, 16000 of the 32000 bytes"
    with pytest.raises(audio.AudioError, match=truncated):
        audio.load(path)
    with pytest.raises(audio.AudioError, match=truncated):
        audio.load(path, offset=0.1, duration=0.2)  # even a part that is there: the file is corrupt
    with pytest.raises(audio.AudioError, match="truncated file"):
        audio.load(path.read_bytes())
    # a header that leaves the length unknown (as streaming writers do) is read to the end
    streamed = bytearray(whole)
    streamed[40:44] = (0xFFFFFFFF).to_bytes(4, "little")
    assert audio.load(bytes(streamed)).numel() == 16000
    assert audio.load(whole + b"LIST\x04\x00\x00\x00INFO").numel() == 16000  # a chunk after the data


def test_offset_and_duration_read_a_part(tmp_path):
    samples = np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype(np.float32)
    path = tmp_path / "noise.wav"
    soundfile.write(path, samples, 16000, subtype="FLOAT")
    assert torch.equal(audio.load(path, offset=0.25, duration=0.5), torch.from_numpy(samples[4000:12000]))
    assert torch.equal(audio.load((samples, 16000), offset=0.25, duration=0.5), torch.from_numpy(samples[4000:12000]))
    with pytest.raises(audio.AudioError, match=r"noise\.wav: offset 2\.0 s is past the end \(1\.00 s\)"):
        audio.load(path, offset=2.0)


def test_file_name_that_is_not_utf8(tmp_path):
    path = tmp_path / os.fsdecode(b"bad\xff.wav")  # as Python gives such a name (surrogate escape)
    with open(path, "wb") as f:
        f.write(wav_bytes(tone(16000)))
    assert audio.load(path).numel() == 8000
    assert audio.load(str(path), offset=0.25).numel() == 4000


def test_offset_and_duration_must_not_be_negative(tmp_path):
    path = tmp_path / "tone.wav"
    soundfile.write(path, tone(16000), 16000)
    with pytest.raises(ValueError, match="offset must be >= 0 seconds, got -0.5"):
        audio.load(path, offset=-0.5)
    with pytest.raises(ValueError, match="duration must be >= 0 seconds or None, got -1"):
        audio.load(path, duration=-1)
    assert audio.load(path, duration=0.0).numel() == 0


def test_info_without_decoding(tmp_path):
    path = tmp_path / "tone.wav"
    soundfile.write(path, tone(22050, seconds=0.5, channels=2), 22050, subtype="PCM_24")
    assert audio.info(path) == audio.AudioInfo(duration=0.5, sample_rate=22050, channels=2, codec="WAV PCM_24 (libsndfile)")
    with pytest.raises(audio.AudioError, match=r"nothere\.wav: no such file"):
        audio.info(tmp_path / "nothere.wav")
    assert {".wav", ".flac", ".m4a", ".mp4", ".webm", ".wma", ".amr"} <= audio.FILE_SUFFIXES
