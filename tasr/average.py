"""Average checkpoints into a model file: `tasr average --exp-dir exp/x --num 5 --out exp/x/model_avg5.pt`.

Averaging the weights of the last or best few checkpoints (as WeNet's and ESPnet's recipes do)
usually gives a slightly better model than any one of them. The checkpoints to average are
either given by path or chosen in `EXP/checkpoints` by their validation figures
(`checkpoints/metrics.json`, written by `tasr train`): the `--num` best by `--by loss|wer|cer`,
or the `--num` latest with `--by last`. Floating-point tensors are averaged; integer buffers
(counters) are taken from the newest checkpoint. The result is a `SpeechRecognizer` file
(config, tokenizer, CMVN and weights) like `model.pt`.
"""

import json
from pathlib import Path

import torch

from tasr.errors import TasrError

METRICS_FILE = "metrics.json"
CHECKPOINT_KEYS = ["model", "step", "epoch", "config", "tokenizer"]  # entries averaging needs


# ---------------------------------------------------------------- bookkeeping for tasr train

def read_metrics(folder) -> dict:
    """{checkpoint file name: {"step", "epoch", "loss", "wer", "cer" or absent}} of a checkpoint folder."""
    path = Path(folder) / METRICS_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise TasrError(f"{path}: not valid JSON ({error})") from None


def record_metrics(folder, name: str, step: int, epoch: int, metrics: dict | None) -> None:
    """Add (or replace) the entry of checkpoint `name` in metrics.json (atomically)."""
    from tasr.files import write_text

    table = read_metrics(folder)
    table[name] = {"step": step, "epoch": epoch, **(metrics or {})}
    write_text(Path(folder) / METRICS_FILE, json.dumps(table, indent=1, sort_keys=True))


def choose(folder, num: int, by: str) -> list[Path]:
    """The `num` best existing checkpoints by validation `by` (loss/wer/cer), or the `num` latest (`by="last"`)."""
    folder = Path(folder)
    table = {name: row for name, row in read_metrics(folder).items() if (folder / name).exists()}
    if by == "last":
        names = sorted(table, key=lambda name: table[name]["step"])[-num:]
    else:
        if by not in ("loss", "wer", "cer"):
            raise TasrError(f"--by {by!r}: choose loss, wer, cer or last")
        scored = [name for name in table if table[name].get(by) is not None]
        names = sorted(scored, key=lambda name: (table[name][by], -table[name]["step"]))[:num]
    return [folder / name for name in sorted(names, key=lambda name: table[name]["step"])]


def prune(folder, keep_last: int, keep_best: int, by: str) -> None:
    """Delete step checkpoints that are neither among the `keep_last` latest nor the `keep_best` best."""
    from tasr.train import checkpoint_paths

    paths = checkpoint_paths(folder)
    keep = {p.name for p in paths[-keep_last:]} if keep_last > 0 else set()
    keep |= {p.name for p in choose(folder, keep_best, by)}
    for path in paths:
        if path.name not in keep:
            path.unlink()
    table = read_metrics(folder)
    if any(name not in keep for name in table):
        from tasr.files import write_text

        table = {name: row for name, row in table.items() if name in keep}
        write_text(Path(folder) / METRICS_FILE, json.dumps(table, indent=1, sort_keys=True))


# ---------------------------------------------------------------- averaging

def read_checkpoint(path) -> dict:
    """A training checkpoint, loaded safely; TasrError "PATH: not a tasr checkpoint (reason)" otherwise."""
    from tasr.model import load_file

    state = load_file(path, what="checkpoint")
    missing = [key for key in CHECKPOINT_KEYS if key not in state] if isinstance(state, dict) else CHECKPOINT_KEYS
    if missing:
        raise TasrError(f"{path}: not a tasr checkpoint (no {', '.join(missing)} {'entries' if missing[1:] else 'entry'})")
    if not isinstance(state["model"], dict) or not all(torch.is_tensor(v) for v in state["model"].values()):
        raise TasrError(f"{path}: not a tasr checkpoint (its 'model' entry is not a table of tensors)")
    return state


def average_checkpoints(paths) -> tuple[dict, dict]:
    """(averaged model state_dict, the newest checkpoint) of training checkpoints `paths`."""
    if not paths:
        raise TasrError("no checkpoints to average")
    pairs = sorted(((p, read_checkpoint(p)) for p in paths), key=lambda pair: pair[1]["step"])
    newest = pairs[-1][1]
    average = {}
    for name, value in newest["model"].items():
        if value.is_floating_point():
            total = torch.zeros_like(value, dtype=torch.float64)
            for path, checkpoint in pairs:
                if name not in checkpoint["model"] or checkpoint["model"][name].shape != value.shape:
                    raise TasrError(f"checkpoint {path}: parameter {name} is missing or of another shape")
                total += checkpoint["model"][name].double()
            average[name] = (total / len(pairs)).to(value.dtype)
        else:
            average[name] = value
    return average, newest


def write_model(paths, out) -> None:
    """Average the checkpoints `paths` and write the `SpeechRecognizer` file `out`."""
    from tasr.text import tokenizer_from_state
    from tasr.train import build_model

    weights, newest = average_checkpoints(paths)
    model = build_model(newest["config"], tokenizer_from_state(newest["tokenizer"]), newest.get("cmvn"))
    model.load_state_dict(weights)
    model.save(out, info={"steps": newest["step"], "epochs": newest["epoch"],
                          "averaged": [Path(p).name for p in paths]})


def write_final_model(folder, out, num: int, by: str) -> str:
    """model.pt of a training run: the average of the `num` best checkpoints (the latest if none was validated)."""
    paths = choose(folder, num, by) or choose(folder, 1, "last")
    if not paths:
        raise TasrError(f"no checkpoints in {folder}")
    write_model(paths, out)
    names = ", ".join(p.name for p in paths)
    return f"average of {names}" if len(paths) > 1 else f"from {names}"


# ---------------------------------------------------------------- command

def add_arguments(parser):
    parser.add_argument("checkpoints", nargs="*", help="checkpoint files to average (or use --exp-dir)")
    parser.add_argument("--exp-dir", help="experiment folder whose checkpoints/ to choose from")
    parser.add_argument("--num", type=int, default=5, help="how many checkpoints to average (with --exp-dir)")
    parser.add_argument("--by", default="loss", choices=("loss", "wer", "cer", "last"),
                        help="choose the best by validation loss/WER/CER, or the latest (with --exp-dir)")
    parser.add_argument("--out", required=True, help="model file to write")


def main(args):
    from tasr.files import check_writable

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
