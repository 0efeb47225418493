"""Kaldi's fbank and MFCC features, batched, on any device, differentiable.

The algorithm, per frame (Kaldi's FeatureWindowFunction / ProcessWindow / MelBanks / Mfcc):
  cut `window_size` samples (framing.py) -> add dither -> subtract the frame mean (remove_dc_offset)
  -> [raw log energy] -> preemphasis x[i] -= c x[i-1], x[0] -= c x[0] -> multiply by the window
  -> [log energy] -> zero-pad to `padded_window_size` -> real FFT -> power (or magnitude) spectrum
  -> triangular mel filters -> log (floored at float32 epsilon) -> [DCT and lifter for MFCC].

Two implementations of the same arithmetic:
  - `_block`: the steps above, plainly, on a batch of frames; used for autograd, dither and GPU
    (all frames in one block there);
  - `_fast_features`: CPU without autograd, restated so that each frame is touched few times
    (preemphasis once per signal, the mean as a rank-1 update, blocks of 1024 frames, a banded
    filterbank product); 3-4x torchaudio's speed on one thread (`tasr bench features`).
Neither loops over frames or utterances: a batch is framed by one strided view (framing.py).
"""

import functools
import math

import torch
from torch import nn

from tasr.audio import tables
from tasr.audio.errors import AudioError
from tasr.audio.framing import FrameLayout, _count
from tasr.audio.options import split_options

EPSILON = torch.finfo(torch.float32).eps  # Kaldi floors energies at std::numeric_limits<float>::epsilon()
INT16_SCALE = 32768.0
CPU_BLOCK_FRAMES = 1024  # frames per block on CPU: a block's FFT input and output stay in cache
MEL_GROUP = 16  # mel filters per group in the banded filterbank product


