"""Global CMVN statistics of a training set: `tasr cmvn --manifest train.jsonl --out cmvn.json [--config conf.yaml]`.

The features are the model's own front-end (`audio.Fbank` with the `model.fbank` options and
`model.sample_rate` of the config), computed in batches; the per-bin mean and variance over all
frames of (a random subset of) the utterances go to a JSON file that `tasr train --cmvn` reads.
`tasr train` does the same by itself when it is not given one.
"""

from tasr import data
from tasr.cli import at_least
from tasr.device import CHOICES as DEVICES, pick_device
from tasr.files import check_writable
from tasr.training.cmvn import compute_cmvn, frontend_of
from tasr.training.config import check_config, load_config


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
    config = load_config(args.config, args.overrides)
    check_config(config)
    check_writable(args.out)
    frontend, sample_rate = frontend_of(config["model"])
    device = pick_device(args.device)
    items = data.read_manifest(args.manifest, require_text=False)
    stats = compute_cmvn(frontend, sample_rate, items, args.max_utterances, args.seed, args.max_frames,
                         args.num_workers, device)
    stats.save(args.out)
    print(f"wrote {args.out}")
