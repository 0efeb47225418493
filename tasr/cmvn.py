"""Global CMVN statistics of a training set: `tasr cmvn --manifest train.jsonl --out cmvn.json [--config conf.yaml]`.

The features are the model's own front-end (`audio.Fbank` with the `model.fbank` options and
`model.sample_rate` of the config), computed in batches; the per-bin mean and variance over all
frames of (a random subset of) the utterances go to a JSON file that `tasr train --cmvn` reads.
`tasr train` does the same by itself when it is not given one.
"""

import sys

import numpy as np
import torch
from tqdm import tqdm

import audio
from tasr import data
from tasr.cli import at_least
from tasr.device import CHOICES as DEVICES, pick_device
from tasr.errors import TasrError
from tasr.files import check_writable


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


def add_arguments(parser):
    parser.add_argument("--manifest", required=True, help="training manifest (JSONL)")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--config", help="training config whose model.sample_rate and model.fbank to use "
                                         "(default: 16 kHz, 80 bins)")
    parser.add_argument("--max-utterances", type=at_least(0), default=0,
                        help="use this many random utterances (0: all)")
    parser.add_argument("--max-frames", type=at_least(1), default=20000, help="padded frames per batch")
    parser.add_argument("--num-workers", type=at_least(0), default=2, help="audio loading processes")
    parser.add_argument("--device", default="auto", help=f"{DEVICES} (default auto: cuda if available)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("overrides", nargs="*", metavar="section.key=value",
                        help="settings that replace the config's, as for tasr train")


def main(args):
    from tasr.train import check_config, load_config

    config = load_config(args.config, args.overrides)
    check_config(config)
    check_writable(args.out)
    model = config["model"]
    sample_rate = int(model.get("sample_rate", 16000))
    try:
        frontend = audio.Fbank(sample_rate=sample_rate, **dict(model.get("fbank") or {}))
    except (TypeError, ValueError) as error:
        raise TasrError(f"model config, fbank: {error}") from None
    device = pick_device(args.device)
    items = data.read_manifest(args.manifest, require_text=False)
    stats = compute_cmvn(frontend, sample_rate, items, args.max_utterances, args.seed, args.max_frames,
                         args.num_workers, device)
    stats.save(args.out)
    print(f"wrote {args.out}")
