"""Manifests, the training dataset and length-bucketed dynamic batches.

A manifest is JSON Lines, one utterance a line:

    {"id": "0_george_0", "audio": "recordings/0_george_0.wav", "duration": 0.43, "text": "zero"}

plus optional "speaker" and "offset" (seconds into the file; with it, "duration" seconds are read).
A relative "audio" path is relative to the folder of the manifest that names it, so a data folder
can be moved as a whole.

Batches are bounded by padded frames (10 ms frames, `max_frames` >= longest utterance x batch size),
the way WeNet's dynamic batching bounds them: utterances of similar length go together, the order
changes every epoch with the seed, and under DDP every rank takes its share of the same global batch.
"""

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tasr import audio
from tasr.audio.options import FrameOptions
from tasr.errors import TasrError
from tasr.files import write_text

REQUIRED_FIELDS = ("id", "audio", "duration", "text")
MAX_SECONDS = 7 * 24 * 3600  # a "duration" or "offset" beyond a week is a mistake, not a recording


# ---------------------------------------------------------------- manifests

def read_manifest(path, require_text: bool = True, bad_lines: list | None = None) -> list[dict]:
    """Read and check a JSONL manifest; "audio" paths come back absolute.

    Raises TasrError naming the file, the line and the reason for a line that is not UTF-8 or
    not a JSON object, a missing field, a field of the wrong type, an id that is not a plain file
    name, a duration or offset that is not a finite number in range, an empty transcript (when
    `require_text`) or a repeated id. Given a list as `bad_lines`, such lines are appended to it as
    (where, reason) and left out instead.
    """
    path = Path(path)
    if not path.is_file():
        raise TasrError(f"manifest {path}: no such file")
    items, seen = [], {}
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            where = f"manifest {path}, line {number}"
            try:
                item = _parse_line(raw, path.parent, require_text)
                if item is None:
                    continue
                if item["id"] in seen:
                    raise ValueError(f"id {item['id']!r} already used on line {seen[item['id']]}")
            except ValueError as error:
                if bad_lines is None:
                    raise TasrError(f"{where}: {error}") from None
                bad_lines.append((where, str(error)))
                continue
            seen[item["id"]] = number
            items.append(item)
    if not items and not bad_lines:
        raise TasrError(f"manifest {path}: no utterances")
    return items


def _parse_line(raw: bytes, folder: Path, require_text: bool) -> dict | None:
    """The checked utterance of one manifest line (None for a blank line); raises ValueError saying why not."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"not UTF-8 text (byte 0x{raw[error.start]:02x} at position {error.start + 1})") from None
    if not line.strip():
        return None
    try:
        item = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error.msg})") from None
    if not isinstance(item, dict):
        raise ValueError("expected a JSON object")
    needed = REQUIRED_FIELDS if require_text else REQUIRED_FIELDS[:3]
    missing = [name for name in needed if name not in item]
    if missing:
        raise ValueError(f"missing field(s) {', '.join(missing)}")
    utt_id = item["id"]
    if not isinstance(utt_id, str) or not utt_id:
        raise ValueError(f'"id" must be a non-empty string, not {json.dumps(utt_id)}')
    if not is_plain_name(utt_id):
        raise ValueError(f"id {utt_id!r} is not a plain file name (it must not be . or .. or hold / \\ or NUL)")
    if not isinstance(item["audio"], str) or not item["audio"]:
        raise ValueError(f'utterance {utt_id!r}: "audio" must be a path (a non-empty string), '
                         f'not {json.dumps(item["audio"])}')
    for name in ("duration", "offset"):
        value = item.get(name, 0.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f'utterance {utt_id!r}: "{name}" must be a number of seconds, not {json.dumps(value)}')
        low = 0 < value if name == "duration" else 0 <= value
        if not (low and value <= MAX_SECONDS):  # also refuses NaN and Infinity
            raise ValueError(f'utterance {utt_id!r}: "{name}" must be {"> 0" if name == "duration" else ">= 0"} '
                             f"and at most {MAX_SECONDS} s (a week), not {value}")
        if name in item:
            item[name] = float(value)
    if require_text:
        if not isinstance(item["text"], str):
            raise ValueError(f'utterance {utt_id!r}: "text" must be a string, not {json.dumps(item["text"])}')
        if not item["text"].strip():
            raise ValueError(f"utterance {utt_id!r}: empty transcript")
    item["audio"] = item["audio"] if os.path.isabs(item["audio"]) else str(folder / item["audio"])
    return item


def is_plain_name(name: str) -> bool:
    """Whether `name` names a file inside a folder: not empty, . or .., and without / \\ or NUL."""
    return name not in ("", ".", "..") and not any(c in name for c in "/\\\0")


def write_manifest(path, items, relative_to_manifest: bool = True) -> None:
    """Write utterances as JSONL atomically; audio paths under the manifest's folder become relative."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = path.parent.resolve()
    lines = []
    for item in items:
        item = dict(item)
        if relative_to_manifest and os.path.isabs(item["audio"]):
            audio_path = Path(item["audio"]).resolve()
            if folder in audio_path.parents:
                item["audio"] = str(audio_path.relative_to(folder))
        lines.append(json.dumps(item, ensure_ascii=False))
    write_text(path, "".join(line + "\n" for line in lines))


