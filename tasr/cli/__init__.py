"""The `tasr` command: a thin layer over the library.

Each subcommand lives in its own module, which defines `add_arguments(parser)` and
`main(args) -> int | None`. Modules are imported only when their command runs, so
`tasr --help` stays fast.
"""

import argparse
import importlib
import os
import sys

from tasr import __version__
from tasr.errors import TasrError

# "words of the command": (module, one-line help)
COMMANDS = {
    "tokenizer": ("tasr.cli.tokenizer", "train a character or SentencePiece (bpe/unigram) tokenizer from manifest text"),
    "cmvn": ("tasr.cli.cmvn", "compute global CMVN statistics of a manifest"),
    "train": ("tasr.cli.train", "train a CTC model from manifests (checkpoints, resume, torchrun DDP)"),
    "average": ("tasr.cli.average", "average checkpoints into a model file"),
    "decode": ("tasr.cli.decode", "decode a manifest and score it: hypotheses, per-utterance errors, WER/CER, RTF"),
    "lm": ("tasr.cli.lm", "build a word n-gram language model (ARPA, Witten-Bell) from text files or manifests"),
    "transcribe": ("tasr.cli.transcribe", "transcribe audio files of any length: text, word times, srt/vtt/json/tsv"),
    "export": ("tasr.cli.export", "export a model to ONNX for onnxruntime and sherpa-onnx (fp32, --int8)"),
    "bench features": ("tasr.bench.features", "feature extraction speed: tasr vs torchaudio, kaldi-native-fbank, librosa"),
    "bench attention": ("tasr.bench.attention", "measure attention time and memory against sequence length, per backend"),
    "bench train": ("tasr.bench.train", "training frames/s and peak memory, truncated vs full attention"),
    "bench transcribe": ("tasr.bench.transcribe", "real-time factor of transcription on 10/60/600 s inputs, 1-2 threads"),
}


def _overview() -> str:
    width = max(len(words) for words in COMMANDS) if COMMANDS else 0
    lines = [f"  {words.ljust(width)}  {help}" for words, (_, help) in COMMANDS.items()]
    return "commands:\n" + "\n".join(lines) + "\n\nRun `tasr COMMAND --help` for the options of a command."


def _find(argv):
    """The longest registered command that `argv` starts with: (words, rest of argv) or (None, argv)."""
    for words in sorted(COMMANDS, key=lambda w: -len(w.split())):
        n = len(words.split())
        if argv[:n] == words.split():
            return words, argv[n:]
    return None, argv


def at_least(minimum: int):
    """An argparse type: a whole number >= `minimum` (a wrong one is a usage error naming the flag)."""
    def whole_number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return whole_number


def describe_os_error(error: OSError) -> str:
    """"PATH: reason" of an OSError (both paths of a failed rename)."""
    if error.filename is None:
        return error.strerror or str(error)
    names = f"{error.filename} -> {error.filename2}" if error.filename2 else f"{error.filename}"
    return f"{names}: {error.strerror or error}"


def main(argv=None) -> int:
    # Idle OpenMP threads sleep instead of spinning. On a shared machine (more runnable threads
    # than cores) spinning threads take the cores the working ones need: 2 threads ran 4-30x
    # slower than 1 on a busy 2-core machine. Set before any command imports torch; the user's
    # value wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = sys.argv[1:] if argv is None else list(argv)
    words, rest = _find(argv)
    if words is None:
        parser = argparse.ArgumentParser(
            prog="tasr",
            description="Speech recognition with truncated self-attention.",
            epilog=_overview(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.add_argument("--version", action="version", version=f"tasr {__version__}")
        parser.add_argument("command", nargs="*", help="see the list of commands below")
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return 2
        parser.error(f"unknown command {' '.join(args.command)!r}\n\n{_overview()}")
    module_name, help = COMMANDS[words]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(
        prog=f"tasr {words}",
        description=module.__doc__ or help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        return module.main(args) or 0
    except TasrError as error:
        print(f"tasr {words}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # an output that cannot be written: read-only, a file in the way, disk full
        print(f"tasr {words}: error: {describe_os_error(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tasr {words}: interrupted", file=sys.stderr)
        return 130
