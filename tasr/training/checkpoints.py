"""The checkpoints of a training run, in EXP/checkpoints: step-XXXXXXXX.pt and metrics.json.

A checkpoint holds model, optimizer, step, epoch, position within the epoch, the config, the
tokenizer, CMVN statistics and every process's RNG state, as tensors and plain values (it loads
with `torch.load(weights_only=True)`). It is written through a temporary file and a rename, so
it is whole or absent. metrics.json holds the validation figures of each checkpoint, by which
`choose` picks the best ones and `prune` deletes the rest beyond the latest few.
"""

import json
from pathlib import Path

import torch

from tasr.errors import TasrError
from tasr.files import atomic_write, write_text
from tasr.model import load_file

METRICS_FILE = "metrics.json"


def save_checkpoint(path, state: dict) -> None:
    """torch.save through a temporary file and os.replace: a checkpoint is whole or absent."""
    with atomic_write(path, "wb") as f:
        torch.save(state, f)


def load_checkpoint(path, map_location="cpu") -> dict:
    """A training checkpoint (weights_only: tensors and plain values); TasrError naming a broken file."""
    state = load_file(path, map_location, what="checkpoint")
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise TasrError(f"checkpoint {path}: not a tasr training checkpoint")
    return state


def checkpoint_paths(folder) -> list[Path]:
    """Step checkpoints in `folder`, oldest first."""
    return sorted(Path(folder).glob("step-*.pt"))


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
    paths = checkpoint_paths(folder)
    keep = {p.name for p in paths[-keep_last:]} if keep_last > 0 else set()
    keep |= {p.name for p in choose(folder, keep_best, by)}
    for path in paths:
        if path.name not in keep:
            path.unlink()
    table = read_metrics(folder)
    if any(name not in keep for name in table):
        table = {name: row for name, row in table.items() if name in keep}
        write_text(Path(folder) / METRICS_FILE, json.dumps(table, indent=1, sort_keys=True))