def missing_audio(items) -> list[tuple[str, str]]:
    """(id, reason) for every utterance whose audio file does not exist (cheap check before training)."""
    return [(item["id"], f"no such file {item['audio']}") for item in items if not os.path.isfile(item["audio"])]


# ---------------------------------------------------------------- audio of one utterance

class BadUtterance(Exception):
    """An utterance whose audio cannot be used; `utt_id` and `reason` say which and why."""

    def __init__(self, utt_id: str, reason: str):
        super().__init__(f"utterance {utt_id}: {reason}")
        self.utt_id, self.reason = utt_id, reason


def load_utterance(item: dict, sample_rate: int) -> torch.Tensor:
    """The waveform [N] (float32, mono, `sample_rate`) of one manifest entry, honouring "offset".

    With an "offset", only `duration` seconds from there are read (`audio.load` seeks; long recordings
    are never read whole). Raises BadUtterance for unreadable, empty or too short audio.
    """
    try:
        if "offset" in item:
            waveform = audio.load(item["audio"], sample_rate, offset=item["offset"], duration=item["duration"])
        else:
            waveform = audio.load(item["audio"], sample_rate)
    except (audio.AudioError, OSError, RuntimeError, ValueError) as error:
        raise BadUtterance(item["id"], f"cannot read {item['audio']}: {error}") from None
    if waveform.numel() < sample_rate // 40:  # shorter than one 25 ms window
        raise BadUtterance(item["id"], f"empty or too short audio in {item['audio']} ({waveform.numel()} samples)")
    if not torch.isfinite(waveform).all():
        raise BadUtterance(item["id"], f"non-finite samples in {item['audio']}")
    return waveform


# ---------------------------------------------------------------- dataset

class SpeechDataset(torch.utils.data.Dataset):
    """Utterances of a manifest as waveforms and token ids; features are computed later, batched.

    `speed_factors` (e.g. (0.9, 1.0, 1.1)) perturbs each utterance by a factor drawn from
    (seed, epoch, index): the same in every worker and after a resume. `narrowband` (prob, rate Hz)
    makes that share of the utterances, drawn the same way, sound recorded at `rate` (e.g. 8 kHz
    telephone audio in a 16 kHz model; `audio.narrowband`). `gain_db` (low, high) scales each
    utterance by a gain drawn uniformly in that range of dB, as recordings come at any level
    (Kaldi's volume perturbation). `noise` (prob, (low, high) dB) adds noise to that share of the
    utterances at a signal-to-noise ratio drawn in that range, its colour drawn from white to brown
    (`audio.add_noise`). An unreadable utterance
    comes back as {"index", "id", "error"} instead of raising, for `collate` to count and skip.
    """

    def __init__(self, items, tokenizer, sample_rate: int = 16000, speed_factors=None, seed: int = 0,
                 frame_shift_s: float = FrameOptions.frame_shift / 1000, narrowband=None, gain_db=None,
                 noise=None):
        self.items = list(items)
        self.frame_shift_s = frame_shift_s  # the model's front-end's (`SpeechRecognizer.frame_shift_s`)
        self.tokenizer = tokenizer
        self.sample_rate = sample_rate
        self.speed_factors = tuple(speed_factors) if speed_factors else None
        self.narrowband = narrowband if narrowband and narrowband[0] > 0 else None
        self.gain_db = tuple(gain_db) if gain_db else None
        self.noise = noise if noise and noise[0] > 0 else None
        self.seed = seed
        self.epoch = 0
        self.tokens = [tokenizer.encode(str(item.get("text", ""))) if tokenizer else [] for item in self.items]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self):
        return len(self.items)

    def frames(self, index: int) -> int:
        """Front-end frames (of `frame_shift_s`) of an utterance from its manifest duration, after the
        slowest speed factor."""
        slowest = min(self.speed_factors) if self.speed_factors else 1.0
        return math.ceil(self.items[index]["duration"] / self.frame_shift_s / slowest)

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        try:
            waveform = load_utterance(item, self.sample_rate)
            if self.speed_factors:
                rng = np.random.default_rng([self.seed, self.epoch, index])
                factor = float(self.speed_factors[rng.integers(len(self.speed_factors))])
                if factor != 1.0:
                    waveform = audio.speed_perturb(waveform, self.sample_rate, factor)
            if self.narrowband:
                prob, rate = self.narrowband
                if np.random.default_rng([self.seed, self.epoch, index, 1]).random() < prob:
                    waveform = audio.narrowband(waveform, self.sample_rate, rate)
            if self.noise:
                rng = np.random.default_rng([self.seed, self.epoch, index, 3])
                if rng.random() < self.noise[0]:
                    waveform = audio.add_noise(waveform, rng.uniform(*self.noise[1]), rng.uniform(0, 2), rng)
            if self.gain_db:
                gain = np.random.default_rng([self.seed, self.epoch, index, 2]).uniform(*self.gain_db)
                waveform = waveform * 10 ** (gain / 20)
        except BadUtterance as error:
            return {"index": index, "id": item["id"], "error": error.reason}
        return {"index": index, "id": item["id"], "waveform": waveform, "tokens": self.tokens[index],
                "text": str(item.get("text", ""))}


