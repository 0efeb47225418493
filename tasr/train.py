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
import copy
import csv
import io
import math
import os
import random
import re
import sys
import time
from contextlib import nullcontext, suppress
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from tqdm import tqdm

from tasr import data
from tasr.device import CHOICES as DEVICES, pick_device
from tasr.errors import TasrError
from tasr.files import atomic_write, make_folder, write_text
from tasr.scoring import score

DEFAULTS = {
    "model": {},                    # keyword arguments of SpeechRecognizer (front-end, encoder, ...)
    "tokenizer": {"kind": "char", "vocab_size": 500, "lowercase": False},  # or a tokenizer.json path
    "optim": {
        "lr": 1e-3,                 # peak learning rate (AdamW)
        "betas": [0.9, 0.98],
        "weight_decay": 1e-3,
        "warmup_steps": 500,        # linear warm-up from 0 to lr
        "decay": "cosine",          # after warm-up: cosine (to min_lr at the last step), inverse_sqrt, constant
        "min_lr": 1e-5,
    },
    "batching": {
        "max_frames": 20000,        # padded 10 ms frames per global batch (all ranks together)
        "accumulation": 1,          # batches per optimizer step
        "num_workers": 2,           # DataLoader worker processes per rank (audio loading, speed perturbation)
    },
    "epochs": 50,
    "max_steps": None,              # stop after this many optimizer steps (whichever of epochs/max_steps first)
    "grad_clip": 5.0,               # max gradient norm (None: no clipping)
    "speed_perturb": None,          # e.g. [0.9, 1.0, 1.1]
    "specaugment": True,            # SpecAugment in training (the model's own settings)
    "precision": "bf16",            # bf16 autocast on GPU; fp32 always on CPU; "fp32" to turn it off
    "keep_last": 5,                 # step checkpoints kept besides the best ones
    "average": 1,                   # model.pt = average of the N best checkpoints (1: the best)
    "best_metric": "loss",          # loss, wer or cer on the validation set (lower is better)
    "checkpoint_interval": 0,       # also checkpoint every N steps within an epoch (0: epoch ends only)
    "log_interval": 20,             # steps between train_log.csv rows
    "cmvn_utterances": 5000,        # training utterances (random) for the CMVN statistics; 0: all
    "seed": 1,
}
MAX_UNK_RATE = 0.01  # training text with more <unk> tokens than this does not fit the tokenizer (--max-unk-rate)


# ---------------------------------------------------------------- configuration

def load_config(path, overrides=()) -> dict:
    """DEFAULTS updated with the YAML file and then `section.key=value` overrides; unknown keys are errors."""
    config = copy.deepcopy(DEFAULTS)
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                given = yaml.safe_load(f) or {}
        except OSError as error:
            raise TasrError(f"config {path}: {error.strerror}") from None
        except yaml.YAMLError as error:
            raise TasrError(f"config {path}: not valid YAML ({error})") from None
        if not isinstance(given, dict):
            raise TasrError(f"config {path}: expected a mapping of settings")
        _merge(config, given, str(path))
    return apply_overrides(config, overrides)


def apply_overrides(config: dict, overrides) -> dict:
    """Set `section.key=value` items (values in YAML: 1e-3, null, [0.9, 1.0], {a: 1}) in `config`."""
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or not key:
            raise TasrError(f"override {override!r}: expected section.key=value")
        try:
            nested = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise TasrError(f"override {override!r}: the value is not valid YAML ({error})") from None
        for part in reversed(key.split(".")):
            nested = {part: nested}
        _merge(config, nested, f"override {override!r}")
    return config


def _whole(value) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# what a setting must be: (test, how an error message says it)
KINDS = {
    "integer": (_whole, "a whole number"),
    "count": (lambda v: _whole(v) and v >= 0, "a whole number >= 0"),
    "positive count": (lambda v: _whole(v) and v >= 1, "a whole number >= 1"),
    "number": (_number, "a number"),
    "number >= 0": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "positive number": (lambda v: _number(v) and v > 0, "a positive number"),
    "fraction": (lambda v: _number(v) and 0 <= v < 1, "a number from 0 to below 1"),
    "flag": (lambda v: isinstance(v, bool), "true or false"),
}

SETTINGS = {  # setting: its kind ("... or null": null too); model.* only when given
    "epochs": "count or null",
    "max_steps": "count or null",
    "grad_clip": "positive number or null",
    "specaugment": "flag",
    "keep_last": "positive count",
    "average": "positive count",
    "checkpoint_interval": "count",
    "log_interval": "positive count",
    "cmvn_utterances": "count",
    "seed": "integer",
    "optim.lr": "positive number",
    "optim.weight_decay": "number >= 0",
    "optim.warmup_steps": "count",
    "optim.min_lr": "number >= 0",
    "batching.max_frames": "positive count",
    "batching.accumulation": "positive count",
    "batching.num_workers": "count",
    "model.sample_rate": "positive count",
    "model.ctc_dropout": "fraction",
}

