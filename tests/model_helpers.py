"""The tiny model the training, decoding and recipe tests train: small enough for a CPU in seconds."""

import copy

TINY_ENCODER = {"block": "conformer", "d_model": 32, "n_heads": 2, "n_layers": 1, "ff_dim": 64, "conv_kernel": 3,
                "subsampling_channels": 8, "left": 8, "right": 1, "dropout": 0.0}

# A training config (tasr train --config): 16 kHz, 23 mel bins, characters, one epoch, no SpecAugment.
TINY_CONFIG = {
    "model": {"sample_rate": 16000, "fbank": {"num_mel_bins": 23}, "encoder": TINY_ENCODER, "specaugment": None},
    "tokenizer": {"kind": "char"},
    "optim": {"lr": 0.002, "warmup_steps": 2},
    "batching": {"max_frames": 8000, "num_workers": 0},
    "epochs": 1,
    "log_interval": 1,
}


def tiny_config(**changes) -> dict:
    """A copy of TINY_CONFIG with `changes`; a key's `__` goes one section down (`model__encoder__left=4`)."""
    config = copy.deepcopy(TINY_CONFIG)
    for key, value in changes.items():
        section = config
        *parents, last = key.split("__")
        for parent in parents:
            section = section.setdefault(parent, {})
        section[last] = value
    return config
