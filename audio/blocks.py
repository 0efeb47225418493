"""Reading a long file block by block in bounded memory, resampled as it streams (soxr's streaming resampler)."""

import numpy as np
import soxr
import torch

from tasr.audio.errors import AudioError
from tasr.audio.loading import check_read_arguments, open_audio


def stream_blocks(source, sample_rate: int = 16000, block_seconds: float = 30.0, offset: float = 0.0,
                  duration: float | None = None):
    """Yield the audio of `source` (a path, bytes or binary file object) as mono float32 blocks `[n]`
    in [-1, 1] at `sample_rate` Hz: each `round(block_seconds * sample_rate)` samples, the last one
    shorter (never empty).

        for block in audio.stream_blocks("lecture.m4a", 16000, block_seconds=60):
            ...

    Joined, the blocks are `audio.load(source, sample_rate, offset=offset, duration=duration)` (the same
    decoder and the same soxr filter, so within float rounding). Memory holds about one block at each
    rate, whatever the length of the file. Raises AudioError as `load` does: when the file cannot be
    opened, before the first block; for what is found later (corrupt data, non-finite samples, a file
    shorter than its header says), when it is reached.
    """
    check_read_arguments(sample_rate, offset, duration)
    block = round(block_seconds * sample_rate)
    if block < 1:
        raise ValueError(f"block_seconds must give at least one sample at {sample_rate} Hz, got {block_seconds!r}")
    with open_audio(source) as reader:
        rate = reader.sample_rate
        resampler = soxr.ResampleStream(rate, sample_rate, 1, dtype="float32") if rate != sample_rate else None
        pending, held, read = [], 0, 0  # resampled samples not yet given out; input samples read
        for piece in reader.pieces(offset, duration, frames=max(1, round(block_seconds * rate))):
            if not np.isfinite(piece).all():
                raise AudioError(f"{reader.name}: contains NaN or infinite samples (after {offset + read / rate:.2f} s)")
            read += len(piece)
            out = resampler.resample_chunk(np.ascontiguousarray(piece)) if resampler else piece
            pending.append(out)
            held += len(out)
            if held >= block:
                pending, held = yield from _full_blocks(pending, block)
        if resampler and read:
            pending.append(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        rest = np.concatenate(pending) if pending else np.zeros(0, np.float32)
        for start in range(0, len(rest), block):
            yield torch.from_numpy(np.ascontiguousarray(rest[start:start + block]))


def _full_blocks(pending: list, block: int):
    """Yield the whole blocks of `block` samples in the arrays `pending`; returns (what is left, its length)."""
    joined = np.concatenate(pending)
    whole = len(joined) // block * block
    for start in range(0, whole, block):
        yield torch.from_numpy(joined[start:start + block])
    rest = joined[whole:].copy()  # not a view: the joined array can go
    return [rest], len(rest)
