"""Training speed and memory, truncated vs full attention: `tasr bench train --config conf.yaml --seconds 10 30`.

For every utterance length and attention context, a fresh child process builds the model of
the config (with `model.encoder.left/right` replaced), then runs `--steps` training steps
(forward, CTC loss, backward, AdamW) on a batch of `--batch` utterances of random audio of
that length, after one warm-up step. Each child reports:

- frames/s: input frames (10 ms) per second of training, warm-up excluded;
- peak RSS: the child's peak resident memory (getrusage ru_maxrss), i.e. the whole process;
- step memory: peak RSS minus the RSS before the first step (what the training steps add);
- peak GPU memory (torch.cuda.max_memory_allocated) when --device is cuda.

The table compares each context with full attention at the same length. `--check` makes the
command fail (exit 1) unless, at the longest length, every truncated context needs less step
memory than full attention, which is the point of truncating it.
"""

import json
import resource
import sys
import time

import torch

from tasr.models.attention import choose_backend
from tasr.models.ctc import ctc_loss
from tasr.bench.child import run_in_child
from tasr.errors import TasrError
from tasr.files import write_text
from tasr.model import SpeechRecognizer
from tasr.text import CharTokenizer
from tasr.training.config import DEFAULTS, load_config, merge


def parse_context(text: str):
    """"16,2" -> (16, 2); "none" or "full" -> (None, None); "none,4" -> (None, 4)."""
    if text.lower() in ("none", "full"):
        return None, None
    parts = text.split(",")
    if len(parts) != 2:
        raise TasrError(f"--contexts {text!r}: expected LEFT,RIGHT (frame counts or none) or 'none'")
    try:
        return tuple(None if p.strip().lower() == "none" else int(p) for p in parts)
    except ValueError:
        raise TasrError(f"--contexts {text!r}: LEFT and RIGHT must be integers or none") from None


def describe(context) -> str:
    left, right = context
    return "full" if left is None and right is None else f"left={left}, right={right}"


def measure(job: dict) -> dict:
    """Run in the child: build, warm up, time `steps` training steps; figures as a dict."""
    if job["threads"]:
        torch.set_num_threads(job["threads"])
    config = json.loads(json.dumps(DEFAULTS))
    merge(config, job["config"], "config")
    config["model"].setdefault("encoder", {})
    config["model"]["encoder"]["left"], config["model"]["encoder"]["right"] = job["context"]
    config["model"]["encoder"]["dropout"] = config["model"]["encoder"].get("dropout", 0.1)
    device = torch.device(job["device"])
    tokenizer = CharTokenizer(list("abcdefghijklmnopqrstuvwxyz '"))
    torch.manual_seed(0)
    model = SpeechRecognizer(config["model"], tokenizer).to(device).train()
    model.specaugment = None
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rate, batch, seconds = model.sample_rate, job["batch"], job["seconds"]
    waveforms = (0.1 * torch.randn(batch, int(seconds * rate))).to(device)
    lengths = torch.full((batch,), waveforms.shape[1], device=device)
    n_tokens = int(seconds * 4)  # about 4 characters a second, a CTC-feasible transcript
    tokens = torch.randint(2, tokenizer.vocab_size, (batch, n_tokens), device=device)
    token_lengths = torch.full((batch,), n_tokens, device=device)
    bf16 = job["bf16"] and device.type == "cuda"

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            log_probs, out_lengths = model(waveforms, lengths)
        loss = ctc_loss(log_probs, out_lengths, tokens, token_lengths)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    loss = step()  # warm-up: allocator pools, optimizer state, kernel choice
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(job["steps"]):
        loss = step()
    sync()
    elapsed = time.perf_counter() - start
    frames = batch * seconds * 100 * job["steps"]
    return {
        "frames_per_s": frames / elapsed,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "step_rss_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024,
        "peak_gpu_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "loss": float(loss.detach()),
        "parameters": sum(p.numel() for p in model.parameters()),
        "backend": attention_backend(model, batch, int(model.encoder.output_lengths(lengths[:1]).item())),
    }