@dataclass
class Batch:
    """Padded waveforms [B, N] with lengths [B] (samples), tokens [B, L] with lengths [B], and what was skipped."""

    waveforms: torch.Tensor
    lengths: torch.Tensor
    tokens: torch.Tensor
    token_lengths: torch.Tensor
    ids: list = field(default_factory=list)
    texts: list = field(default_factory=list)
    skipped: list = field(default_factory=list)  # (id, reason)

    def __len__(self):
        return len(self.ids)

    def to(self, device):
        self.waveforms, self.lengths = self.waveforms.to(device), self.lengths.to(device)
        self.tokens, self.token_lengths = self.tokens.to(device), self.token_lengths.to(device)
        return self


def collate(examples: list[dict]) -> Batch:
    """Pad the good examples into a Batch; bad ones only go to `Batch.skipped`."""
    good = [e for e in examples if "error" not in e]
    skipped = [(e["id"], e["error"]) for e in examples if "error" in e]
    lengths = torch.tensor([e["waveform"].numel() for e in good], dtype=torch.long)
    token_lengths = torch.tensor([len(e["tokens"]) for e in good], dtype=torch.long)
    waveforms = torch.zeros(len(good), int(lengths.max()) if good else 0)
    tokens = torch.zeros(len(good), int(token_lengths.max()) if good else 0, dtype=torch.long)
    for i, e in enumerate(good):
        waveforms[i, : lengths[i]] = e["waveform"]
        tokens[i, : token_lengths[i]] = torch.tensor(e["tokens"], dtype=torch.long)
    return Batch(waveforms, lengths, tokens, token_lengths, [e["id"] for e in good],
                 [e["text"] for e in good], skipped)


# ---------------------------------------------------------------- batching

class DynamicBatches:
    """Global batches of utterance indices whose padded size (longest x count) stays within `max_frames`.

    Per epoch, with `shuffle`: indices are shuffled, grouped into length buckets (each ~10% wider
    than the last), batched greedily in bucket order, and the batches shuffled, all from
    (seed, epoch). Without `shuffle` (validation): longest first, fixed. Every batch has at least
    `min_size` utterances (the world size, so that no rank is idle) even if that exceeds
    `max_frames`; an utterance longer than `max_frames` is a batch of its own.
    """

    def __init__(self, frames, max_frames: int, seed: int = 0, shuffle: bool = True, min_size: int = 1):
        if max_frames <= 0:
            raise TasrError(f"max_frames must be positive, got {max_frames}")
        self.frames = np.asarray(frames, dtype=np.int64)
        self.max_frames, self.seed, self.shuffle, self.min_size = max_frames, seed, shuffle, min_size

    def epoch(self, epoch: int) -> list[list[int]]:
        """The global batches of `epoch`, a pure function of (frames, max_frames, seed, epoch)."""
        if self.shuffle:
            rng = np.random.default_rng([self.seed, epoch])
            order = rng.permutation(len(self.frames))
            buckets = np.floor(np.log(np.maximum(self.frames[order], 1)) / math.log(1.1))
            order = order[np.argsort(buckets, kind="stable")]
        else:
            order = np.argsort(-self.frames, kind="stable")
        batches, current, longest = [], [], 0
        for index in order.tolist():
            size = int(self.frames[index])
            full = max(longest, size) * (len(current) + 1) > self.max_frames
            if current and full and len(current) >= self.min_size:
                batches.append(current)
                current, longest = [], 0
            current.append(index)
            longest = max(longest, size)
        if current:
            if len(current) < self.min_size and batches:
                batches[-1].extend(current)
            else:
                batches.append(current)
        if self.shuffle:
            rng.shuffle(batches)
        return batches


def shard(batch: list[int], rank: int, world_size: int) -> list[int]:
    """This rank's part of a global batch (every world_size-th utterance: balanced lengths)."""
    return batch[rank::world_size]


def make_loader(dataset: SpeechDataset, batches: list[list[int]], num_workers: int = 0, seed: int = 0):
    """A DataLoader yielding `Batch`es for the given (already sharded) index lists, in order.

    It has its own random generator (seeded with `seed`), so starting it does not draw from the
    global torch RNG (which a resumed run restores for SpecAugment and dropout).
    """
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=batches, collate_fn=collate, num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=False, prefetch_factor=4 if num_workers > 0 else None,
        persistent_workers=False,
    )
