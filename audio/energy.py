"""Frame energy in dB, for finding where the sound is: of a whole waveform, or block by block.

    db = energy_db(waveform, 16000)      # [N // hop]: one value every `hop_s` (10 ms)
    meter = OnlineEnergy(16000)
    for block in blocks:                 # waveform pieces [n], any n
        db = meter.accept(block)         # [k]: the frames now complete
    db = meter.finish()                  # [k]: the last frame (its smoothing needed the end)

Each value is 10 log10 of the frame's mean square, averaged with its neighbours' (3 frames), so
a frame comes out once the next one is complete. The meter keeps the samples of one unfinished
frame and two frames' power; `energy_db` runs it over the waveform in blocks, so its memory is
O(N / hop) beyond the waveform.
"""

import torch

BLOCK_FRAMES = 100_000  # frames per block of `energy_db`


def energy_db(waveform: torch.Tensor, sample_rate: int, hop_s: float = 0.01) -> torch.Tensor:
    """Frame energy in dB every `hop_s` seconds of waveform [N] -> [N // hop]."""
    meter = OnlineEnergy(sample_rate, hop_s)
    block = meter.hop * BLOCK_FRAMES
    parts = [meter.accept(waveform[i:i + block]) for i in range(0, waveform.shape[0], block)]
    return torch.cat(parts + [meter.finish()])


class OnlineEnergy:
    """Streaming `audio.energy_db(waveform, sample_rate, hop_s)`; see the module docstring."""

    def __init__(self, sample_rate: int, hop_s: float = 0.01):
        self.hop = max(1, round(sample_rate * hop_s))
        self.rest = torch.zeros(0)  # samples of the unfinished frame
        self.previous = torch.zeros(0)  # power of the frame before the first one not given out (none at the start)
        self.waiting = torch.zeros(0)  # power of the frame not given out yet (it needs the next one)

    def accept(self, block: torch.Tensor) -> torch.Tensor:
        """Samples [n] -> the dB values [k] of the frames completed and smoothed by them."""
        samples = torch.cat((self.rest, block.float().cpu()))
        whole = samples.shape[0] // self.hop * self.hop
        self.rest = samples[whole:].clone()
        if whole == 0:
            return torch.zeros(0)
        power = (samples[:whole].double() ** 2).view(-1, self.hop).mean(1).float()
        power = torch.cat((self.previous, self.waiting, power))
        out = self._smooth(power, start=self.previous.shape[0], stop=power.shape[0] - 1)
        self.previous, self.waiting = power[-2:-1], power[-1:]
        return out

    def finish(self) -> torch.Tensor:
        """The dB value of the last frame (an empty tensor when there was no whole frame)."""
        power = torch.cat((self.previous, self.waiting))
        out = self._smooth(power, start=self.previous.shape[0], stop=power.shape[0])
        self.previous = self.waiting = torch.zeros(0)
        return out

    @staticmethod
    def _smooth(power: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """dB of frames start..stop-1 of `power`, each averaged with its neighbours in `power`."""
        if stop <= start:
            return torch.zeros(0)
        smoothed = torch.nn.functional.avg_pool1d(power[None, None], 3, 1, 1, count_include_pad=False)[0, 0]
        return 10 * torch.log10(smoothed[start:stop] + 1e-10)