class KaldiFeatures(nn.Module):
    """Shared machinery of `Fbank` and `Mfcc`: options, tables (as non-persistent buffers), batching."""

    kind = "fbank"

    def __init__(self, sample_rate: float = 16000, **options):
        super().__init__()
        self.sample_rate = sample_rate
        self.options = dict(options)
        self.frame_opts, self.mel_opts, self.feat_opts = split_options(self.kind, sample_rate, options)
        self.register_buffer("window", tables.window(self.frame_opts).float(), persistent=False)
        self._first_window_value = float(self.window[0])  # zero for povey, hanning and blackman
        banks = tables.mel_banks(self.frame_opts, self.mel_opts)
        # Only the FFT bins some filter touches matter: keep that band of rows (a cheaper matmul).
        used = torch.nonzero(banks.abs().sum(1)).flatten()
        self.first_bin, self.last_bin = int(used[0]), int(used[-1]) + 1
        self.register_buffer("banks", banks[self.first_bin : self.last_bin].float().contiguous(), persistent=False)
        self.mel_groups = _band_groups(banks[self.first_bin : self.last_bin], MEL_GROUP)
        if self.kind == "mfcc":
            dct = tables.dct_matrix(self.mel_opts.num_mel_bins, self.feat_opts.num_ceps)
            dct = dct * tables.lifter(self.feat_opts.num_ceps, self.feat_opts.cepstral_lifter)
            self.register_buffer("dct", dct.float(), persistent=False)

    @property
    def num_features(self) -> int:
        """Values per frame (F)."""
        if self.kind == "mfcc":
            return self.feat_opts.num_ceps
        return self.mel_opts.num_mel_bins + int(self.feat_opts.use_energy)

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames per utterance for `lengths` samples."""
        f = self.frame_opts
        return _count(lengths, f.window_size, f.window_shift, f.snip_edges)

    def extra_repr(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"sample_rate={self.sample_rate}" + (f", {options}" if options else "")

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None):
        """waveforms `[B, N]` float (in [-1, 1]; multiplied by 32768 when int16_scale), lengths `[B]` samples
        (None: all N) -> (feats `[B, T, F]`, zero beyond each utterance's frames, frame_lengths `[B]`).

        Samples beyond an utterance's length never reach its features. float16/bfloat16 input is
        computed in float32. Raises AudioError naming the utterances with NaN or infinite samples."""
        if waveforms.dim() != 2:
            raise ValueError(f"waveforms must be [batch, samples], got shape {list(waveforms.shape)}")
        if not waveforms.is_floating_point():
            raise TypeError(f"waveforms must be floating point (in [-1, 1]), got {waveforms.dtype}")
        if waveforms.dtype in (torch.float16, torch.bfloat16):
            waveforms = waveforms.float()
        batch, num_samples = waveforms.shape
        if lengths is None:
            lengths = torch.full((batch,), num_samples, dtype=torch.long, device=waveforms.device)
        else:
            lengths = torch.as_tensor(lengths, device=waveforms.device).long()
            if lengths.shape != (batch,) or (batch and (int(lengths.max()) > num_samples or int(lengths.min()) < 0)):
                raise ValueError(f"lengths must be [batch] values in [0, {num_samples}], got {lengths.tolist()}")
        if self.frame_opts.int16_scale:
            waveforms = waveforms * INT16_SCALE
        layout = FrameLayout(waveforms, lengths, self.frame_opts)
        packed = self._frames_to_features(layout)
        # A NaN or infinite sample makes every feature of its frames non-finite, and finite samples
        # never give non-finite features, so checking the (smaller) output finds them.
        if not bool(torch.isfinite(packed.sum())):
            frames = ~torch.isfinite(packed).all(1)
            bad = sorted(set(layout.utterance[frames].tolist()))
            raise AudioError(f"waveform(s) {bad} of the batch contain NaN or infinite samples")
        feats = self._unpack(packed, layout, batch)
        if self.feat_opts.subtract_mean:
            feats = _subtract_mean(feats, layout.frame_lengths)
        return feats, layout.frame_lengths

    def _unpack(self, packed, layout, batch):
        """Packed frames `[total, F]` (utterance-major) to `[B, T, F]`, zeros in the padding."""
        if layout.full:
            return packed.view(batch, layout.max_frames, packed.shape[1])
        out = packed.new_zeros(batch * layout.max_frames, packed.shape[1])
        out = out.index_copy(0, layout.utterance * layout.max_frames + layout.frame_in_utterance, packed)
        return out.view(batch, layout.max_frames, packed.shape[1])

    def _frames_to_features(self, layout: FrameLayout) -> torch.Tensor:
        """All real frames of the layout -> packed features `[total, F]`."""
        dtype, device = layout.frames.dtype, layout.frames.device
        if layout.total == 0:
            return torch.zeros(0, self.num_features, dtype=dtype, device=device)
        fast = self.frame_opts.dither == 0.0 and not (torch.is_grad_enabled() and layout.flat.requires_grad)
        if fast and device.type == "cpu":
            return self._fast_features(layout)
        block = layout.total if device.type != "cpu" else CPU_BLOCK_FRAMES
        tables = self._tables(dtype)
        parts = []
        for start in range(0, layout.total, block):
            if layout.direct:
                frames = layout.frames[start : start + block]  # no gather needed: the rows are the frames
            else:
                frames = layout.frames.index_select(0, layout.index[start : start + block])
            parts.append(self._block(frames, *tables))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _fast_tables(self, dtype):
        """(window zero-padded to the FFT size, that times 1 - c, banded filter groups, dense filters, DCT or None)
        in `dtype` on CPU, computed once per dtype."""
        cache = self.__dict__.setdefault("_fast_cache", {})
        if dtype not in cache:
            f = self.frame_opts
            padded = torch.zeros(f.padded_window_size, dtype=dtype)
            padded[: f.window_size] = self.window.cpu().to(dtype)
            groups = [(low, high, weights.to(dtype)) for low, high, weights in self.mel_groups]
            dense = self.banks.cpu().to(dtype)
            dct = self.dct.cpu().to(dtype) if self.kind == "mfcc" else None
            cache[dtype] = (padded, padded * (1.0 - f.preemphasis_coefficient), groups, dense, dct)
        return cache[dtype]

    @torch.no_grad()
    def _fast_features(self, layout: FrameLayout, block_frames: int = CPU_BLOCK_FRAMES) -> torch.Tensor:
        """The same features as `_block`, restated to touch each frame as few times as possible (CPU, no autograd).

        With s the signal, p[n] = s[n] - c s[n-1] its preemphasised form (computed once for the whole
        signal), m a frame's mean and w the window, Kaldi's windowed frame is w (p - (1 - c) m), except
        sample 0 which is w0 (1 - c) (s0 - m). So a block is one copy-and-multiply of p's frames read
        straight at the FFT size (w is zero beyond the window), one rank-1 update for the means, the FFT
        of a cache-sized block, and a banded filterbank product (each filter touches few FFT bins).
        """
        f = self.frame_opts
        dtype = layout.flat.dtype
        padded_window = self._fast_tables(dtype)[0]
        fft_size, shift, c = f.padded_window_size, f.window_shift, f.preemphasis_coefficient
        # the preemphasised signal, with zeros after it so that every frame can be read at the FFT size
        flat = layout.flat
        used = min(flat.numel(), layout.slots * shift + f.window_size)
        pre = torch.empty(layout.slots * shift + fft_size, dtype=dtype)
        # p = (s[n] - s[n-1]) + (1 - c) s[n-1]: the difference of neighbouring samples is exact for
        # 16-bit audio, so only the small second term and the sum round (as precise as framing first)
        torch.sub(flat[1:used], flat[: used - 1], out=pre[1:used])
        pre[1:used].add_(flat[: used - 1], alpha=1.0 - c)
        pre[0] = flat[0] * (1.0 - c)
        pre[used:] = 0.0
        pre_frames = pre.as_strided((layout.slots, fft_size), (shift, 1))
        # frame means straight from the strided view (no copy), for every slot
        means = layout.frames.mean(1) if f.remove_dc_offset else None
        out = torch.empty(layout.total, self.num_features, dtype=dtype)
        block = min(block_frames, layout.total)
        z = torch.empty(block, fft_size, dtype=dtype)
        power = torch.empty(block, fft_size // 2 + 1, dtype=dtype)
        for start in range(0, layout.total, block):
            stop = min(start + block, layout.total)
            rows = slice(start, stop) if layout.direct else layout.index[start:stop]
            zb = z[: stop - start]
            if layout.direct:
                torch.mul(pre_frames[rows], padded_window, out=zb)
            else:
                torch.index_select(pre_frames, 0, rows, out=zb)
                zb.mul_(padded_window)
            mean = means[rows] if means is not None else None
            out[start:stop] = self._windowed_to_features(zb, mean, layout.frames, rows, power)
        return out

    def fast_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames `[n, window_size]` -> features `[n, F]` by exactly the arithmetic of `_fast_features`
        (used by the streaming classes, so that streaming and offline give the same numbers)."""
        f = self.frame_opts
        padded_window = self._fast_tables(frames.dtype)[0]
        c = f.preemphasis_coefficient
        zb = torch.zeros(frames.shape[0], f.padded_window_size, dtype=frames.dtype)
        torch.sub(frames[:, 1:], frames[:, :-1], out=zb[:, 1 : f.window_size])
        zb[:, 1 : f.window_size].add_(frames[:, :-1], alpha=1.0 - c)
        zb.mul_(padded_window)
        mean = frames.mean(1) if f.remove_dc_offset else None
        power = torch.empty(frames.shape[0], f.padded_window_size // 2 + 1, dtype=frames.dtype)
        return self._windowed_to_features(zb, mean, frames, slice(None), power)

    def _windowed_to_features(self, zb, mean, frames, rows, power):
        """zb `[n, fft_size]` = w p (window times preemphasised frames, zero-padded), overwritten;
        mean `[n]` or None; `frames[rows]` the raw frames (for sample 0 and the raw energy) -> `[n, F]`."""
        f, o = self.frame_opts, self.feat_opts
        _, dc_window, groups, dense, dct = self._fast_tables(zb.dtype)
        c, w0 = f.preemphasis_coefficient, self._first_window_value
        n = zb.shape[0]
        if mean is not None:
            zb.addr_(mean, dc_window, alpha=-1.0)
        if w0 != 0.0:  # sample 0 of each frame: w0 (1 - c) (s0 - m)
            first = frames[rows, 0] if mean is None else frames[rows, 0] - mean
            zb[:, 0] = first * (w0 * (1.0 - c))
        energy = None
        if o.use_energy:
            if o.raw_energy:
                raw = frames[rows]
                energy = (raw if mean is None else raw - mean.unsqueeze(1)).square().sum(1)
            else:
                energy = zb.square().sum(1)
        spectrum = torch.view_as_real(torch.fft.rfft(zb)).square_()
        pb = torch.add(spectrum[..., 0], spectrum[..., 1], out=power[:n])[:, self.first_bin : self.last_bin]
        if not o.use_power:
            pb = pb.sqrt()
        # few frames: one dense product costs less than a call per group
        mel = pb @ dense if n < 256 else _banded_matmul(pb, groups)
        return self._finish(mel, energy, dct)

    def _tables(self, dtype):
        extra = (self.dct.to(dtype),) if self.kind == "mfcc" else ()
        return (self.window.to(dtype), self.banks.to(dtype)) + extra

    def _block(self, frames, window, banks, dct=None):
        """Frames `[n, window_size]` -> features `[n, F]`."""
        f, o = self.frame_opts, self.feat_opts
        x = frames
        if f.dither != 0.0:
            x = x + f.dither * torch.randn_like(x)
        if f.remove_dc_offset:
            x = x - x.mean(1, keepdim=True)
        energy = None
        if o.use_energy and o.raw_energy:
            energy = x.pow(2).sum(1)
        c = f.preemphasis_coefficient
        if c != 0.0:
            x = torch.cat([x[:, :1] * (1.0 - c), x[:, 1:] - c * x[:, :-1]], 1)
        x = x * window
        if o.use_energy and not o.raw_energy:
            energy = x.pow(2).sum(1)
        spectrum = torch.fft.rfft(x, n=f.padded_window_size)[:, self.first_bin : self.last_bin]
        power = spectrum.real.square() + spectrum.imag.square()
        if not o.use_power:
            power = power.sqrt()
        mel = power @ banks
        return self._finish(mel, energy, dct)

    def _finish(self, mel, energy, dct=None):
        """Filterbank outputs `[n, bins]` and frame energies `[n]` (or None) -> features `[n, F]`."""
        o = self.feat_opts
        if energy is not None:
            energy = energy.clamp(min=EPSILON).log()
            if o.energy_floor > 0.0:
                energy = energy.clamp(min=math.log(o.energy_floor))
        if self.kind == "mfcc":
            ceps = mel.clamp(min=EPSILON).log() @ dct
            if energy is not None:
                ceps = torch.cat([energy.unsqueeze(1), ceps[:, 1:]], 1)
            if o.htk_compat:  # c0 (or energy) goes last; without energy c0 is scaled by sqrt(2) as in HTK
                first = ceps[:, :1] if o.use_energy else ceps[:, :1] * 2**0.5
                ceps = torch.cat([ceps[:, 1:], first], 1)
            return ceps
        if o.use_log_fbank:
            mel = mel.clamp(min=EPSILON).log()
        if energy is not None:
            parts = [mel, energy.unsqueeze(1)] if o.htk_compat else [energy.unsqueeze(1), mel]
            mel = torch.cat(parts, 1)
        return mel


def _band_groups(banks: torch.Tensor, size: int):
    """Split the filters `[bins_fft, bins_mel]` into groups of `size` consecutive filters, each with the
    range of FFT bins it touches: [(first_bin, stop_bin, weights [stop - first, size] float64)]."""
    groups = []
    for first_filter in range(0, banks.shape[1], size):
        weights = banks[:, first_filter : first_filter + size]
        used = torch.nonzero(weights.abs().sum(1)).flatten()
        low, high = (int(used[0]), int(used[-1]) + 1) if used.numel() else (0, 1)
        groups.append((low, high, weights[low:high].contiguous()))
    return groups


def _banded_matmul(power: torch.Tensor, groups) -> torch.Tensor:
    """power `[n, bins_fft]` @ filters, group by group over only the FFT bins each group touches."""
    return torch.cat([power[:, low:high] @ weights for low, high, weights in groups], 1)


def _subtract_mean(feats, frame_lengths):
    """Subtract each utterance's mean over its real frames; padding stays zero."""
    mask = (torch.arange(feats.shape[1], device=feats.device) < frame_lengths.unsqueeze(1)).unsqueeze(2)
    mean = (feats * mask).sum(1, keepdim=True) / frame_lengths.clamp(min=1).view(-1, 1, 1).to(feats.dtype)
    return (feats - mean) * mask


class Fbank(KaldiFeatures):
    """Kaldi's log-mel filterbank as a module: `forward(waveforms [B, N], lengths [B]) -> (feats [B, T, F], frame_lengths [B])`.

    Options are Kaldi's (see `audio.options`); tasr's defaults differ in num_mel_bins=80 and dither=0.0.
    F = num_mel_bins (+1 with use_energy). The tables are non-persistent buffers: `.to(device)` moves them
    and they never enter a state_dict.
    """

    kind = "fbank"


class Mfcc(KaldiFeatures):
    """Kaldi's MFCC as a module (same interface as `Fbank`); F = num_ceps. Kaldi's defaults (23 bins, 13 ceps,
    lifter 22, use_energy=true) except dither=0.0."""

    kind = "mfcc"


@functools.lru_cache(maxsize=32)
def _module(kind, sample_rate, options, device):
    module = {"fbank": Fbank, "mfcc": Mfcc}[kind](sample_rate, **dict(options))
    return module.to(device)


def _functional(kind, waveform, sample_rate, options):
    if not isinstance(waveform, torch.Tensor):
        raise TypeError(f"waveform must be a torch.Tensor, got {type(waveform).__name__}")
    if waveform.dim() == 0:
        raise ValueError("waveform must have at least one dimension (samples)")
    module = _module(kind, float(sample_rate), tuple(sorted(options.items())), waveform.device)
    leading = waveform.shape[:-1]
    feats, _ = module(waveform.reshape(leading.numel(), waveform.shape[-1]))
    return feats.reshape(*leading, feats.shape[-2], feats.shape[-1])


def fbank(waveform: torch.Tensor, sample_rate: float = 16000, **options) -> torch.Tensor:
    """Kaldi log-mel filterbank of `waveform [..., N]` -> `[..., T, F]` (leading dims are a batch of equal length).

    Kaldi's options and defaults (`audio.options`), except num_mel_bins=80 and dither=0.0. Input in [-1, 1];
    `int16_scale=True` gives Kaldi's numbers for 16-bit files. float32 or float64, any device, differentiable.
    """
    return _functional("fbank", waveform, sample_rate, options)


def mfcc(waveform: torch.Tensor, sample_rate: float = 16000, **options) -> torch.Tensor:
    """Kaldi MFCC of `waveform [..., N]` -> `[..., T, num_ceps]`; Kaldi's defaults except dither=0.0."""
    return _functional("mfcc", waveform, sample_rate, options)
