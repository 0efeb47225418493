"""Streaming fbank/MFCC: feed chunks of any size, get each frame as soon as its samples have arrived.

The frames are computed by the same code as the offline `Fbank`/`Mfcc`, so the concatenated output
equals the offline output: the same frames with snip_edges=true, and with snip_edges=false the same
frames once `input_finished()` has produced the last ones (those that need the right edge reflected).
"""

import math

import torch

from tasr.audio.errors import AudioError
from tasr.audio.features import INT16_SCALE, Fbank, Mfcc
from tasr.audio.framing import reflect_index


class OnlineFeatures:
    """Streaming Kaldi features. `accept_waveform(chunk [n]) -> new frames [k, F]`; `input_finished() -> last frames`.

    Keeps only the samples that frames still to come need (about one window), so memory does not grow
    with the length of the stream. `reset()` starts a new stream with the same options.
    """

    kind = "fbank"

    def __init__(self, sample_rate: float = 16000, **options):
        module = {"fbank": Fbank, "mfcc": Mfcc}[self.kind]
        self.module = module(sample_rate, **options)
        f = self.module.frame_opts
        self.window, self.shift = f.window_size, f.window_shift
        self.pad = 0 if f.snip_edges else self.window // 2 - self.shift // 2
        self.reset()

    @property
    def num_features(self) -> int:
        return self.module.num_features

    def reset(self):
        """Forget the stream; the next sample is sample 0 of a new one."""
        self.buffer = torch.zeros(0)
        self.offset = 0  # absolute index of buffer[0]
        self.num_samples = 0  # samples received
        self.num_frames = 0  # frames returned so far
        self.finished = False

    def to(self, device):
        self.module.to(device)
        self.buffer = self.buffer.to(device)
        return self

    def accept_waveform(self, chunk: torch.Tensor) -> torch.Tensor:
        """Append `chunk [n]` (samples in [-1, 1], any n >= 0); return the frames `[k, F]` completed by it."""
        if self.finished:
            raise RuntimeError("input_finished() was called: call reset() to start a new stream")
        chunk = torch.as_tensor(chunk)
        if chunk.dim() != 1 or not chunk.is_floating_point():
            raise ValueError(f"a chunk must be a 1-D float tensor of samples, got {chunk.dtype} {list(chunk.shape)}")
        if not math.isfinite(chunk.sum()) and not bool(torch.isfinite(chunk).all()):  # one sum when all is well
            raise AudioError(f"chunk at sample {self.num_samples} contains NaN or infinite samples")
        if self.buffer.numel() == 0:
            self.buffer = chunk.new_zeros(0)
        self.buffer = torch.cat([self.buffer, chunk.to(self.buffer)])
        self.num_samples += chunk.numel()
        # frame t is complete when its last sample t * shift - pad + window - 1 has arrived
        complete = max(0, (self.num_samples + self.pad - self.window) // self.shift + 1)
        frames = self._frames(self.num_frames, complete)
        self._trim()
        return frames

    def input_finished(self) -> torch.Tensor:
        """End of stream: return the frames that needed its end (snip_edges=false), `[k, F]`."""
        if self.finished:
            raise RuntimeError("input_finished() was already called: call reset() to start a new stream")
        self.finished = True
        total = self.module.frame_lengths(torch.tensor(self.num_samples)).item()
        return self._frames(self.num_frames, int(total))

    def _frames(self, first: int, stop: int) -> torch.Tensor:
        """Frames first..stop-1 from the buffer, reflecting samples outside [0, num_samples) as Kaldi does."""
        module = self.module
        dtype = self.buffer.dtype if self.buffer.is_floating_point() else torch.float32
        if stop <= first:
            return torch.zeros(0, module.num_features, dtype=dtype, device=self.buffer.device)
        device = self.buffer.device
        start = first * self.shift - self.pad
        if start >= 0 and (stop - 1) * self.shift - self.pad + self.window <= self.num_samples:
            frames = self.buffer[start - self.offset:].unfold(0, self.window, self.shift)[: stop - first]  # a view
        else:  # the edges: samples outside the signal by reflection
            starts = torch.arange(first, stop, device=device) * self.shift - self.pad
            positions = starts.unsqueeze(1) + torch.arange(self.window, device=device)
            positions = reflect_index(positions, torch.tensor(self.num_samples, device=device))
            frames = self.buffer[positions - self.offset]
        if module.frame_opts.int16_scale:
            frames = frames * INT16_SCALE
        self.num_frames = stop
        if frames.device.type == "cpu" and module.frame_opts.dither == 0.0:
            return module.fast_frames(frames)  # the arithmetic of the offline CPU path, for equal numbers
        return module._block(frames, *module._tables(frames.dtype))

    def _trim(self):
        """Drop samples no later frame can use: keep from the next frame's start, and the last window + 1 (for reflection)."""
        keep_from = min(self.num_frames * self.shift - self.pad, self.num_samples - self.window - 1)
        keep_from = max(0, keep_from)
        if keep_from > self.offset:
            self.buffer = self.buffer[keep_from - self.offset :]
            self.offset = keep_from


class OnlineFbank(OnlineFeatures):
    """Streaming `Fbank` (same options). Example:

        stream = audio.OnlineFbank(snip_edges=True)
        for chunk in chunks:                       # any sizes, 1 sample to seconds
            frames = stream.accept_waveform(chunk) # [k, 80], possibly k = 0
        last = stream.input_finished()             # [k, 80]
    """

    kind = "fbank"


class OnlineMfcc(OnlineFeatures):
    """Streaming `Mfcc` (same options)."""

    kind = "mfcc"