CHOICES = {
    "precision": ("bf16", "fp32"),
    "best_metric": ("loss", "wer", "cer"),
    "optim.decay": ("cosine", "inverse_sqrt", "constant"),
}


def _model_defaults() -> dict:
    """{part: {option: default}} of the model's parts (front-end, encoder, SpecAugment), to check given types."""
    import dataclasses
    import inspect

    import audio
    from audio import options
    from models.encoder import Encoder

    def defaults(function):
        return {name: p.default for name, p in inspect.signature(function).parameters.items()}

    groups = (options.FrameOptions, options.MelOptions, options.FbankOptions)
    return {"fbank": {f.name: f.default for group in groups for f in dataclasses.fields(group)},
            "encoder": defaults(Encoder), "specaugment": defaults(audio.SpecAugment)}


def check_config(config: dict) -> None:
    """TasrError naming the setting for a value of the wrong type or range, before any work is done.

    Whole numbers written as floats (2e4) become ints. The model's parts are checked against the
    types of their own defaults; the rest of what they need, they check when they are built.
    """
    def fail(key, must, value):
        raise TasrError(f"config: {key} must be {must}, got {'null' if value is None else repr(value)}")

    def section(key):
        value = config
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, dict) and (value is not None or "." not in key):
            fail(key, "a mapping of settings", value)
        return value or {}

    def check(key, kind):
        *parents, name = key.split(".")
        where = section(".".join(parents)) if parents else config
        if name not in where:
            return
        value = where[name]
        kind, _, null = kind.partition(" or ")
        test, must = KINDS[kind]
        if value is None and null:
            return
        if not test(value):
            fail(key, must + (" or null" if null else ""), value)
        if kind in ("integer", "count", "positive count"):
            where[name] = int(value)

    for key in ("optim", "batching", "model", "model.fbank", "model.encoder"):
        section(key)
    for key, kind in SETTINGS.items():
        check(key, kind)
    for key, choices in CHOICES.items():
        *parents, name = key.split(".")
        value = (section(".".join(parents)) if parents else config).get(name)
        if value not in choices:
            fail(key, f"one of {', '.join(choices)}", value)
    if not (config["epochs"] or config["max_steps"]):
        raise TasrError("config: give epochs or max_steps (> 0)")
    betas = config["optim"].get("betas")
    if not (isinstance(betas, (list, tuple)) and len(betas) == 2 and all(KINDS["fraction"][0](b) for b in betas)):
        fail("optim.betas", "two numbers from 0 to below 1, e.g. [0.9, 0.98]", betas)
    factors = config["speed_perturb"]
    if factors is not None and not (isinstance(factors, list) and all(KINDS["positive number"][0](f) for f in factors)):
        fail("speed_perturb", "null or a list of positive factors, e.g. [0.9, 1.0, 1.1]", factors)

    tokenizer = config["tokenizer"]
    if not isinstance(tokenizer, (dict, str)):
        fail("tokenizer", "a tokenizer.json path or a mapping of kind, vocab_size and lowercase", tokenizer)
    if isinstance(tokenizer, dict):
        from tasr.text import KINDS as TOKENIZERS

        unknown = sorted(set(tokenizer) - {"kind", "vocab_size", "lowercase"})
        if unknown:
            raise TasrError(f"config: unknown setting tokenizer.{unknown[0]} (known: kind, vocab_size, lowercase)")
        if tokenizer.get("kind", "char") not in TOKENIZERS:
            fail("tokenizer.kind", f"one of {', '.join(TOKENIZERS)}", tokenizer["kind"])
        check("tokenizer.vocab_size", "positive count")
        check("tokenizer.lowercase", "flag")

    augment = config["model"].get("specaugment")
    if augment not in (None, False) and not isinstance(augment, dict):
        fail("model.specaugment", "a mapping of SpecAugment settings, or null", augment)
    for part, defaults in _model_defaults().items():
        given = config["model"].get(part)
        for name in given if isinstance(given, dict) else ():
            default = defaults.get(name)
            kind = ("flag" if isinstance(default, bool) else "count" if isinstance(default, int)
                    else "number" if isinstance(default, float) else None)
            if kind:  # options without a typed default (None, strings) are checked by the part itself
                check(f"model.{part}.{name}", kind)


_SCIENTIFIC = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _numbers(value):
    """YAML 1.1 reads 1e-3 (no dot) as a string: make such strings the numbers they mean."""
    if isinstance(value, str) and _SCIENTIFIC.match(value):
        return float(value)
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value


def _merge(config: dict, given: dict, where: str, prefix=""):
    given = _numbers(given)
    for key, value in given.items():
        if key not in config and not prefix.startswith(("model.", "tokenizer.")):
            raise TasrError(f"{where}: unknown setting {prefix}{key} (known: {', '.join(config)})")
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            _merge(config[key], value, where, f"{prefix}{key}.")
        else:
            config[key] = value


