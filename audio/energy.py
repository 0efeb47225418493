"""Frame energy of a waveform in dB, for finding where the sound is."""

import torch


def energy_db(waveform: torch.Tensor, sample_rate: int, hop_s: float = 0.01) -> torch.Tensor:
    """Frame energy in dB (10 log10 of the mean square, smoothed over 3 frames) every `hop_s`
    seconds of waveform [N] -> [N // hop]. Computed block by block: memory O(N / hop)."""
    hop = max(1, round(sample_rate * hop_s))
    frames = waveform.shape[0] // hop
    if frames == 0:
        return torch.zeros(0)
    waveform, block = waveform[:frames * hop], hop * 100_000
    power = torch.cat([(waveform[i:i + block].double() ** 2).view(-1, hop).mean(1)
                       for i in range(0, frames * hop, block)]).float()
    power = torch.nn.functional.avg_pool1d(power[None, None], 3, 1, 1, count_include_pad=False)[0, 0]
    return 10 * torch.log10(power + 1e-10)
