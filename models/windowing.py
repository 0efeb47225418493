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

For streaming, `Encoder.stream()` carries each layer's caches from chunk to chunk instead
(`models/streaming.py`).

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