def learning_rate(step: int, optim: dict, total_steps: int) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warm-up, then the chosen decay."""
    lr, warmup = optim["lr"], optim["warmup_steps"]
    if step < warmup:
        return lr * (step + 1) / warmup
    if optim["decay"] == "constant":
        return lr
    if optim["decay"] == "inverse_sqrt":
        return lr * math.sqrt(max(warmup, 1) / (step + 1))
    if optim["decay"] == "cosine":
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return optim["min_lr"] + 0.5 * (lr - optim["min_lr"]) * (1 + math.cos(math.pi * progress))
    raise TasrError(f"optim.decay {optim['decay']!r}: choose cosine, inverse_sqrt or constant")


# ---------------------------------------------------------------- processes and devices

class Processes:
    """Rank, world size and device of this process (torchrun's RANK/WORLD_SIZE/LOCAL_RANK, or one process)."""

    def __init__(self, device_name: str = "auto"):
        self.rank = int(os.environ.get("RANK", 0))
        self.world_size = int(os.environ.get("WORLD_SIZE", 1))
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.device = pick_device(device_name)
        if self.device.type == "cuda":
            if self.world_size > 1 and self.device.index is None:
                self.device = torch.device("cuda", local_rank)
            torch.cuda.set_device(self.device)
        if self.world_size > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of `values` over all processes."""
        if self.world_size == 1:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def gather(self, obj) -> list:
        """`obj` of every process, in rank order (every process gets the list)."""
        if self.world_size == 1:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self):
        if self.world_size > 1:
            dist.barrier()

    def close(self):
        if self.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


# ---------------------------------------------------------------- RNG states as plain values

def rng_state(device) -> dict:
    """Python, numpy and torch (CPU and current CUDA device) RNG states as tensors and lists."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------- checkpoints

def save_checkpoint(path, state: dict) -> None:
    """torch.save through a temporary file and os.replace: a checkpoint is whole or absent."""
    with atomic_write(path, "wb") as f:
        torch.save(state, f)


def load_checkpoint(path, map_location="cpu") -> dict:
    """A training checkpoint (weights_only: tensors and plain values); TasrError naming a broken file."""
    from tasr.model import load_file

    state = load_file(path, map_location, what="checkpoint")
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise TasrError(f"checkpoint {path}: not a tasr training checkpoint")
    return state


def checkpoint_paths(folder) -> list[Path]:
    """Step checkpoints in `folder`, oldest first."""
    return sorted(Path(folder).glob("step-*.pt"))


# ---------------------------------------------------------------- building the pieces

def build_tokenizer(setting, texts, given_path=None):
    """A tokenizer: the file given on the command line, a path in the config, or trained on `texts`."""
    from tasr import text

    path = given_path or (setting if isinstance(setting, str) else None)
    if path:
        return text.load_tokenizer(path)
    return text.train_tokenizer(texts, kind=setting.get("kind", "char"),
                                vocab_size=int(setting.get("vocab_size", 500)),
                                lowercase=bool(setting.get("lowercase", False)))


def build_model(config: dict, tokenizer, cmvn_state: dict | None = None):
    """A SpeechRecognizer from the `model` section, the tokenizer and CMVN statistics (state_dict or None)."""
    import audio
    from tasr.model import SpeechRecognizer

    try:
        cmvn = audio.GlobalCMVN.from_state_dict(cmvn_state) if cmvn_state is not None else None
    except (AttributeError, KeyError, TypeError, ValueError, RuntimeError) as error:
        raise TasrError(f"the checkpoint's CMVN statistics are not readable ({' '.join(str(error).split())})") from None
    try:
        return SpeechRecognizer(config["model"], tokenizer, cmvn)
    except (TypeError, ValueError, KeyError) as error:
        raise TasrError(f"model settings: {error}") from None


def parameter_groups(model, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on matrices and convolution kernels, none on biases and norms."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def ctc_feasible(tokens: list[int], frames: int, subsampling: int) -> bool:
    """Whether CTC can align `tokens` to an utterance of `frames` input frames (repeats need a blank between)."""
    repeats = sum(1 for a, b in zip(tokens, tokens[1:]) if a == b)
    return len(tokens) + repeats <= frames // subsampling - 1


# ---------------------------------------------------------------- the log

LOG_FIELDS = ["time", "epoch", "step", "split", "loss", "lr", "frames_per_s", "wer", "cer", "skipped"]


def read_log(path) -> list[dict]:
    """The rows of a train_log.csv. Rows are appended whole, line end last, so a row that a kill cut
    short is the last line without its line end: it is left out (as is any row not of LOG_FIELDS)."""
    with open(path, newline="") as f:
        text = f.read()
    complete = text[: text.rfind("\n") + 1]
    rows = csv.DictReader(io.StringIO(complete, newline=""))
    return [r for r in rows if None not in r and None not in r.values() and r["step"].isdigit()]


class TrainLog:
    """train_log.csv (one row per log interval / validation) and train_curves.png; rank 0 only."""

    def __init__(self, folder: Path, resume_step: int | None):
        self.path = folder / "train_log.csv"
        self.plot_path = folder / "train_curves.png"
        rows = []
        if resume_step is not None and self.path.exists():
            rows = [r for r in read_log(self.path) if int(r["step"]) <= resume_step]
        with atomic_write(self.path, newline="") as f:  # a resumed run drops rows after its checkpoint
            writer = csv.DictWriter(f, LOG_FIELDS)
            writer.writeheader()
            writer.writerows(rows)

    def add(self, **row):
        row = {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
        line = io.StringIO()
        csv.DictWriter(line, LOG_FIELDS).writerow({"time": f"{time.time():.1f}", **row})
        with open(self.path, "a", newline="") as f:
            f.write(line.getvalue())  # one write, line end last

    def plot(self):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = read_log(self.path)
        train = [r for r in rows if r["split"] == "train" and r["loss"]]
        valid = [r for r in rows if r["split"] == "valid" and r["loss"]]
        figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
        left.plot([int(r["step"]) for r in train], [float(r["loss"]) for r in train], label="train")
        left.plot([int(r["step"]) for r in valid], [float(r["loss"]) for r in valid], "o-", label="valid")
        left.set(xlabel="step", ylabel="CTC loss (per token)", yscale="log", title="loss")
        left.legend()
        for name in ("wer", "cer"):
            right.plot([int(r["step"]) for r in valid], [100 * float(r[name]) for r in valid], "o-", label=name.upper())
        right.set(xlabel="step", ylabel="%", title="validation error rates")
        right.legend()
        figure.tight_layout()
        with atomic_write(self.plot_path, "wb") as f:
            figure.savefig(f, format="png", dpi=100)
        plt.close(figure)


# ---------------------------------------------------------------- training

class StopForBadAudio(TasrError):
    """A bad utterance under --on-bad-audio stop."""


class Skipped:
    """Utterances left out (each counted once per split however often it comes up), by reason.

    Each process notes what it finds in `pending`; `merge` adds every process's notes (gathered)
    so that all processes hold the same counts.
    """

    def __init__(self, state=None):
        state = state or {}
        self.counts = dict(state.get("counts", {}))
        self.seen = set(state.get("seen", []))
        self.pending = []  # (split, id, reason, kind) found by this process since the last merge

    def note(self, utt_id: str, reason: str, kind: str, split: str) -> bool:
        """Remember a bad utterance; False if it is known already."""
        key = f"{split}/{utt_id}"
        if key in self.seen or any(f"{p[0]}/{p[1]}" == key for p in self.pending):
            return False
        self.pending.append((split, utt_id, reason, kind))
        return True

    def merge(self, notes) -> list:
        """Count the notes of every process; returns the ones not counted before."""
        new = []
        for split, utt_id, reason, kind in notes:
            if f"{split}/{utt_id}" not in self.seen:
                self.seen.add(f"{split}/{utt_id}")
                key = f"{split}: {kind}"
                self.counts[key] = self.counts.get(key, 0) + 1
                new.append((split, utt_id, reason))
        return new

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        return ", ".join(f"{kind} {n}" for kind, n in sorted(self.counts.items())) or "none"

    def state(self) -> dict:
        return {"counts": dict(self.counts), "seen": sorted(self.seen)}


class Trainer:
    """One training run: the model, optimizer and data of this process, and the loop over them."""

    def __init__(self, args, procs: Processes):
        self.args, self.procs = args, procs
        self.show_bars = sys.stderr.isatty()  # progress bars on a terminal, plain lines in a log file
        self.exp = Path(args.exp_dir)
        self.checkpoints = self.exp / "checkpoints"  # made with the first checkpoint

        resume = self._resume_checkpoint()
        self.resumed_metrics = resume.get("metrics") if resume is not None else None
        if resume is not None:
            config = load_config(None, [])
            _merge(config, resume["config"], f"checkpoint {self.resume_path}")
            apply_overrides(config, args.overrides)
        else:
            if args.config is None:
                raise TasrError("--config is needed (unless --resume finds a checkpoint)")
            config = load_config(args.config, args.overrides)
            if args.seed is not None:
                config["seed"] = args.seed
        check_config(config)
        self.config = config
        self.on_bad_audio = args.on_bad_audio
        self.skipped = Skipped(resume["skipped"] if resume else None)

        train_items = data.read_manifest(args.train)
        valid_items = data.read_manifest(args.valid)
        train_items = self._drop_missing(train_items, "train")
        valid_items = self._drop_missing(valid_items, "valid")

        # tokenizer (rank 0 trains it, the others read it)
        from tasr import text

        if resume is not None:
            self.tokenizer = text.tokenizer_from_state(resume["tokenizer"])
        elif procs.main:
            self.tokenizer = build_tokenizer(config["tokenizer"], [i["text"] for i in train_items], args.tokenizer)
        if procs.main:  # the folder's files, written by every run (fresh or resumed) once the data fits
            self._check_unknown_tokens(train_items, resume is not None)
            make_folder(self.exp)
            write_text(self.exp / "config.yaml", yaml.safe_dump(config, sort_keys=False))
            text.save_tokenizer(self.tokenizer, self.exp / "tokenizer.json")
        procs.barrier()
        if resume is None and not procs.main:
            self.tokenizer = text.load_tokenizer(self.exp / "tokenizer.json")

        seed_everything(config["seed"])
        self.model = build_model(config, self.tokenizer, resume.get("cmvn") if resume is not None else None)
        if resume is not None:
            self.model.load_state_dict(resume["model"])
        self.model.to(procs.device)
        if resume is None:
            self._set_cmvn(train_items)
        elif procs.main and self.model.cmvn is not None:
            self.model.cmvn.save(self.exp / "cmvn.json")
        self.sample_rate = self.model.sample_rate
        self._set_specaugment(config["specaugment"])

        subsampling = self.model.encoder.subsampling
        self.train_set = self._dataset(train_items, config["speed_perturb"], subsampling, "train")
        self.valid_set = self._dataset(valid_items, None, subsampling, "valid")
        batching = config["batching"]
        self.batches = data.DynamicBatches([self.train_set.frames(i) for i in range(len(self.train_set))],
                                           batching["max_frames"], config["seed"], True, procs.world_size)
        self.valid_batches = data.DynamicBatches([self.valid_set.frames(i) for i in range(len(self.valid_set))],
                                                 batching["max_frames"], 0, False, procs.world_size).epoch(0)

        self.optimizer = torch.optim.AdamW(parameter_groups(self.model, config["optim"]["weight_decay"]),
                                           lr=config["optim"]["lr"], betas=tuple(config["optim"]["betas"]))
        self.ddp = self.model
        if procs.world_size > 1:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[procs.device.index] if procs.device.type == "cuda" else None)
        self.use_bf16 = config["precision"] == "bf16" and procs.device.type == "cuda"

        steps_per_epoch = math.ceil(len(self.batches.epoch(0)) / batching["accumulation"])
        limits = [config["max_steps"], config["epochs"] and steps_per_epoch * config["epochs"]]
        self.total_steps = min(n for n in limits if n)  # for the learning-rate schedule
        self.step, self.epoch, self.position = 0, 0, 0
        if resume is not None:
            self.optimizer.load_state_dict(resume["optimizer"])
            self.step, self.epoch, self.position = resume["step"], resume["epoch"], resume["position"]
            rng = resume["rng"]
            if len(rng) == procs.world_size:
                set_rng_state(rng[procs.rank], procs.device)
            else:
                self._print(f"note: the checkpoint was written by {len(rng)} processes, this run has "
                            f"{procs.world_size}: random states are re-seeded")
                seed_everything(config["seed"] + 1000 * self.step + procs.rank)
        else:
            seed_everything(config["seed"] + procs.rank)  # different SpecAugment/dropout per rank
        self.last_plot = 0.0
        self.log = TrainLog(self.exp, self.step if resume is not None else None) if procs.main else None
        self._flush_skipped()
        n_params = sum(p.numel() for p in self.model.parameters())
        self._print(f"{n_params / 1e6:.2f}M parameters, {len(self.train_set)} training and {len(self.valid_set)} "
                    f"validation utterances, {self.total_steps} steps, {procs.world_size} process(es) on {procs.device}"
                    + (f"; resuming at step {self.step} (epoch {self.epoch + 1}, batch {self.position})"
                       if resume is not None else ""))

    # ---- set-up helpers

    def _print(self, message: str):
        if self.procs.main:
            tqdm.write(message, file=sys.stderr)

    def _resume_checkpoint(self):
        self.resume_path = None
        if self.args.resume_from:
            self.resume_path = Path(self.args.resume_from)
            return load_checkpoint(self.resume_path)
        paths = checkpoint_paths(self.checkpoints)
        if not self.args.resume:
            if paths:
                raise TasrError(f"{self.checkpoints} holds checkpoints of an earlier run: add --resume to continue "
                                f"it, or use another --exp-dir")
            return None
        if not paths:
            self._print(f"--resume: no checkpoint in {self.checkpoints}, starting from scratch")
            return None
        self.resume_path = paths[-1]
        return load_checkpoint(self.resume_path)

    def _check_unknown_tokens(self, items, resumed: bool):
        """Refuse training text that the tokenizer cannot spell: more than --max-unk-rate of its tokens <unk>
        (a checkpoint or tokenizer made for other data)."""
        from tasr.text import UNK

        unk = self.tokenizer.tokens.index(UNK)
        tokens = [t for item in items for t in self.tokenizer.encode(str(item["text"]))]
        rate = tokens.count(unk) / max(len(tokens), 1)
        given = self.args.tokenizer or (self.config["tokenizer"] if isinstance(self.config["tokenizer"], str) else None)
        source = (f"the tokenizer of checkpoint {self.resume_path}" if resumed else
                  f"tokenizer {given}" if given else "the tokenizer trained on it")
        if rate > self.args.max_unk_rate:
            raise TasrError(f"{100 * rate:.1f}% of the training tokens are {UNK} with {source}: it was made for "
                            f"other text. Use a tokenizer of this data, or raise --max-unk-rate (now "
                            f"{self.args.max_unk_rate:g}) to train anyway")
        if rate:
            self._print(f"note: {100 * rate:.2f}% of the training tokens are {UNK} with {source}")

    def _bad(self, utt_id: str, reason: str, kind: str, split: str, announce: bool = True):
        if self.on_bad_audio == "stop":
            raise StopForBadAudio(f"{split} utterance {utt_id}: {reason} (stopping as --on-bad-audio stop asks; "
                            f"the last checkpoint is kept in {self.checkpoints})")
        if self.skipped.note(utt_id, reason, kind, split) and announce:
            tqdm.write(f"skipping {split} utterance {utt_id}: {reason}", file=sys.stderr)

    def _drop_missing(self, items, split):
        missing = dict(data.missing_audio(items))
        for utt_id, reason in missing.items():
            self._bad(utt_id, reason, "missing audio file", split, announce=self.procs.main)
        return [item for item in items if item["id"] not in missing]

    def _dataset(self, items, speed, subsampling, split):
        dataset = data.SpeechDataset(items, self.tokenizer, self.sample_rate, speed, self.config["seed"])
        keep = []
        for i, item in enumerate(dataset.items):
            if not dataset.tokens[i]:
                self._bad(item["id"], "transcript has no tokens", "empty transcript", split, self.procs.main)
            elif not ctc_feasible(dataset.tokens[i], int(item["duration"] * data.FRAMES_PER_SECOND), subsampling):
                self._bad(item["id"], f"{len(dataset.tokens[i])} tokens do not fit in {item['duration']:.2f} s",
                          "too short for its transcript", split, self.procs.main)
            else:
                keep.append(i)
        if not keep:
            raise TasrError(f"no usable {split} utterances left (see the messages above)")
        if len(keep) < len(dataset.items):
            dataset = data.SpeechDataset([dataset.items[i] for i in keep], self.tokenizer, self.sample_rate,
                                         speed, self.config["seed"])
        return dataset

    def _set_cmvn(self, train_items):
        from tasr import cmvn

        path = self.exp / "cmvn.json"
        if self.procs.main:
            if self.args.cmvn:
                stats = cmvn.load_cmvn(self.args.cmvn)
            else:
                batching = self.config["batching"]
                stats = cmvn.compute_cmvn(self.model.frontend, self.model.sample_rate, train_items,
                                          self.config["cmvn_utterances"], self.config["seed"],
                                          batching["max_frames"], batching["num_workers"], self.procs.device)
            stats.save(path)
        self.procs.barrier()
        self.model.cmvn = cmvn.load_cmvn(path).to(self.procs.device)

    def _set_specaugment(self, enabled: bool):
        if not enabled:
            self.model.specaugment = None

    # ---- the loop

    def run(self) -> None:
        config, procs = self.config, self.procs
        accumulation = config["batching"]["accumulation"]
        max_epochs = config["epochs"] or sys.maxsize
        stop_after = self.args.stop_after
        started = time.time()
        while self.epoch < max_epochs and not self._finished():
            batches = self.batches.epoch(self.epoch)
            self.step_position = self.position
            self.train_set.set_epoch(self.epoch)
            local = [data.shard(b, procs.rank, procs.world_size) for b in batches[self.position:]]
            loader = data.make_loader(self.train_set, local, config["batching"]["num_workers"],
                                      seed=config["seed"] * 100_003 + self.epoch)
            bar = tqdm(total=len(batches), initial=self.position, desc=f"epoch {self.epoch + 1}", unit="batch",
                       disable=not (procs.main and self.show_bars), dynamic_ncols=True, leave=False)
            self.model.train()
            pending, window = 0, {"loss": 0.0, "tokens": 0.0, "frames": 0.0, "start": time.time()}
            for batch in loader:
                loss_sum, tokens, frames = self._forward_backward(batch, accumulation, pending + 1 < accumulation
                                                                   and self.position + 1 < len(batches))
                pending += 1
                self.position += 1
                window["loss"] += loss_sum
                window["tokens"] += tokens
                window["frames"] += frames
                bar.update(1)
                if pending < accumulation and self.position < len(batches):
                    continue
                self._optimizer_step(pending)
                self.step_position = self.position
                pending = 0
                if self.step % config["log_interval"] == 0 or self.position == len(batches):
                    self._log_train(window, bar)
                    window = {"loss": 0.0, "tokens": 0.0, "frames": 0.0, "start": time.time()}
                if self._finished():
                    break
                if stop_after and self.step >= stop_after:
                    bar.close()
                    self._checkpoint(None)
                    self._print(f"stopped after step {self.step} as --stop-after asked; --resume continues")
                    return
                if config["checkpoint_interval"] and self.step % config["checkpoint_interval"] == 0:
                    self._checkpoint(None)
            bar.close()
            if self.position >= len(batches):
                self.epoch, self.position, self.step_position = self.epoch + 1, 0, 0
            metrics = self.validate()
            self._checkpoint(metrics)
        if not checkpoint_paths(self.checkpoints):  # a finished checkpoint resumed into a new folder
            self._checkpoint(self.resumed_metrics)
        self._flush_skipped()
        if procs.main:
            from tasr.average import write_final_model

            self.log.plot()
            final = write_final_model(self.checkpoints, self.exp / "model.pt", config["average"], config["best_metric"])
            self._print(f"trained {self.step} steps in {time.time() - started:.0f} s; model: {self.exp / 'model.pt'} "
                        f"({final}); skipped utterances: {self.skipped.summary()}")
        procs.barrier()

    def _finished(self) -> bool:
        if self.config["max_steps"] and self.step >= self.config["max_steps"]:
            return True
        return bool(self.config["epochs"]) and self.epoch >= self.config["epochs"]

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.use_bf16 else nullcontext()

    def _forward_backward(self, batch: data.Batch, accumulation: int, more_to_come: bool):
        """Loss and gradients of this rank's part of a global batch; returns global (loss sum, tokens, frames)."""
        from models.ctc import ctc_loss

        for utt_id, reason in batch.skipped:
            self._bad(utt_id, reason, "unreadable audio", "train")
        empty = len(batch) == 0
        if empty:  # every utterance of this rank's share was bad: a silent stand-in keeps DDP in step
            batch = data.Batch(torch.zeros(1, self.sample_rate), torch.tensor([self.sample_rate]),
                               torch.ones(1, 1, dtype=torch.long), torch.ones(1, dtype=torch.long))
        batch.to(self.procs.device)
        sync = self.ddp.no_sync() if (more_to_come and self.ddp is not self.model) else nullcontext()
        with sync:
            with self._autocast():
                log_probs, out_lengths = self.ddp(batch.waveforms, batch.lengths)
            loss_sum = ctc_loss(log_probs, out_lengths, batch.tokens, batch.token_lengths, reduction="sum")
            if empty:
                loss_sum = loss_sum * 0.0
            tokens = 0 if empty else int(batch.token_lengths.sum())
            frames = 0 if empty else float(batch.lengths.sum()) / self.sample_rate * data.FRAMES_PER_SECOND
            total_loss, total_tokens, total_frames = self.procs.sum([float(loss_sum.detach()), tokens, frames])
            # DDP averages gradients over ranks: scale so that the average is d(sum of losses / all tokens)
            scale = self.procs.world_size / max(total_tokens, 1.0) / accumulation
            (loss_sum * scale).backward()
        return total_loss, total_tokens, total_frames

    def _optimizer_step(self, batches_in_step: int):
        accumulation = self.config["batching"]["accumulation"]
        if batches_in_step < accumulation:  # a short last step of the epoch: same weight per batch
            for p in self.model.parameters():
                if p.grad is not None:
                    p.grad.mul_(accumulation / batches_in_step)
        lr = learning_rate(self.step, self.config["optim"], self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        clip = self.config["grad_clip"]
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip if clip else float("inf"))
        if torch.isfinite(norm):
            self.optimizer.step()
        else:
            self._print(f"step {self.step + 1}: gradient is not finite, update skipped")
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.lr = lr

    def _log_train(self, window, bar):
        loss = window["loss"] / max(window["tokens"], 1.0)
        speed = window["frames"] / max(time.time() - window["start"], 1e-9)
        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{self.lr:.2e}", frames_per_s=f"{speed:.0f}", step=self.step)
        if not self.show_bars:  # a log file: one plain line per log_interval instead of a progress bar
            self._print(f"epoch {self.epoch + 1} step {self.step}: loss {loss:.3f}, lr {self.lr:.2e}, "
                        f"{speed:.0f} frames/s")
        if self.log:
            self.log.add(epoch=self.epoch + 1, step=self.step, split="train", loss=loss, lr=self.lr,
                         frames_per_s=speed, skipped=self.skipped.total)

    @torch.no_grad()
    def validate(self) -> dict:
        """Validation loss (per token), greedy WER and CER (`tasr.scoring.score`) over the whole validation set."""
        from models.ctc import ctc_loss, greedy_decode

        procs = self.procs
        self.model.eval()
        local = [data.shard(b, procs.rank, procs.world_size) for b in self.valid_batches]
        loader = data.make_loader(self.valid_set, local, self.config["batching"]["num_workers"])
        loss, tokens, pairs = 0.0, 0, []
        for batch in tqdm(loader, total=len(local), desc="validation", unit="batch",
                          disable=not (procs.main and self.show_bars),
                          leave=False, dynamic_ncols=True):
            for utt_id, reason in batch.skipped:
                self._bad(utt_id, reason, "unreadable audio", "valid")
            if len(batch) == 0:
                continue
            batch.to(procs.device)
            with self._autocast():
                log_probs, out_lengths = self.model(batch.waveforms, batch.lengths)
            loss += float(ctc_loss(log_probs, out_lengths, batch.tokens, batch.token_lengths, reduction="sum"))
            tokens += int(batch.token_lengths.sum())
            hyps = [self.tokenizer.decode(ids) for ids in greedy_decode(log_probs, out_lengths)]
            pairs.extend(zip(batch.texts, hyps))
        loss, tokens = procs.sum([loss, tokens])
        pairs = [p for part in procs.gather(pairs) for p in part]
        refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
        scores = score(refs, hyps, self.tokenizer.lowercase)
        metrics = {"loss": loss / max(tokens, 1), "wer": scores["wer"], "cer": scores["cer"]}
        self.model.train()
        self._flush_skipped()
        if self.log:
            self.log.add(epoch=self.epoch, step=self.step, split="valid", loss=metrics["loss"], wer=metrics["wer"],
                         cer=metrics["cer"], skipped=self.skipped.total)
            if time.time() - self.last_plot > 60:  # the curves of a long run, now and then (and at the end)
                self.log.plot()
                self.last_plot = time.time()
        self._print(f"epoch {self.epoch} step {self.step}: valid loss {metrics['loss']:.4f}, "
                    f"WER {100 * metrics['wer']:.2f}%, CER {100 * metrics['cer']:.2f}% "
                    f"({len(refs)} utterances); skipped so far: {self.skipped.summary()}")
        return metrics

    def _flush_skipped(self):
        """Count what every process skipped since the last call; rank 0 appends the new ones to skipped.tsv."""
        notes = [x for part in self.procs.gather(self.skipped.pending) for x in part]
        self.skipped.pending = []
        new = self.skipped.merge(notes)
        if self.procs.main and new:
            with open(self.exp / "skipped.tsv", "a", encoding="utf-8") as f:
                f.writelines(f"{split}\t{utt_id}\t{reason}\n" for split, utt_id, reason in new)

    def _checkpoint(self, metrics):
        """Write checkpoints/step-N.pt (rank 0) with every rank's RNG state, then prune old ones."""
        self._flush_skipped()
        rngs = self.procs.gather(rng_state(self.procs.device))
        if not self.procs.main:
            return
        rngs = [{k: (v.cpu() if torch.is_tensor(v) else v) for k, v in r.items()} for r in rngs]
        state = {
            "tasr_checkpoint": 1, "step": self.step, "epoch": self.epoch, "position": self.position,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "cmvn": None if self.model.cmvn is None else self.model.cmvn.state_dict(),
            "config": self.config, "tokenizer": self.tokenizer.to_state(), "rng": rngs,
            "world_size": self.procs.world_size, "skipped": self.skipped.state(), "metrics": metrics,
        }
        from tasr.average import record_metrics, prune

        path = self.checkpoints / f"step-{self.step:08d}.pt"
        save_checkpoint(path, state)
        record_metrics(self.checkpoints, path.name, self.step, self.epoch, metrics)
        prune(self.checkpoints, self.config["keep_last"], max(1, self.config["average"]), self.config["best_metric"])


# ---------------------------------------------------------------- command

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
    procs = Processes(args.device)
    try:
        trainer = Trainer(args, procs)
        try:
            trainer.run()
        except (KeyboardInterrupt, StopForBadAudio):
            if procs.world_size == 1 and trainer.step > 0:  # keep what was done (DDP peers may be gone)
                trainer.position = getattr(trainer, "step_position", trainer.position)
                trainer._checkpoint(None)
                print(f"checkpoint at step {trainer.step} written; --resume continues", file=sys.stderr)
            raise
    except BaseException:
        if procs.main:  # a run that failed before its first checkpoint leaves no empty checkpoints/ folder
            with suppress(OSError):
                (Path(args.exp_dir) / "checkpoints").rmdir()
        raise
    finally:
        procs.close()
