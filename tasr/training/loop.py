"""The training loop: one run, from manifests and settings to an experiment folder ending in model.pt.

`train(options, device)` runs it in this process; under `torchrun` every process runs it and
takes its share of every global batch (gloo on CPU, NCCL on GPU; only rank 0 writes), so N
processes compute the same updates as one with the same `batching.max_frames`. The folder
(listed in `tasr train --help`) gets config.yaml, tokenizer.json, cmvn.json, train_log.csv,
train_curves.png, checkpoints/, skipped.tsv and model.pt: the best checkpoint, or the average
of the `average` best ones.

A run checkpoints at the end of each epoch (and every `checkpoint_interval` steps) with every
process's RNG state, so a resumed run continues exactly where the checkpoint was taken and
ends with the weights of an uninterrupted one. A tokenizer that was not trained on the training
text (a checkpoint's, a given one) must spell it: more than `max_unk_rate` of its tokens <unk>
stops the run before any work.
"""

import math
import sys
import time
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from tasr.models.ctc import ctc_feasible, ctc_loss, greedy_decode
from tasr import data, text
from tasr.text import UNK
from tasr.errors import TasrError
from tasr.files import make_folder, write_text
from tasr.scoring import score
from tasr.training.averaging import write_final_model
from tasr.training.building import build_model, build_tokenizer
from tasr.training.checkpoints import checkpoint_paths, load_checkpoint, prune, record_metrics, save_checkpoint
from tasr.training.cmvn import compute_cmvn, load_cmvn
from tasr.training.config import MAX_UNK_RATE, apply_overrides, check_config, load_config, merge
from tasr.training.distributed import Processes
from tasr.training.log import TrainLog
from tasr.training.optim import learning_rate, parameter_groups
from tasr.training.rng import rng_state, seed_everything, set_rng_state
from tasr.training.skipped import Skipped, StopForBadAudio


@dataclass
class RunOptions:
    """What a run is given besides its settings (the flags of `tasr train`)."""

    train: str                          # training manifest (JSONL)
    valid: str                          # validation manifest (JSONL)
    exp_dir: str                        # the experiment folder
    config: str | None = None           # YAML file of settings (not needed to resume)
    overrides: list[str] = field(default_factory=list)  # section.key=value settings
    seed: int | None = None             # replaces the config's seed (a fresh run only)
    resume: bool = False                # continue from the latest checkpoint of exp_dir, if any
    resume_from: str | None = None      # continue from this checkpoint file
    tokenizer: str | None = None        # a tokenizer.json instead of training one
    cmvn: str | None = None             # a cmvn.json instead of computing it
    on_bad_audio: str = "skip"          # "skip" (report it) or "stop" the run
    max_unk_rate: float = MAX_UNK_RATE  # the most <unk> tokens (a fraction) the training text may give
    stop_after: int | None = None       # checkpoint and stop after this many steps


def train(options: RunOptions, device: str = "auto") -> None:
    """One run in this process (one of torchrun's, or alone) on `device` ("auto", "cpu", "cuda", ...).

    Interrupted (Ctrl-C, or a bad utterance under on_bad_audio="stop"), a one-process run
    checkpoints what it did first; a run that failed before its first checkpoint leaves no
    empty checkpoints/ folder.
    """
    procs = Processes(device)
    try:
        trainer = Trainer(options, procs)
        try:
            trainer.run()
        except (KeyboardInterrupt, StopForBadAudio):
            if procs.world_size == 1 and trainer.step > 0:  # keep what was done (DDP peers may be gone)
                trainer.position = getattr(trainer, "step_position", trainer.position)
                trainer._checkpoint(None)
                print(f"checkpoint at step {trainer.step} written; --resume continues", file=sys.stderr)
            raise
    except BaseException:
        if procs.main:
            with suppress(OSError):
                (Path(options.exp_dir) / "checkpoints").rmdir()
        raise
    finally:
        procs.close()


