"""Cutting a batch of waveforms into Kaldi's frames, without a loop over frames or utterances.

Kaldi's frame t starts at sample t * shift (snip_edges=true) or at
t * shift + shift // 2 - window // 2 (snip_edges=false); samples outside the signal are taken by
reflection (-1 -> 0, -2 -> 1, N -> N-1, ...), as Kaldi's ExtractWindow does.
"""

import torch

from tasr.audio.options import FrameOptions


def frame_count(num_samples, sample_rate=16000.0, frame_length=25.0, frame_shift=10.0, snip_edges=True):
    """Kaldi's number of frames for `num_samples` (an int or an integer tensor).

    snip_edges=true: 1 + (N - window) // shift frames, 0 when N < window;
    snip_edges=false: (N + shift // 2) // shift frames.
    """
    opts = FrameOptions(sample_rate=float(sample_rate), frame_length=frame_length, frame_shift=frame_shift)
    return _count(num_samples, opts.window_size, opts.window_shift, snip_edges)


def _count(num_samples, window, shift, snip_edges):
    if snip_edges:
        if isinstance(num_samples, torch.Tensor):
            return torch.where(num_samples < window, 0, 1 + (num_samples - window).clamp(min=0) // shift)
        return 0 if num_samples < window else 1 + (num_samples - window) // shift
    return (num_samples + shift // 2) // shift


def reflect_index(index: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """Kaldi's reflection of sample indices into [0, length): period 2N, mirrored with the edge sample repeated."""
    length = length.clamp(min=1)
    index = torch.remainder(index, 2 * length)
    return torch.where(index >= length, 2 * length - 1 - index, index)


class FrameLayout:
    """Where the frames of a batch are: a flat buffer, its frame view, and the (utterance, frame) of each kept frame.

    `flat`: a 1-D buffer holding the padded signals as rows of `width` samples (a multiple of the
    shift; the rows are the input itself when nothing needs copying), in which frame t of utterance b
    starts at `(b * width // shift + t) * shift`; `frames`: a strided view `[slots, window]` over
    it (no copy), row `b * width // shift + t` being that frame; `frame_lengths`: `[B]` frames;
    `index`: the rows of the real frames only, utterance-major (`direct` when row k is real frame k).
    """

    def __init__(self, waveforms: torch.Tensor, lengths: torch.Tensor, opts: FrameOptions):
        window, shift = opts.window_size, opts.window_shift
        batch, num_samples = waveforms.shape
        self.shift = shift
        self.frame_lengths = _count(lengths, window, shift, opts.snip_edges)
        counts = self.frame_lengths.tolist()
        self.max_frames = max(counts, default=0)
        self.total = sum(counts)
        self.full = all(count == self.max_frames for count in counts)  # no utterance is shorter than the longest
        self.pad = 0 if opts.snip_edges else window // 2 - shift // 2  # frame 0 starts at sample -pad
        if batch == 1 and opts.snip_edges and waveforms.is_contiguous():
            # one utterance: the frames are read from the input itself
            self.flat, width = waveforms.reshape(-1), max(self.max_frames, 1) * shift
        else:
            needed = max((self.max_frames - 1) * shift + window, num_samples, 1)
            if not opts.snip_edges:  # room for the signal shifted by pad and its reflected right edge
                self.reflect_span = window + abs(self.pad) + shift
                needed = max(needed, max(self.pad, 0) + num_samples + self.reflect_span)
            width = -(-needed // shift) * shift
            flat = waveforms.new_zeros(batch * width + window)
            rows = flat[: batch * width].view(batch, width)
            if opts.snip_edges:
                rows[:, :num_samples] = waveforms
            else:
                rows = self._reflected_rows(waveforms, lengths, rows)
                flat = torch.cat([rows.reshape(-1), waveforms.new_zeros(window)])
            self.flat = flat
        self.slots_per_row = width // shift
        self.slots = self.slots_per_row * (batch - 1) + self.max_frames if batch else 0
        self.frames = self.flat.as_strided((self.slots, window), (shift, 1))
        self.direct = batch == 1 or (self.full and self.slots_per_row == self.max_frames)
        device = waveforms.device
        if batch == 1:  # the common one-utterance case, without the general bookkeeping
            self.frame_in_utterance = self.index = torch.arange(self.total, device=device)
            self.utterance = torch.zeros_like(self.index)
            return
        self.utterance = torch.repeat_interleave(torch.arange(batch, device=device), self.frame_lengths, output_size=self.total)
        first = torch.cumsum(self.frame_lengths, 0) - self.frame_lengths
        self.frame_in_utterance = torch.arange(self.total, device=device) - first[self.utterance]
        self.index = self.utterance * self.slots_per_row + self.frame_in_utterance

    def _reflected_rows(self, waveforms, lengths, rows):
        """Rows whose sample j is signal sample reflect(j - pad): the signal shifted right by pad, edges mirrored."""
        pad, num_samples = self.pad, waveforms.shape[1]
        start, stop = max(pad, 0), min(pad + num_samples, rows.shape[1])
        rows[:, start:stop] = waveforms[:, start - pad : stop - pad]
        # positions to fill by reflection: left of the signal, and right of each utterance's own end
        device = waveforms.device
        left = torch.arange(start, device=device).expand(rows.shape[0], -1)
        # frame t < (N + shift // 2) // shift ends before pad + N + reflect_span, so that is enough
        right = pad + lengths.unsqueeze(1) + torch.arange(self.reflect_span, device=device)
        positions = torch.cat([left, right], 1)
        if num_samples == 0:
            return rows
        source = reflect_index(positions - pad, lengths.unsqueeze(1))
        return rows.scatter(1, positions, torch.gather(waveforms, 1, source))
