"""Global CMVN statistics of a training set: the per-bin mean and variance of the model's own features.

The features come from the model's front-end (`audio.Fbank` [B, T, F] frames), computed in
batches over all frames of (a random subset of) the utterances; the statistics are an
`audio.GlobalCMVN`, saved as JSON (cmvn.json of a run, or the file `tasr cmvn` writes).
"""

import sys

import numpy as np
import torch
from tqdm import tqdm

from tasr import audio
from tasr import data
from tasr.errors import TasrError


@torch.no_grad()
def compute_cmvn(frontend, sample_rate: int, items, max_utterances: int = 0, seed: int = 0,
                 max_frames: int = 20000, num_workers: int = 0, device="cpu"):
    """An `audio.GlobalCMVN` with the statistics of `frontend` features over `items`.

    `max_utterances` > 0 takes that many utterances at random (seeded) instead of all.
    Unreadable utterances are reported and left out.
    """
    items = list(items)
    if max_utterances and len(items) > max_utterances:
        chosen = np.random.default_rng(seed).choice(len(items), max_utterances, replace=False)
        items = [items[i] for i in sorted(chosen)]
    dataset = data.SpeechDataset(items, None, sample_rate)
    batches = data.DynamicBatches([dataset.frames(i) for i in range(len(dataset))], max_frames, shuffle=False).epoch(0)
    frontend = frontend.to(device)
    stats, skipped, frames = audio.GlobalCMVN(frontend.num_features), 0, 0
    for batch in tqdm(data.make_loader(dataset, batches, num_workers), total=len(batches), desc="CMVN",
                      unit="batch", leave=False, dynamic_ncols=True, disable=None):  # no bar in a log file
        for utt_id, reason in batch.skipped:
            tqdm.write(f"CMVN: skipping utterance {utt_id}: {reason}", file=sys.stderr)
        skipped += len(batch.skipped)
        if len(batch) == 0:
            continue
        feats, frame_lengths = frontend(batch.waveforms.to(device), batch.lengths.to(device))
        stats.accumulate(feats.float().cpu(), frame_lengths.cpu())
        frames += int(frame_lengths.sum())
    if frames == 0:
        raise TasrError("CMVN: no readable audio in the manifest")
    print(f"CMVN statistics over {len(items) - skipped} utterances ({frames} frames, "
          f"{skipped} unreadable ones left out)", file=sys.stderr)
    return stats


def load_cmvn(path):
    """An `audio.GlobalCMVN` from a JSON file written by `tasr cmvn`; TasrError naming a bad file."""
    try:
        return audio.GlobalCMVN.load(path)
    except FileNotFoundError:
        raise TasrError(f"CMVN file {path}: no such file") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise TasrError(f"CMVN file {path}: not readable CMVN statistics ({error})") from None


def frontend_of(model_config: dict):
    """(the `audio.Fbank` front-end, its sample rate in Hz) of a config's `model` section, as the model builds them."""
    sample_rate = int(model_config.get("sample_rate", 16000))
    try:
        return audio.Fbank(sample_rate=sample_rate, **dict(model_config.get("fbank") or {})), sample_rate
    except (TypeError, ValueError) as error:
        raise TasrError(f"model config, fbank: {error}") from None