class Trainer:
    """One training run: the model, optimizer and data of this process, and the loop over them."""

    def __init__(self, options: RunOptions, procs: Processes):
        self.options, self.procs = options, procs
        self.show_bars = sys.stderr.isatty()  # progress bars on a terminal, plain lines in a log file
        self.exp = Path(options.exp_dir)
        self.checkpoints = self.exp / "checkpoints"  # made with the first checkpoint

        resume = self._resume_checkpoint()
        self.resumed_metrics = resume.get("metrics") if resume is not None else None
        if resume is not None:
            config = load_config(None, [])
            merge(config, resume["config"], f"checkpoint {self.resume_path}")
            apply_overrides(config, options.overrides)
        else:
            if options.config is None:
                raise TasrError("--config is needed (unless --resume finds a checkpoint)")
            config = load_config(options.config, options.overrides)
            if options.seed is not None:
                config["seed"] = options.seed
        check_config(config)
        self.config = config
        self.on_bad_audio = options.on_bad_audio
        self.skipped = Skipped(resume["skipped"] if resume else None)

        train_items = data.read_manifest(options.train)
        valid_items = data.read_manifest(options.valid)
        train_items = self._drop_missing(train_items, "train")
        valid_items = self._drop_missing(valid_items, "valid")

        # tokenizer (rank 0 trains it, the others read it)
        if resume is not None:
            self.tokenizer = text.tokenizer_from_state(resume["tokenizer"])
        elif procs.main:
            self.tokenizer = build_tokenizer(config["tokenizer"], [i["text"] for i in train_items], options.tokenizer)
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
        blocks = len(self.model.encoder.blocks)
        if any(i >= blocks for i in config["inter_ctc"]["layers"]):
            raise TasrError(f"config: inter_ctc.layers must be block numbers from 1 to {blocks - 1} (the model has "
                            f"{blocks} blocks), got {config['inter_ctc']['layers']}")
        self.model.to(procs.device)
        if resume is None:
            self._set_cmvn(train_items)
        elif procs.main and self.model.cmvn is not None:
            self.model.cmvn.save(self.exp / "cmvn.json")
        self.sample_rate = self.model.sample_rate
        self._set_specaugment(config["specaugment"])

        subsampling = self.model.encoder.subsampling
        narrowband = config["narrowband"]
        if narrowband["prob"] and not narrowband["rate"] < self.sample_rate:
            raise TasrError(f"config: narrowband.rate must be below the model's sample rate {self.sample_rate} Hz, "
                            f"got {narrowband['rate']}")
        augment = {"speed_factors": config["speed_perturb"], "narrowband": (narrowband["prob"], narrowband["rate"]),
                   "gain_db": config["gain_db"], "noise": (config["noise"]["prob"], config["noise"]["snr_db"])}
        self.train_set = self._dataset(train_items, subsampling, "train", augment)
        self.valid_set = self._dataset(valid_items, subsampling, "valid")
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
        if self.options.resume_from:
            self.resume_path = Path(self.options.resume_from)
            return load_checkpoint(self.resume_path)
        paths = checkpoint_paths(self.checkpoints)
        if not self.options.resume:
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
        unk = self.tokenizer.tokens.index(UNK)
        tokens = [t for item in items for t in self.tokenizer.encode(str(item["text"]))]
        rate = tokens.count(unk) / max(len(tokens), 1)
        given = self.options.tokenizer or (self.config["tokenizer"] if isinstance(self.config["tokenizer"], str) else None)
        source = (f"the tokenizer of checkpoint {self.resume_path}" if resumed else
                  f"tokenizer {given}" if given else "the tokenizer trained on it")
        if rate > self.options.max_unk_rate:
            raise TasrError(f"{100 * rate:.1f}% of the training tokens are {UNK} with {source}: it was made for "
                            f"other text. Use a tokenizer of this data, or raise --max-unk-rate (now "
                            f"{self.options.max_unk_rate:g}) to train anyway")
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

    def _dataset(self, items, subsampling, split, augment=None):
        """The utterances of `split` that fit their transcripts, with `augment` (SpeechDataset's keyword
        arguments: speed_factors, narrowband, gain_db, noise) for training."""
        shift = self.model.frame_shift_s
        options = {"seed": self.config["seed"], "frame_shift_s": shift, **(augment or {})}
        dataset = data.SpeechDataset(items, self.tokenizer, self.sample_rate, **options)
        keep = []
        for i, item in enumerate(dataset.items):
            if not dataset.tokens[i]:
                self._bad(item["id"], "transcript has no tokens", "empty transcript", split, self.procs.main)
            elif not ctc_feasible(dataset.tokens[i], int(item["duration"] / shift), subsampling):
                self._bad(item["id"], f"{len(dataset.tokens[i])} tokens do not fit in {item['duration']:.2f} s",
                          "too short for its transcript", split, self.procs.main)
            else:
                keep.append(i)
        if not keep:
            raise TasrError(f"no usable {split} utterances left (see the messages above)")
        if len(keep) < len(dataset.items):
            dataset = data.SpeechDataset([dataset.items[i] for i in keep], self.tokenizer, self.sample_rate, **options)
        return dataset

    def _set_cmvn(self, train_items):
        path = self.exp / "cmvn.json"
        if self.procs.main:
            if self.options.cmvn:
                stats = load_cmvn(self.options.cmvn)
            else:
                batching = self.config["batching"]
                stats = compute_cmvn(self.model.frontend, self.model.sample_rate, train_items,
                                     self.config["cmvn_utterances"], self.config["seed"],
                                     batching["max_frames"], batching["num_workers"], self.procs.device)
            stats.save(path)
        self.procs.barrier()
        self.model.cmvn = load_cmvn(path).to(self.procs.device)

    def _set_specaugment(self, enabled: bool):
        if not enabled:
            self.model.specaugment = None

    # ---- the loop

    def run(self) -> None:
        config, procs = self.config, self.procs
        accumulation = config["batching"]["accumulation"]
        max_epochs = config["epochs"] or sys.maxsize
        stop_after = self.options.stop_after
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
        for utt_id, reason in batch.skipped:
            self._bad(utt_id, reason, "unreadable audio", "train")
        empty = len(batch) == 0
        if empty:  # every utterance of this rank's share was bad: a silent stand-in keeps DDP in step
            batch = data.Batch(torch.zeros(1, self.sample_rate), torch.tensor([self.sample_rate]),
                               torch.ones(1, 1, dtype=torch.long), torch.ones(1, dtype=torch.long))
        batch.to(self.procs.device)
        sync = self.ddp.no_sync() if (more_to_come and self.ddp is not self.model) else nullcontext()
        with sync:
            loss_sum = self._loss_sum(batch)
            if empty:
                loss_sum = loss_sum * 0.0
            tokens = 0 if empty else int(batch.token_lengths.sum())
            frames = 0 if empty else float(batch.lengths.sum()) / self.sample_rate / self.model.frame_shift_s
            total_loss, total_tokens, total_frames = self.procs.sum([float(loss_sum.detach()), tokens, frames])
            # DDP averages gradients over ranks: scale so that the average is d(sum of losses / all tokens)
            scale = self.procs.world_size / max(total_tokens, 1.0) / accumulation
            (loss_sum * scale).backward()
        return total_loss, total_tokens, total_frames

    def _loss_sum(self, batch: data.Batch) -> torch.Tensor:
        """The training objective summed over the batch: CTC, mixed with intermediate CTC losses (`inter_ctc`)."""
        layers, weight = self.config["inter_ctc"]["layers"], self.config["inter_ctc"]["weight"]
        with self._autocast():
            outputs = self.ddp(batch.waveforms, batch.lengths, tuple(layers))
        log_probs, out_lengths = outputs[:2]
        loss_sum = ctc_loss(log_probs, out_lengths, batch.tokens, batch.token_lengths, reduction="sum")
        if not layers:
            return loss_sum
        inter = sum(ctc_loss(x, out_lengths, batch.tokens, batch.token_lengths, reduction="sum") for x in outputs[2])
        return (1 - weight) * loss_sum + weight * inter / len(layers)

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
        path = self.checkpoints / f"step-{self.step:08d}.pt"
        save_checkpoint(path, state)
        record_metrics(self.checkpoints, path.name, self.step, self.epoch, metrics)
        prune(self.checkpoints, self.config["keep_last"], max(1, self.config["average"]), self.config["best_metric"])
