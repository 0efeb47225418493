"""Average checkpoints into a model file: `tasr average --exp-dir exp/x --num 5 --out exp/x/model_avg5.pt`.

Averaging the weights of the last or best few checkpoints (as WeNet's and ESPnet's recipes do)
usually gives a slightly better model than any one of them. The checkpoints to average are
either given by path or chosen in `EXP/checkpoints` by their validation figures
(`checkpoints/metrics.json`, written by `tasr train`): the `--num` best by `--by loss|wer|cer`,
or the `--num` latest with `--by last`. Floating-point tensors are averaged; integer buffers
(counters) are taken from the newest checkpoint. The result is a `SpeechRecognizer` file
(config, tokenizer, CMVN and weights) like `model.pt`.
"""

from pathlib import Path

from tasr.errors import TasrError
from tasr.files import check_writable
from tasr.training.averaging import write_model
from tasr.training.checkpoints import choose


def add_arguments(parser):
    parser.add_argument("checkpoints", nargs="*", help="checkpoint files to average (or use --exp-dir)")
    parser.add_argument("--exp-dir", help="experiment folder whose checkpoints/ to choose from")
    parser.add_argument("--num", type=int, default=5, help="how many checkpoints to average (with --exp-dir)")
    parser.add_argument("--by", default="loss", choices=("loss", "wer", "cer", "last"),
                        help="choose the best by validation loss/WER/CER, or the latest (with --exp-dir)")
    parser.add_argument("--out", required=True, help="model file to write")


def main(args):
    if bool(args.checkpoints) == bool(args.exp_dir):
        raise TasrError("give either checkpoint files or --exp-dir")
    check_writable(args.out)
    if args.exp_dir:
        if args.num < 1:
            raise TasrError("--num must be at least 1")
        folder = Path(args.exp_dir) / "checkpoints"
        paths = choose(folder, args.num, args.by)
        if not paths:
            raise TasrError(f"no {'validated ' if args.by != 'last' else ''}checkpoints in {folder}")
    else:
        paths = [Path(p) for p in args.checkpoints]
    write_model(paths, args.out)
    print(f"averaged {len(paths)} checkpoint(s) ({', '.join(p.name for p in paths)}) into {args.out}")
