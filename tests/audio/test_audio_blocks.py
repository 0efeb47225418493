"""audio.stream_blocks: block-wise reading with streaming resampling gives audio.load's waveform, in bounded memory."""

import io

import numpy as np
import pytest
import soundfile
import torch

from tasr import audio
from encode_helpers import encode, speechlike


def noise(rate, seconds, channels=1, seed=0):
    samples = np.random.default_rng(seed).uniform(-0.5, 0.5, (round(rate * seconds), channels))
    return samples[:, 0] if channels == 1 else samples


def joined(path, sample_rate, **options):
    blocks = list(audio.stream_blocks(path, sample_rate, **options))
    assert all(b.dtype == torch.float32 and b.dim() == 1 for b in blocks)
    return blocks, torch.cat(blocks) if blocks else torch.zeros(0)


@pytest.mark.parametrize("rate,channels,suffix", [(8000, 1, "wav"), (44100, 2, "flac"), (16000, 1, "wav"), (22050, 1, "ogg")])
def test_blocks_join_to_the_whole_load(tmp_path, rate, channels, suffix):
    path = tmp_path / f"noise.{suffix}"
    soundfile.write(path, noise(rate, 2.3, channels), rate)
    whole = audio.load(path, 16000)
    blocks, together = joined(path, 16000, block_seconds=0.5)
    assert [b.numel() for b in blocks[:-1]] == [8000] * (len(blocks) - 1) and 0 < blocks[-1].numel() <= 8000
    assert together.shape == whole.shape
    assert torch.allclose(together, whole, atol=1e-4)
    # a stretch across the boundary between blocks 1 and 2 (at 1.0 s) is the same as read alone
    assert torch.allclose(torch.cat(blocks[1:3])[7000:9000], whole[15000:17000], atol=1e-4)


@pytest.mark.parametrize("suffix,codec,rate", [("m4a", "aac", 44100), ("webm", "libopus", 48000), ("amr", "libopencore_amrnb", 8000)])
def test_blocks_through_ffmpeg(tmp_path, suffix, codec, rate):
    path = encode(tmp_path / f"speech.{suffix}", speechlike(rate, 3.0), rate, codec)
    whole = audio.load(path, 16000)
    blocks, together = joined(path, 16000, block_seconds=0.7)
    assert len(blocks) >= 4 and torch.allclose(together, whole, atol=1e-4)


def test_offset_and_duration_across_a_block_boundary(tmp_path):
    path = tmp_path / "noise.wav"
    soundfile.write(path, noise(8000, 3.0), 8000, subtype="FLOAT")
    part = audio.load(path, 16000, offset=0.9, duration=1.2)
    blocks, together = joined(path, 16000, block_seconds=1.0, offset=0.9, duration=1.2)
    assert [b.numel() for b in blocks] == [16000, 3200] and torch.allclose(together, part, atol=1e-4)
    same_rate, _ = joined(path, 8000, block_seconds=0.5, offset=0.9, duration=1.2)
    assert torch.equal(torch.cat(same_rate), torch.from_numpy(soundfile.read(path, dtype="float32")[0][7200:16800]))


def test_a_length_that_is_a_whole_number_of_blocks_has_no_empty_block(tmp_path):
    path = tmp_path / "two.wav"
    soundfile.write(path, noise(16000, 2.0), 16000)
    blocks, together = joined(path, 16000, block_seconds=1.0)
    assert [b.numel() for b in blocks] == [16000, 16000] and torch.equal(together, audio.load(path))
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0), 16000)
    assert joined(empty, 16000, block_seconds=1.0)[0] == []


class Watched(io.BytesIO):
    """A file object that remembers the furthest byte read."""

    furthest = 0

    def read(self, *args):
        data = super().read(*args)
        self.furthest = max(self.furthest, self.tell())
        return data

    def readinto(self, buffer):
        count = super().readinto(buffer)
        self.furthest = max(self.furthest, self.tell())
        return count


@pytest.mark.parametrize("kind", ["wav", "webm"])
def test_the_first_block_comes_before_the_file_is_read(tmp_path, kind):
    if kind == "wav":
        buffer = io.BytesIO()
        soundfile.write(buffer, noise(16000, 20.0), 16000, format="WAV", subtype="PCM_16")
        data = buffer.getvalue()
    else:
        data = encode(tmp_path / "long.webm", speechlike(48000, 20.0), 48000, "libopus").read_bytes()
    file = Watched(data)
    blocks = audio.stream_blocks(file, 16000, block_seconds=1.0)
    first = next(blocks)
    assert first.numel() == 16000
    assert file.furthest < len(data) / 4  # one second of twenty (and the reader's buffers)
    rest = list(blocks)
    assert len(rest) == 19 and file.furthest == len(data)


def test_errors(tmp_path):
    with pytest.raises(audio.AudioError, match=r"nothere\.m4a: no such file"):
        next(audio.stream_blocks(tmp_path / "nothere.m4a"))
    with pytest.raises(ValueError, match="block_seconds"):
        next(audio.stream_blocks(tmp_path / "nothere.m4a", 16000, block_seconds=0.0))
    samples = noise(16000, 3.0).astype(np.float32)
    samples[40000] = np.nan
    path = tmp_path / "nan.wav"
    soundfile.write(path, samples, 16000, subtype="FLOAT")
    blocks = audio.stream_blocks(path, 8000, block_seconds=1.0)
    assert next(blocks).numel() == 8000  # the first second is fine
    with pytest.raises(audio.AudioError, match=r"nan\.wav: contains NaN or infinite samples \(after 2\.00 s\)"):
        list(blocks)
