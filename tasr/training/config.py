"""The settings of a training run: `DEFAULTS`, updated by a YAML file and `section.key=value` overrides.

The file holds plain values; every key and its default is in `DEFAULTS`. An override's value is
YAML (`optim.lr=5e-4`, `model.encoder.left=null`, `speed_perturb=[0.9,1.0,1.1]`). Unknown keys
are errors, and `check_config` checks every value's type and range before any work is done, in
messages that name the setting ("config: optim.lr must be a positive number, got 'abc'").
"""

import copy
import dataclasses
import inspect
import math
import re

import yaml

from tasr import audio
from tasr.audio import options
from tasr.models.encoder import Encoder
from tasr.errors import TasrError
from tasr.text import KINDS as TOKENIZERS

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
    "narrowband": {                 # training utterances made to sound recorded at a lower sample rate
        "prob": 0.0,                # share of them (0: none)
        "rate": 8000,               # that rate, Hz (below the model's)
    },
    "noise": {                      # background noise added to training utterances
        "prob": 0.0,                # share of them (0: none)
        "snr_db": [10, 40],         # signal-to-noise ratio drawn in this range, dB
    },
    "gain_db": None,                # e.g. [-20, 6]: each training utterance's level changed by a gain drawn in this dB range
    "specaugment": True,            # SpecAugment in training (the model's own settings)
    "inter_ctc": {                  # intermediate CTC: loss (1 - weight) * CTC + weight * mean of the CTC losses
        "layers": [],               # of these blocks' outputs (1 = the first), through the encoder's final norm
        "weight": 0.3,              # and the same CTC head; training only, the model is unchanged
    },
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
        merge(config, given, str(path))
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
        merge(config, nested, f"override {override!r}")
    return config


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


def merge(config: dict, given: dict, where: str, prefix=""):
    """Update `config` in place with `given` (a nested mapping); `where` names its source in errors."""
    given = _numbers(given)
    for key, value in given.items():
        if key not in config and not prefix.startswith(("model.", "tokenizer.")):
            raise TasrError(f"{where}: unknown setting {prefix}{key} (known: {', '.join(config)})")
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            merge(config[key], value, where, f"{prefix}{key}.")
        else:
            config[key] = value


def _whole(value) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _db_range(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(_number(v) for v in value) and value[0] <= value[1]


# what a setting must be: (test, how an error message says it)
KINDS = {
    "integer": (_whole, "a whole number"),
    "count": (lambda v: _whole(v) and v >= 0, "a whole number >= 0"),
    "positive count": (lambda v: _whole(v) and v >= 1, "a whole number >= 1"),
    "number": (_number, "a number"),
    "number >= 0": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "positive number": (lambda v: _number(v) and v > 0, "a positive number"),
    "fraction": (lambda v: _number(v) and 0 <= v < 1, "a number from 0 to below 1"),
    "probability": (lambda v: _number(v) and 0 <= v <= 1, "a number from 0 to 1"),
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
    "inter_ctc.weight": "fraction",
    "narrowband.prob": "probability",
    "narrowband.rate": "positive count",
    "noise.prob": "probability",
}

CHOICES = {
    "precision": ("bf16", "fp32"),
    "best_metric": ("loss", "wer", "cer"),
    "optim.decay": ("cosine", "inverse_sqrt", "constant"),
}


def _model_defaults() -> dict:
    """{part: {option: default}} of the model's parts (front-end, encoder, SpecAugment), to check given types."""
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

    for key in ("optim", "batching", "inter_ctc", "narrowband", "noise", "model", "model.fbank", "model.encoder"):
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
    layers = config["inter_ctc"].get("layers")
    if not (isinstance(layers, list) and all(KINDS["positive count"][0](i) for i in layers)):
        fail("inter_ctc.layers", "a list of block numbers (1 = the first block), e.g. [3]", layers)
    config["inter_ctc"]["layers"] = [int(i) for i in layers]
    factors = config["speed_perturb"]
    if factors is not None and not (isinstance(factors, list) and all(KINDS["positive number"][0](f) for f in factors)):
        fail("speed_perturb", "null or a list of positive factors, e.g. [0.9, 1.0, 1.1]", factors)
    if config["gain_db"] is not None and not _db_range(config["gain_db"]):
        fail("gain_db", "null or [low, high] in dB with low <= high, e.g. [-20, 6]", config["gain_db"])
    if not _db_range(config["noise"].get("snr_db")):
        fail("noise.snr_db", "[low, high] in dB with low <= high, e.g. [10, 40]", config["noise"].get("snr_db"))

    tokenizer = config["tokenizer"]
    if not isinstance(tokenizer, (dict, str)):
        fail("tokenizer", "a tokenizer.json path or a mapping of kind, vocab_size and lowercase", tokenizer)
    if isinstance(tokenizer, dict):
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
