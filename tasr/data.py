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
import soundfile
import torch

import audio
from tasr.errors import TasrError
from tasr.files import write_text

FRAMES_PER_SECOND = 100  # 10 ms frame shift of the front-end
REQUIRED_FIELDS = ("id", "audio", "duration", "text")


# ---------------------------------------------------------------- manifests

def read_manifest(path, require_text: bool = True) -> list[dict]:
    """Read and check a JSONL manifest; "audio" paths come back absolute.

    Raises TasrError naming the file, the line and the reason for malformed JSON, a missing
    field, a non-positive duration, an empty transcript (when `require_text`) or a repeated id.
    """
    path = Path(path)
    if not path.is_file():
        raise TasrError(f"manifest {path}: no such file")
    items, seen = [], {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"manifest {path}, line {number}"
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                raise TasrError(f"{where}: not valid JSON ({error.msg})") from None
            if not isinstance(item, dict):
                raise TasrError(f"{where}: expected a JSON object")
            needed = REQUIRED_FIELDS if require_text else REQUIRED_FIELDS[:3]
            missing = [name for name in needed if name not in item]
            if missing:
                raise TasrError(f"{where}: missing field(s) {', '.join(missing)}")
            item["id"] = str(item["id"])
            if item["id"] in seen:
                raise TasrError(f"{where}: id {item['id']!r} already used on line {seen[item['id']]}")
            seen[item["id"]] = number
            try:
                item["duration"] = float(item["duration"])
                if "offset" in item:
                    item["offset"] = float(item["offset"])
            except (TypeError, ValueError):
                raise TasrError(f"{where} ({item['id']}): duration/offset must be numbers") from None
            if not item["duration"] > 0 or item.get("offset", 0) < 0:
                raise TasrError(f"{where} ({item['id']}): duration must be > 0 and offset >= 0")
            if require_text and not str(item["text"]).strip():
                raise TasrError(f"{where} ({item['id']}): empty transcript")
            item["audio"] = str(path.parent / item["audio"]) if not os.path.isabs(item["audio"]) else item["audio"]
            items.append(item)
    if not items:
        raise TasrError(f"manifest {path}: no utterances")
    return items


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
    write_text(path, "\n".join(lines) + "\n")


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

    With an "offset", only `duration` seconds from there are read (soundfile seeks; long recordings
    are never read whole). Raises BadUtterance for unreadable, empty or too short audio.
    """
    try:
        if "offset" in item:
            with soundfile.SoundFile(item["audio"]) as f:
                start = round(item["offset"] * f.samplerate)
                if start >= f.frames:
                    raise BadUtterance(item["id"], f"offset {item['offset']} s is past the end of {item['audio']}")
                f.seek(start)
                data = f.read(round(item["duration"] * f.samplerate), dtype="float32", always_2d=True)
                waveform = audio.load((torch.from_numpy(data.mean(axis=1)), f.samplerate), sample_rate=sample_rate)
        else:
            waveform = audio.load(item["audio"], sample_rate=sample_rate)
    except BadUtterance:
        raise
    except (audio.AudioError, OSError, RuntimeError, ValueError, soundfile.LibsndfileError) as error:
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
    (seed, epoch, index): the same in every worker and after a resume. An unreadable utterance
    comes back as {"index", "id", "error"} instead of raising, for `collate` to count and skip.
    """

    def __init__(self, items, tokenizer, sample_rate: int = 16000, speed_factors=None, seed: int = 0):
        self.items = list(items)
        self.tokenizer = tokenizer
        self.sample_rate = sample_rate
        self.speed_factors = tuple(speed_factors) if speed_factors else None
        self.seed = seed
        self.epoch = 0
        self.tokens = [tokenizer.encode(str(item.get("text", ""))) if tokenizer else [] for item in self.items]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self):
        return len(self.items)

    def frames(self, index: int) -> int:
        """Feature frames (10 ms) of an utterance from its manifest duration, after the slowest speed factor."""
        slowest = min(self.speed_factors) if self.speed_factors else 1.0
        return math.ceil(self.items[index]["duration"] * FRAMES_PER_SECOND / slowest)

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        try:
            waveform = load_utterance(item, self.sample_rate)
            if self.speed_factors:
                rng = np.random.default_rng([self.seed, self.epoch, index])
                factor = float(self.speed_factors[rng.integers(len(self.speed_factors))])
                if factor != 1.0:
                    waveform = audio.speed_perturb(waveform, self.sample_rate, factor)
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
