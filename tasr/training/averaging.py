"""Averaging checkpoints into a model file (`tasr average`, and model.pt at the end of `tasr train`).

Averaging the weights of the last or best few checkpoints (as WeNet's and ESPnet's recipes do)
usually gives a slightly better model than any one of them. The checkpoints to average are
either given by path or chosen in `EXP/checkpoints` by their validation figures
(`checkpoints/metrics.json`, written by `tasr train`; see `tasr.training.checkpoints.choose`):
the best few by validation loss, WER or CER, or the latest few. Floating-point tensors are averaged; integer buffers
(counters) are taken from the newest checkpoint. The result is a `SpeechRecognizer` file
(config, tokenizer, CMVN and weights) like `model.pt`.
"""

from pathlib import Path

import torch

from tasr.errors import TasrError
from tasr.model import load_file
from tasr.text import tokenizer_from_state
from tasr.training.building import build_model
from tasr.training.checkpoints import choose

CHECKPOINT_KEYS = ["model", "step", "epoch", "config", "tokenizer"]  # entries averaging needs


def read_checkpoint(path) -> dict:
    """A training checkpoint, loaded safely; TasrError "PATH: not a tasr checkpoint (reason)" otherwise."""
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
