"""SpecAugment (Park et al., 2019): frequency masks, time masks and an optional time warp, for a padded batch."""

import torch
from torch import nn


class SpecAugment(nn.Module):
    """Randomly mask bands of features and spans of frames, in training mode only (identity in eval mode).

    feats `[B, T, F]`, frame_lengths `[B]` -> feats `[B, T, F]`; every utterance gets its own masks,
    drawn inside its real frames, so padding is never touched.

    num_freq_masks: masks per utterance across features, each of width uniform in [0, freq_mask_width].
    num_time_masks: masks per utterance across frames, each of width uniform in [0, max width], where
        max width = min(time_mask_width, time_mask_ratio * frames) (the "adaptive" size; ratio None: fixed).
    time_masks_per_frame: if set, the number of time masks is this times the utterance's frames
        (adaptive multiplicity, as for long utterances), capped by num_time_masks_max.
    time_warp: W in frames; 0 disables. A point c is moved by up to W frames and both sides are linearly
        stretched to fit (done before masking).
    mask_value: what masked values become (0.0 is the mean after CMVN).
    """

    def __init__(
        self,
        num_freq_masks: int = 2,
        freq_mask_width: int = 27,
        num_time_masks: int = 2,
        time_mask_width: int = 100,
        time_mask_ratio: float | None = 0.05,
        time_masks_per_frame: float | None = None,
        num_time_masks_max: int = 20,
        time_warp: int = 0,
        mask_value: float = 0.0,
    ):
        super().__init__()
        for name, value in [("num_freq_masks", num_freq_masks), ("freq_mask_width", freq_mask_width),
                            ("num_time_masks", num_time_masks), ("time_mask_width", time_mask_width),
                            ("time_warp", time_warp), ("num_time_masks_max", num_time_masks_max)]:
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        self.num_freq_masks = num_freq_masks
        self.freq_mask_width = freq_mask_width
        self.num_time_masks = num_time_masks
        self.time_mask_width = time_mask_width
        self.time_mask_ratio = time_mask_ratio
        self.time_masks_per_frame = time_masks_per_frame
        self.num_time_masks_max = num_time_masks_max
        self.time_warp = time_warp
        self.mask_value = mask_value

    def extra_repr(self) -> str:
        return (f"freq {self.num_freq_masks}x<={self.freq_mask_width}, time {self.num_time_masks}x<="
                f"min({self.time_mask_width}, {self.time_mask_ratio}*T), time_warp={self.time_warp}")

    def forward(self, feats: torch.Tensor, frame_lengths: torch.Tensor | None = None) -> torch.Tensor:
        if not self.training:
            return feats
        batch, frames, num_features = feats.shape
        device = feats.device
        if frame_lengths is None:
            frame_lengths = torch.full((batch,), frames, device=device)
        lengths = frame_lengths.to(device).long()
        if self.time_warp > 0:
            feats = self._warp(feats, lengths)
        # frequency masks: [B, M] widths and starts, then a [B, F] mask
        masked = torch.zeros(batch, 1, num_features, dtype=torch.bool, device=device)
        if self.num_freq_masks and self.freq_mask_width:
            width = torch.randint(0, self.freq_mask_width + 1, (batch, self.num_freq_masks), device=device)
            width = width.clamp(max=num_features)
            start = (torch.rand(batch, self.num_freq_masks, device=device) * (num_features - width + 1)).long()
            masked = masked | _spans(start, width, num_features).unsqueeze(1)
        # time masks: width limited per utterance by its length
        counts = torch.full((batch,), self.num_time_masks, device=device)
        if self.time_masks_per_frame is not None:
            counts = (lengths * self.time_masks_per_frame).long().clamp(max=self.num_time_masks_max)
        most = int(counts.max()) if batch else 0
        if most and self.time_mask_width:
            max_width = torch.full((batch,), float(self.time_mask_width), device=device)
            if self.time_mask_ratio is not None:
                max_width = torch.minimum(max_width, lengths * self.time_mask_ratio)
            max_width = max_width.floor().long()
            width = (torch.rand(batch, most, device=device) * (max_width.unsqueeze(1) + 1)).long()
            width = width * (torch.arange(most, device=device) < counts.unsqueeze(1))  # unused masks: width 0
            start = (torch.rand(batch, most, device=device) * (lengths.unsqueeze(1) - width + 1).clamp(min=1)).long()
            masked = masked | _spans(start, width, frames).unsqueeze(2)
        real = (torch.arange(frames, device=device) < lengths.unsqueeze(1)).unsqueeze(2)
        return feats.masked_fill(masked & real, self.mask_value)

    def _warp(self, feats, lengths):
        """Move a random centre c of each utterance by w in [-W, W] frames, stretching both sides linearly."""
        batch, frames, _ = feats.shape
        device = feats.device
        w_max = self.time_warp
        ok = lengths > 2 * w_max + 1  # too short to warp: left alone
        low, high = w_max + 1, (lengths - w_max - 1).clamp(min=w_max + 2)
        centre = low + (torch.rand(batch, device=device) * (high - low)).long()
        shift = torch.randint(-w_max, w_max + 1, (batch,), device=device) * ok
        new_centre = (centre + shift).float()
        t = torch.arange(frames, device=device).float().unsqueeze(0)
        c, n, length = centre.float().unsqueeze(1), new_centre.unsqueeze(1), lengths.float().unsqueeze(1)
        # output frame t reads input position src(t): [0, n) <- [0, c) and [n, length) <- [c, length)
        left = t * c / n
        right = c + (t - n) * (length - c) / (length - n).clamp(min=1)
        source = torch.where(t < n, left, right).clamp(min=0)
        source = torch.minimum(source, (length - 1).clamp(min=0))
        below = source.floor().long()
        above = (below + 1).clamp(max=(lengths - 1).clamp(min=0).unsqueeze(1))
        frac = (source - below).unsqueeze(2).to(feats.dtype)
        index = lambda i: i.unsqueeze(2).expand(-1, -1, feats.shape[2])  # noqa: E731
        warped = torch.gather(feats, 1, index(below)) * (1 - frac) + torch.gather(feats, 1, index(above)) * frac
        inside = (t < lengths.unsqueeze(1)).unsqueeze(2)
        return torch.where(inside, warped, feats)


def _spans(start: torch.Tensor, width: torch.Tensor, size: int) -> torch.Tensor:
    """[B, M] starts and widths -> [B, size] bool, true inside any of the B's M spans."""
    position = torch.arange(size, device=start.device).view(1, 1, -1)
    inside = (position >= start.unsqueeze(2)) & (position < (start + width).unsqueeze(2))
    return inside.any(1)
