"""Train a CTC speech recogniser: `tasr train --config conf.yaml --train train.jsonl --valid dev.jsonl --exp-dir exp/x`.

The configuration is a YAML file of plain values (every key and its default is in `DEFAULTS`
below); any value can be overridden on the command line as `section.key=value`, e.g.
`optim.lr=5e-4 batching.max_frames=40000 model.encoder.left=null`. The defaults are listed
at the end of `tasr train --help`. Every value's type and range is checked before any work.

What a run leaves in the experiment folder (a resumed one too, also with `--resume-from` a
checkpoint of another folder):

    config.yaml          the full configuration used (defaults filled in)
    tokenizer.json       the tokenizer (trained from the training text unless one was given)
    cmvn.json            global CMVN statistics (computed from the training data unless given)
    train_log.csv        one row per `log_interval` steps (train) and per validation (valid)
    train_curves.png     loss, WER and CER curves
    checkpoints/         step-XXXXXXXX.pt (atomic; the last `keep_last` and the best kept),
                         metrics.json (validation figures of each checkpoint)
    skipped.tsv          utterances left out (split, id, reason), if any
    model.pt             the final model (`SpeechRecognizer` file): the best checkpoint, or the
                         average of the `average` best ones

Checkpoints hold model, optimizer, step, epoch, position within the epoch and every RNG state
(as tensors/lists, so they load with `torch.load(weights_only=True)`); `--resume` continues
exactly where the last one was taken. A tokenizer that was not trained on the training text
(`--resume-from`'s, `--tokenizer`) must spell it: more than `--max-unk-rate` of its tokens <unk>
stops the run. Under `torchrun` each process takes its share of every global batch (gloo on
CPU, nccl on GPU; only rank 0 writes), so N processes compute the same updates as one process
with the same `batching.max_frames`.
"""

import argparse
import dataclasses

import yaml

from tasr.device import CHOICES as DEVICES
from tasr.training.config import DEFAULTS, MAX_UNK_RATE
from tasr.training.loop import RunOptions, train


def add_arguments(parser):
    parser.epilog = "default settings (a config file or section.key=value changes them):\n\n" + "\n".join(
        "  " + line for line in yaml.safe_dump(DEFAULTS, sort_keys=False).splitlines())
    parser.add_argument("--config", help="YAML file of settings (defaults below)")
    parser.add_argument("--train", required=True, help="training manifest (JSONL)")
    parser.add_argument("--valid", required=True, help="validation manifest (JSONL)")
    parser.add_argument("--exp-dir", required=True, help="experiment folder for checkpoints, logs and model.pt")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the latest checkpoint of --exp-dir (from scratch if there is none)")
    parser.add_argument("--resume-from", metavar="CHECKPOINT", help="continue from this checkpoint file")
    parser.add_argument("--tokenizer", help="a tokenizer.json to use instead of training one")
    parser.add_argument("--cmvn", help="a cmvn.json (from `tasr cmvn`) instead of computing it")
    parser.add_argument("--device", default="auto", help=f"{DEVICES} (under torchrun, cuda is cuda:LOCAL_RANK)")
    parser.add_argument("--seed", type=int, help="random seed (overrides the config's)")
    parser.add_argument("--on-bad-audio", choices=("skip", "stop"), default="skip",
                        help="an unreadable/empty utterance is reported and skipped (default) or stops the run")
    parser.add_argument("--max-unk-rate", type=unk_rate, default=MAX_UNK_RATE, metavar="RATE",
                        help=f"refuse training text of which more than this fraction of tokens is <unk> with the "
                             f"tokenizer (of --resume-from, --tokenizer or trained; default {MAX_UNK_RATE})")
    parser.add_argument("--stop-after", type=int, metavar="STEPS",
                        help="checkpoint and stop after this many steps, as if interrupted (for time-limited jobs)")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value", help="settings that replace the config's")


def unk_rate(text: str) -> float:
    """An argparse type: a fraction from 0 to 1."""
    try:
        rate = float(text)
    except ValueError:
        rate = None
    if rate is None or not 0 <= rate <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction from 0 to 1, got {text!r}")
    return rate


def main(args):
    train(RunOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(RunOptions)}), args.device)
