"""Collect a recipe's decodes into EXP/RESULTS.md: one table row per test set and search method.

Reads EXP/decode/<set>/<method>/summary.json (written by `tasr decode`), the model file for
its size and look-ahead, and EXP/.done/stage4.train for the training time. Every figure in
the table comes from those files: nothing is typed in by hand.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path


def model_facts(path: Path) -> list[str]:
    """Lines describing the model file: parameters, encoder, attention context, look-ahead."""
    if not path.exists():
        return [f"- model: {path} (missing)"]
    from tasr.model import SpeechRecognizer

    model = SpeechRecognizer.load(path)
    encoder = model.config.get("encoder", {})
    parameters = sum(p.numel() for p in model.parameters())
    lookahead = model.encoder.lookahead_ms
    facts = [
        f"- model: `{path.name}`, {parameters / 1e6:.2f} M parameters, {path.stat().st_size / 1e6:.1f} MB file",
        f"- encoder: {encoder.get('block', '?')} x {encoder.get('n_layers', '?')}, d_model {encoder.get('d_model', '?')}, "
        f"attention context left {encoder.get('left')} / right {encoder.get('right')} frames of "
        f"{model.encoder.subsampling * model.encoder.frame_shift_ms:.0f} ms, look-ahead "
        + ("unlimited (full attention)" if lookahead is None else f"{lookahead:.0f} ms"),
        f"- tokenizer: {type(model.tokenizer).__name__}, {model.tokenizer.vocab_size} tokens (with blank)",
    ]
    return facts


def stage_seconds(exp: Path, marker: str):
    path = exp / ".done" / marker
    if not path.exists():
        return None
    for word in path.read_text().split():
        if word.endswith("s") and word[:-1].isdigit():
            return int(word[:-1])
    return None


def git_commit() -> str:
    try:
        result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=10)
        return result.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def cpu_model() -> str:
    """The processor's name (/proc/cpuinfo's "model name"), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> str:
    """Versions of the packages that decide the numbers, torch's CPU kernels (AVX2, AVX512...) and the cores."""
    import numpy
    import torch
    import torchaudio

    return (f"python {platform.python_version()}, torch {torch.__version__}, torchaudio {torchaudio.__version__}, "
            f"numpy {numpy.__version__}, torch CPU kernels {torch.backends.cpu.get_cpu_capability()}, "
            f"{os.cpu_count()} CPU cores")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp-dir", required=True, type=Path)
    parser.add_argument("--title", required=True)
    parser.add_argument("--model", default="model.pt", help="model file name inside EXP")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)

    summaries = sorted((args.exp_dir / "decode").glob("*/*/summary.json"))
    if not summaries:
        print(f"no decode results under {args.exp_dir / 'decode'} (run stage 6 first)", file=sys.stderr)
        return 1
    rows = ["| set | search | utterances | words | WER % | sub | del | ins | CER % | sentence err % | RTF |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for path in summaries:
        s = json.loads(path.read_text())
        rtf = "" if s.get("rtf") is None else f"{s['rtf']:.4f}"
        rows.append(f"| {path.parent.parent.name} | {s['search']} | {s['utterances']} | {s['words']} | "
                    f"{100 * s['wer']:.2f} | {s['substitutions']} | {s['deletions']} | {s['insertions']} | "
                    f"{100 * s['cer']:.2f} | {100 * s['sentence_error_rate']:.1f} | {rtf} |")
    train_seconds = stage_seconds(args.exp_dir, "stage4.train")
    device = json.loads(summaries[0].read_text()).get("device", "?")
    lines = [f"# {args.title}", "",
             f"- written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from `{args.exp_dir}`, "
             f"tasr commit {git_commit()}, decoded on {device}",
             f"- machine: {cpu_model()}; {versions()}",
             *model_facts(args.exp_dir / args.model),
             "- training (stage 4) wall time: " + (f"{train_seconds / 60:.1f} min" if train_seconds is not None
                                                    else "unknown"),
             "", *rows, "",
             "WER and CER from jiwer (`tasr decode`); RTF = compute seconds / audio seconds.", ""]
    args.out.write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