def attention_backend(model, batch: int, frames: int) -> str:
    """The attention backend `auto` picks for this model and `frames` subsampled frames."""
    attention = model.encoder.blocks[0].attention
    if attention.backend != "auto":
        return attention.backend
    heads = attention.n_heads if hasattr(attention, "n_heads") else 1
    device = next(model.parameters()).device
    q = torch.empty(batch, heads, frames, model.encoder.d_model // heads, device=device)
    return choose_backend(q, attention.left, attention.right)


def add_arguments(parser):
    parser.add_argument("--config", help="training config whose model to measure (default: tasr train's defaults)")
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 30.0], help="utterance lengths")
    parser.add_argument("--contexts", nargs="+", default=["16,2", "none"],
                        help="attention contexts LEFT,RIGHT (subsampled frames) to compare; 'none' is full")
    parser.add_argument("--batch", type=int, default=2, help="utterances per step")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up step)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per child (0: torch's default)")
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16", help="autocast on GPU")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds one measurement may take")
    parser.add_argument("--out", help="also write the figures as JSON here")
    parser.add_argument("--check", action="store_true",
                        help="fail unless truncated attention needs less step memory than full at the longest length")


def main(args):
    config = load_config(args.config) if args.config else {}
    contexts = [parse_context(c) for c in args.contexts]
    if (None, None) not in contexts:
        contexts.append((None, None))  # the reference every row is compared with
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise TasrError("--device cuda: no GPU is available")
    rows = []
    for seconds in args.seconds:
        for context in contexts:
            job = {"config": config, "context": list(context), "seconds": seconds, "batch": args.batch,
                   "steps": args.steps, "device": args.device, "threads": args.threads,
                   "bf16": args.precision == "bf16"}
            print(f"measuring {seconds:g} s, {describe(context)} ...", file=sys.stderr, flush=True)
            result = run_in_child("tasr.bench.train:measure", job, args.timeout)
            rows.append({"seconds": seconds, "context": describe(context), **result})

    gpu = args.device.startswith("cuda")
    header = f"{'length':>7}  {'attention':<20}{'backend':>9}{'frames/s':>10}{'peak RSS MiB':>14}{'step MiB':>10}"
    header += f"{'GPU MiB':>9}" if gpu else ""
    header += f"{'speed vs full':>15}{'memory vs full':>16}"
    print(f"training steps, batch {args.batch}, {args.steps} timed steps, device {args.device}")
    print(header)
    for row in rows:
        full = next(r for r in rows if r["seconds"] == row["seconds"] and r["context"] == "full")
        if "error" in row:
            print(f"{row['seconds']:>6g}s  {row['context']:<20}{row['error']}")
            continue
        memory_key = "peak_gpu_mib" if gpu else "step_rss_mib"
        line = (f"{row['seconds']:>6g}s  {row['context']:<20}{row['backend']:>9}{row['frames_per_s']:>10.0f}"
                f"{row['peak_rss_mib']:>14.0f}{row['step_rss_mib']:>10.0f}")
        line += f"{row['peak_gpu_mib']:>9.0f}" if gpu else ""
        if "error" in full:
            line += f"{'(full: ' + full['error'] + ')':>31}"
        else:
            line += f"{row['frames_per_s'] / full['frames_per_s']:>14.2f}x"
            line += f"{row[memory_key] / max(full[memory_key], 1e-9):>15.2f}x"
        print(line)
    if args.out:
        write_text(args.out, json.dumps(rows, indent=1))
    if args.check:
        longest = max(args.seconds)
        full = next(r for r in rows if r["seconds"] == longest and r["context"] == "full")
        key = "peak_gpu_mib" if gpu else "step_rss_mib"
        failed = [r for r in rows if r["seconds"] == longest and r["context"] != "full"
                  and ("error" in r or ("error" not in full and r[key] >= full[key]))]
        if failed:
            print(f"check failed: at {longest:g} s, {', '.join(r['context'] for r in failed)} did not need less "
                  f"memory than full attention", file=sys.stderr)
            return 1
        print(f"check passed: at {longest:g} s every truncated context needs less memory than full attention")
    return 0
