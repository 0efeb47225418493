"""Run an encoder over a long input in overlapping windows, with the result of one pass.

With truncated attention, output frame t of the encoder depends only on input frames
`sub*t - left .. sub*t + right` (`encoder.receptive_field()`, in 10 ms input frames; `sub` is
the subsampling factor). So the output frames `[a, b)` can be computed from the input window
`[sub*a - left', sub*(b-1) + right]` alone, where `left'` is `left` rounded up to a multiple of
`sub` so that the window's subsampled frames fall on the same grid as the whole input's. Each
window overlaps its neighbours by that receptive field and keeps only its own output frames:
the log-probs are those of one pass over the whole input (within float rounding), while memory
is bounded by the window size instead of growing with the recording.

- `plan_windows`: the windows for an input of T frames under a budget of `max_frames`.
- `encode_windowed`: offline, a whole feature sequence -> output frames, window by window.
- `StreamingEncoder`: the same arithmetic on features that arrive in chunks; each call returns
  the output frames whose right context has arrived (recomputing the left context each time),
  and `finish()` returns the rest, so that the concatenation equals the offline result.

`encode(feats [1, T, F], lengths [1]) -> (out [1, T', ...], out_lengths [1])` is any function
with those receptive-field properties (for tasr, the model's encoder + CTC head);
`output_lengths(lengths)` gives T' for T (`Encoder.output_lengths`).
"""

from dataclasses import dataclass

import torch


@dataclass
class Window:
    """Input frames `[start, end)` give output frames `[out_start, out_end)`; output frame
    `out_start + k` is the window's own output frame `out_start - start // sub + k`."""

    start: int
    end: int
    out_start: int
    out_end: int


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def plan_windows(num_frames: int, num_out: int, max_frames: int | None, receptive_field, sub: int) -> list[Window]:
    """Windows covering the `num_out` output frames of `num_frames` input frames, each at most
    `max_frames` input frames (None or 0: one window). Raises ValueError when the budget cannot
    hold the receptive field (or the receptive field is unlimited) and one window would exceed it."""
    if not max_frames or num_frames <= max_frames:
        return [Window(0, num_frames, 0, num_out)]
    left, right = receptive_field
    if left is None or right is None:
        raise ValueError(f"the encoder's attention is unlimited (full), so an input of {num_frames} frames "
                         f"cannot be split into windows of {max_frames}; raise --max-frames "
                         f"(memory then grows with the square of the length)")
    left = _round_up(left, sub)
    core = (max_frames - left - right - 1) // sub + 1  # output frames per window
    if core < 1:
        raise ValueError(f"--max-frames {max_frames} cannot hold the encoder's receptive field "
                         f"({left} + {right} input frames); use at least {left + right + 1 + sub}")
    windows = []
    for a in range(0, num_out, core):
        b = min(a + core, num_out)
        start = max(0, sub * a - left)
        end = num_frames if b == num_out else min(num_frames, sub * (b - 1) + right + 1)
        windows.append(Window(start, end, a, b))
    return windows


def encode_windowed(encode, output_lengths, feats: torch.Tensor, max_frames: int | None,
                    receptive_field, sub: int, progress=None) -> torch.Tensor:
    """feats [T, F] of one recording -> output frames [T', ...] as one pass of `encode` would give.

    `progress(n)` (optional, e.g. a tqdm's `update`) is called with input frames done per window.
    """
    num_frames = feats.shape[0]
    num_out = int(output_lengths(torch.tensor([num_frames]))[0])
    pieces, done = [], 0
    for w in plan_windows(num_frames, num_out, max_frames, receptive_field, sub):
        out, _ = encode(feats[None, w.start:w.end], torch.tensor([w.end - w.start], device=feats.device))
        offset = w.start // sub
        pieces.append(out[0, w.out_start - offset:w.out_end - offset])
        if progress is not None:
            covered = num_frames if w.out_end == num_out else sub * w.out_end
            progress(covered - done)
            done = covered
    return torch.cat(pieces) if len(pieces) > 1 else pieces[0]


class StreamingEncoder:
    """Feature chunks in, ready output frames out, equal to `encode_windowed` on the whole input.

    `accept(feats [n, F])` returns the output frames [k, ...] (k >= 0) whose receptive field is
    now complete; `finish()` returns the remaining ones (the end of the input is known then).
    Each call re-runs the encoder on the left receptive field plus the new frames, so the cost
    per call is about (left + right + chunk) input frames. Needs a limited receptive field.
    """

    def __init__(self, encode, output_lengths, receptive_field, sub: int):
        left, right = receptive_field
        if left is None or right is None:
            raise ValueError("streaming needs an encoder with limited attention context (left/right not None)")
        self.encode, self.output_lengths, self.sub = encode, output_lengths, sub
        self.left, self.right = _round_up(left, sub), right
        self.buffer = None        # input frames from `self.buffer_start` on
        self.buffer_start = 0     # a multiple of sub
        self.received = 0         # input frames received so far
        self.emitted = 0          # output frames returned so far

    def _run(self, out_end: int, end: int) -> torch.Tensor:
        """Output frames [emitted, out_end) from a window ending at input frame `end` (absolute)."""
        start = max(0, self.sub * self.emitted - self.left)
        window = self.buffer[start - self.buffer_start:end - self.buffer_start]
        out, _ = self.encode(window[None], torch.tensor([window.shape[0]], device=window.device))
        offset = start // self.sub
        result = out[0, self.emitted - offset:out_end - offset]
        self.emitted = out_end
        keep_from = max(0, self.sub * self.emitted - self.left)  # the next window's start
        self.buffer = self.buffer[keep_from - self.buffer_start:]
        self.buffer_start = keep_from
        return result

    def accept(self, feats: torch.Tensor) -> torch.Tensor | None:
        """Add feature frames [n, F]; returns the output frames now complete, or None if there are none."""
        self.buffer = feats if self.buffer is None else torch.cat([self.buffer, feats])
        self.received += feats.shape[0]
        ready = (self.received - 1 - self.right) // self.sub + 1 if self.received > self.right else 0
        if ready <= self.emitted:
            return None
        return self._run(ready, min(self.received, self.sub * (ready - 1) + self.right + 1))

    def finish(self) -> torch.Tensor | None:
        """The output frames that were waiting for right context at the end of the input, or None."""
        total = int(self.output_lengths(torch.tensor([self.received]))[0]) if self.received else 0
        if total <= self.emitted:
            return None
        return self._run(total, self.received)
