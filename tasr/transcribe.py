"""Transcribe audio files of any length with a tasr model: text, word timestamps, subtitles.

INPUT is any mix of audio files (anything `audio.load` reads: wav, flac, ogg, mp3, ...; any
sample rate, mono or stereo), folders (searched recursively for audio files) and JSONL
manifests (`.jsonl`, with "audio" and optional "offset"/"duration"). Each input gives one
output file per format, named after it (the utterance id for manifests), written next to the
input (next to the manifest for manifests) or under --output-dir (mirroring folder inputs'
sub-folders). An input is never overwritten.

Long recordings: there is no 30-second slicing. With truncated attention each output frame
depends on a bounded receptive field, so the encoder's memory grows LINEARLY with the length of
the input: a recording goes through the encoder in one pass when it has at most --max-frames
10 ms frames, and otherwise in overlapping windows of --max-frames whose overlap covers the
receptive field, which gives the same log-probabilities as one pass. With full attention
(left/right None) memory grows QUADRATICALLY (a T' x T' score matrix per head and layer, T' =
frames / subsampling: one hour at 40 ms frames is 90,000^2 x 4 bytes = 32 GB per head), and a
recording longer than --max-frames cannot be split; it is reported and skipped.

Timestamps: words come from the CTC alignment of the decoded tokens (greedy: the best path;
beam: Viterbi forced alignment), with a confidence in [0, 1]; a pause of 0.3 s also ends a
word. CTC spikes end words early, so each word is then widened to the edges of the sound
around it (--raw-timestamps keeps the alignment's times). Subtitles (srt, vtt) break at
pauses, keep to two lines of 42 characters and have increasing times within the audio.

--streaming feeds each file chunk by chunk (--chunk-ms) through the online front-end and the
encoder (re-running the left receptive field for each chunk) and prints partial results as
they come; the final text is the offline one.

A file that cannot be read is reported and skipped, and so is a truncated WAV file (one whose
data chunk is shorter than its header says: it is not transcribed in part) and a manifest line
that is not a valid utterance (a value of the wrong type, an id that is not a plain file name);
the exit status is 1 if any input failed.
"""

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

import audio
from models.ctc import align
from tasr.errors import TasrError
from tasr.subtitles import FORMATS, Transcript, segment, write_transcript
from tasr.timestamps import energy_db, greedy_spans, pause_chunks, snap_to_sound, words_from_spans
from models.windowing import encode_windowed

AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".au",
                    ".snd", ".sph", ".nist", ".w64", ".caf", ".rf64", ".voc", ".wv", ".m4a", ".webm"}
DEFAULT_MAX_FRAMES = 30_000  # 5 minutes of 10 ms frames per encoder pass
LONG_FILE_FRAMES = 6_000  # files longer than this (60 s) get a progress bar of their own


@dataclass
class Source:
    """One thing to transcribe: `name` for messages and the transcript, the `audio` file, the
    manifest `item` (or None for a plain file) and `out_stem` (output path without extension)."""

    name: str
    audio: str
    out_stem: Path
    item: dict | None = None


def find_inputs(inputs, output_dir=None) -> tuple[list[Source], list[tuple[str, str]]]:
    """Expand INPUT arguments into `Source`s; returns (sources, failures as (input, reason))."""
    from tasr.data import is_plain_name, read_manifest

    sources, failures = [], []
    out = Path(output_dir) if output_dir else None
    for arg in inputs:
        path = Path(arg)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not found:
                failures.append((arg, "no audio files in this folder (looked for "
                                      f"{', '.join(sorted(AUDIO_EXTENSIONS))})"))
            for p in found:
                relative = p.relative_to(path).with_suffix("")
                stem = out / relative if out else p.with_suffix("")
                sources.append(Source(printable(p), str(p), stem))
        elif path.suffix.lower() == ".jsonl":
            bad_lines = []  # a bad line skips its utterance, not the manifest
            try:
                items = read_manifest(path, require_text=False, bad_lines=bad_lines)
            except TasrError as error:
                failures.append((arg, str(error)))
                continue
            failures += bad_lines
            for item in items:
                if not is_plain_name(item["id"]):  # read_manifest refuses these; outputs stay in their folder
                    failures.append((item["id"], "the id is not a plain file name"))
                    continue
                sources.append(Source(item["id"], item["audio"], (out or path.parent) / item["id"], item))
        elif path.exists():
            if not is_plain_name(path.stem):
                failures.append((arg, f"cannot name an output after {path.stem!r}; rename the file"))
                continue
            sources.append(Source(printable(path), str(path), (out or path.parent) / path.stem))
        else:
            failures.append((arg, "no such file or folder"))
    return sources, failures


def printable(path) -> str:
    """`path` as text that can be printed and written: bytes of a name that is not UTF-8 show as \\xff."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def output_paths(source: Source, formats) -> dict:
    """fmt -> output path of `source`."""
    return {fmt: source.out_stem.with_name(source.out_stem.name + "." + fmt) for fmt in formats}


def check_outputs(sources, formats) -> tuple[list[Source], list[tuple[str, str]]]:
    """Drop sources whose output would overwrite an input audio file or another source's output."""
    inputs = {os.path.realpath(s.audio) for s in sources}
    claimed, kept, failures = {}, [], []
    for s in sources:
        paths = [os.path.realpath(p) for p in output_paths(s, formats).values()]
        clash = next((p for p in paths if p in inputs), None)
        if clash:
            failures.append((s.name, f"its output {clash} would overwrite an input file; use --output-dir"))
            continue
        other = next((claimed[p] for p in paths if p in claimed), None)
        if other is not None:  # a source's name can be ""
            failures.append((s.name, f"its outputs would overwrite those of {other} (same name); "
                                     "give them different names or separate output folders"))
            continue
        claimed.update((p, s.name) for p in paths)
        kept.append(s)
    return kept, failures


class Transcriber:
    """A loaded `SpeechRecognizer` and how to decode: waveforms in, `Transcript`s out.

    beam: None for greedy decoding, else the beam size (with `lm`/`lexicon` as in
    `models.ctc.BeamSearchDecoder`); max_frames: input frames per encoder pass (None: no limit);
    pause_s: a pause this long ends a word; chunk_pause_s: beam search and alignment run between
    pauses at least this long (greedy needs no chunks); snap: widen words to the sound around
    them (`tasr.timestamps.snap_to_sound`).
    """

    def __init__(self, model, beam=None, lm=None, lexicon=None, max_frames=DEFAULT_MAX_FRAMES,
                 pause_s: float = 0.3, chunk_pause_s: float = 0.4, snap: bool = True):
        self.model = model
        self.device = next(model.parameters()).device
        self.beam, self.lm, self.lexicon = beam, lm, lexicon
        self.max_frames = max_frames or None
        self.pause_s, self.chunk_pause_s, self.snap = pause_s, chunk_pause_s, snap
        self.frame_s = model.frame_ms / 1000

    def num_frames(self, num_samples: int) -> int:
        """10 ms feature frames of a waveform of `num_samples` samples."""
        return int(self.model.frontend.frame_lengths(torch.tensor([num_samples]))[0])

    @torch.inference_mode()
    def log_probs(self, waveform: torch.Tensor, progress=None) -> torch.Tensor:
        """waveform [N] at the model's rate -> log_probs [T', V] on the CPU, windowed if long
        (the same as one pass); `progress(n)` is told of input frames done."""
        waveform = waveform.to(self.device)
        feats, frame_lengths = self.model.features(waveform[None], torch.tensor([waveform.shape[0]], device=self.device))
        encoder = self.model.encoder
        try:
            out = encode_windowed(self.model.encode_features, encoder.output_lengths, feats[0, :int(frame_lengths[0])],
                                  self.max_frames, encoder.receptive_field(), encoder.subsampling, progress)
        except ValueError as error:
            raise TasrError(str(error)) from None
        return out.float().cpu()

    @torch.inference_mode()
    def log_probs_batch(self, waveforms: list[torch.Tensor]) -> list[torch.Tensor]:
        """Several short waveforms [N_i] in one padded batch -> their log_probs [T'_i, V] (CPU)."""
        lengths = torch.tensor([w.shape[0] for w in waveforms], device=self.device)
        batch = torch.nn.utils.rnn.pad_sequence([w.to(self.device) for w in waveforms], batch_first=True)
        log_probs, out_lengths = self.model(batch, lengths)
        log_probs = log_probs.float().cpu()
        return [lp[:n] for lp, n in zip(log_probs, out_lengths.tolist())]

    def spans(self, log_probs: torch.Tensor) -> list:
        """Decoded tokens of log_probs [T', V] with their frame spans (`models.ctc.TokenSpan`)."""
        if not self.beam:
            return greedy_spans(log_probs)
        spans = []
        for start, end in pause_chunks(log_probs, max(1, round(self.chunk_pause_s / self.frame_s))):
            chunk = log_probs[start:end]
            tokens = self.model.decode(chunk[None], torch.tensor([end - start]), beam=self.beam,
                                       lm=self.lm, lexicon=self.lexicon)[0]
            for span in align(chunk, tokens):
                span.start, span.end = span.start + start, span.end + start
                spans.append(span)
        return spans

    def transcript(self, name: str, log_probs: torch.Tensor, waveform: torch.Tensor) -> Transcript:
        """The `Transcript` of one input from its log_probs [T', V] and waveform [N]."""
        duration = waveform.shape[0] / self.model.sample_rate
        words = words_from_spans(self.spans(log_probs), self.model.tokenizer, self.frame_s, pause_s=self.pause_s)
        if self.snap:
            snap_to_sound(words, energy_db(waveform, self.model.sample_rate))
        for w in words:  # the last frames can reach past the end of the audio by a fraction of a frame
            w.start, w.end = min(w.start, duration), min(w.end, duration)
        return Transcript(name, duration, " ".join(w.text for w in words), segment(words, duration))


def load_source(source: Source, sample_rate: int) -> torch.Tensor:
    """The waveform [N] of a source at `sample_rate`; raises TasrError naming it and the reason."""
    from tasr.data import BadUtterance, load_utterance

    if source.item is not None:
        try:
            return load_utterance(source.item, sample_rate)
        except BadUtterance as error:
            raise TasrError(str(error)) from None
    try:
        return audio.load(source.audio, sample_rate=sample_rate)
    except audio.AudioError as error:
        raise TasrError(str(error)) from None
    except (OSError, RuntimeError, ValueError) as error:
        raise TasrError(f"{source.audio}: cannot read ({error})") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="model file (model.pt written by `tasr train`)")
    parser.add_argument("inputs", metavar="INPUT", nargs="+",
                        help="audio files, folders (searched recursively) and/or .jsonl manifests")
    parser.add_argument("--format", "-f", default="txt", choices=[*FORMATS, "all"],
                        help="output format (default txt); all = every format")
    parser.add_argument("--output-dir", "-o", metavar="DIR",
                        help="write outputs here (default: next to each input)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="default cpu")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads for torch (default: torch's choice, usually the number of cores)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="N",
                        help="short inputs (under 60 s) decoded together in padded batches of at most N "
                             "inputs and --max-frames frames (default 8)")
    parser.add_argument("--beam", type=int, metavar="N",
                        help="beam search with N hypotheses (torchaudio/flashlight); default: greedy")
    parser.add_argument("--lm", metavar="FILE", help="KenLM word n-gram (ARPA or binary) for beam search")
    parser.add_argument("--lexicon", metavar="FILE",
                        help="\"word tok tok ...\" lines, or one word per line spelled with the model's "
                             "tokens: beam search outputs only these words (default with an ARPA --lm: its words)")
    parser.add_argument("--max-frames", type=int, default=DEFAULT_MAX_FRAMES, metavar="N",
                        help="memory budget: at most N 10 ms input frames per encoder pass (default "
                             f"{DEFAULT_MAX_FRAMES} = 5 min); longer recordings go in overlapping windows "
                             "with the same result as one pass. Memory grows linearly with N for "
                             "truncated attention, quadratically for full attention. 0 = no limit")
    parser.add_argument("--streaming", action="store_true",
                        help="feed each input chunk by chunk and print partial results")
    parser.add_argument("--chunk-ms", type=int, default=640, metavar="MS",
                        help="chunk size for --streaming, in ms of audio (default 640)")
    parser.add_argument("--raw-timestamps", action="store_true",
                        help="word times from the CTC alignment alone (default: widened to the edges "
                             "of the sound around each word, as CTC spikes end words early)")
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="do not print the transcripts (outputs and the summary are still written)")


def main(args) -> int:
    formats = list(FORMATS) if args.format == "all" else [args.format]
    if args.device == "cuda" and not torch.cuda.is_available():
        raise TasrError("--device cuda: no CUDA device is available (use --device cpu)")
    for flag in ("threads", "batch_size", "beam", "chunk_ms"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise TasrError(f"--{flag.replace('_', '-')} must be at least 1, not {value}")
    if args.max_frames < 0:
        raise TasrError(f"--max-frames must be 0 (no limit) or positive, not {args.max_frames}")
    if (args.lm or args.lexicon) and not args.beam:
        raise TasrError("--lm/--lexicon need beam search: add --beam N (e.g. --beam 10)")
    if args.lm and not os.path.isfile(args.lm):
        raise TasrError(f"--lm {args.lm}: no such file")
    if args.threads:
        torch.set_num_threads(args.threads)

    from tasr.model import SpeechRecognizer

    model = SpeechRecognizer.load(args.model, map_location=args.device)
    lexicon = None
    if args.lm or args.lexicon:
        from tasr.decode import build_lexicon

        lexicon = build_lexicon(args.lm, args.lexicon, model.tokenizer)
    transcriber = Transcriber(model, beam=args.beam, lm=args.lm, lexicon=lexicon, max_frames=args.max_frames,
                              snap=not args.raw_timestamps)
    if args.beam:  # build the decoder now, so that a missing package is one clear error
        try:
            model.decode(torch.zeros(1, 1, model.tokenizer.vocab_size), torch.tensor([1]), beam=args.beam,
                         lm=args.lm, lexicon=lexicon)
        except (ImportError, FileNotFoundError, ValueError, RuntimeError) as error:
            raise TasrError(f"beam search: {error}") from None

    sources, failures = find_inputs(args.inputs, args.output_dir)
    sources, clashes = check_outputs(sources, formats)
    failures += clashes
    for name, reason in failures:
        print(f"tasr transcribe: skipped {name}: {reason}", file=sys.stderr)

    run = Run(transcriber, formats, quiet=args.quiet)
    started = time.perf_counter()
    with tqdm(total=len(sources), unit="file", desc="transcribe", disable=None, dynamic_ncols=True) as bar:
        run.bar = bar
        if args.streaming:
            for source in sources:
                run.stream(source, args.chunk_ms)
        else:
            run.batched(sources, args.batch_size)
    wall = time.perf_counter() - started
    failed = len(failures) + run.failed
    hours = run.audio_seconds / 3600
    rtf = f"{wall / run.audio_seconds:.4f}" if run.audio_seconds else "n/a"
    print(f"transcribed {run.done} file(s), {failed} failed; {hours:.4f} h ({run.audio_seconds:.1f} s) of "
          f"audio in {wall:.1f} s wall time; real-time factor {rtf}", file=sys.stderr)
    return 1 if failed else 0


class Run:
    """One `tasr transcribe` run: loads, transcribes and writes sources, counting what happened."""

    def __init__(self, transcriber: Transcriber, formats, quiet=False):
        self.transcriber, self.formats, self.quiet = transcriber, formats, quiet
        self.model = transcriber.model
        self.done = self.failed = 0
        self.audio_seconds = 0.0
        self.bar = None

    def fail(self, source: Source, reason: str) -> None:
        self.failed += 1
        reason = reason[len(source.name) + 2:] if reason.startswith(source.name + ": ") else reason
        tqdm.write(f"tasr transcribe: skipped {source.name}: {reason}", file=sys.stderr)
        self.bar.update(1)

    def load(self, source: Source):
        try:
            return load_source(source, self.model.sample_rate)
        except TasrError as error:
            self.fail(source, str(error))
            return None

    def finish(self, source: Source, log_probs: torch.Tensor, waveform: torch.Tensor) -> None:
        duration = waveform.shape[0] / self.model.sample_rate
        try:
            t = self.transcriber.transcript(source.name, log_probs, waveform)
            for fmt, path in output_paths(source, self.formats).items():
                write_transcript(t, fmt, path)
        except (TasrError, OSError) as error:
            self.fail(source, str(error))
            return
        except Exception as error:  # a bug: say so, and go on with the other inputs
            self.fail(source, f"internal error ({type(error).__name__}: {error}); please report it")
            return
        if not self.quiet:
            tqdm.write(f"{source.name}: {t.text}", file=sys.stdout)
        self.done += 1
        self.audio_seconds += duration
        self.bar.update(1)

    def batched(self, sources, batch_size: int) -> None:
        """Short inputs in padded batches, long ones alone through the windowed encoder."""
        budget = self.transcriber.max_frames
        pending = []  # (source, waveform, frames)

        def flush():
            if not pending:
                return
            try:
                results = self.transcriber.log_probs_batch([w for _, w, _ in pending])
            except RuntimeError as error:  # e.g. out of memory: say which files, go on with the rest
                for s, _, _ in pending:
                    self.fail(s, f"decoding failed ({str(error).splitlines()[0]})")
                pending.clear()
                return
            for (s, w, _), lp in zip(pending, results):
                self.finish(s, lp, w)
            pending.clear()

        for source in sources:
            waveform = self.load(source)
            if waveform is None:
                continue
            frames = self.transcriber.num_frames(waveform.shape[0])
            if budget is None or frames > LONG_FILE_FRAMES or frames > budget:
                flush()
                self.long(source, waveform, frames)
                continue
            longest = max([frames] + [f for _, _, f in pending])
            if len(pending) >= batch_size or (pending and longest * (len(pending) + 1) > budget):
                flush()
            pending.append((source, waveform, frames))
        flush()

    def long(self, source: Source, waveform: torch.Tensor, frames: int) -> None:
        """One long input, window by window, with a progress bar over its audio seconds."""
        with tqdm(total=round(frames / 100, 1), unit="s", desc=Path(source.name).name[:30], leave=False,
                  disable=None if frames > LONG_FILE_FRAMES else True, dynamic_ncols=True) as bar:
            try:
                log_probs = self.transcriber.log_probs(waveform, progress=lambda n: bar.update(round(n / 100, 2)))
            except (TasrError, RuntimeError) as error:
                self.fail(source, str(error).splitlines()[0])
                return
        self.finish(source, log_probs, waveform)

    def stream(self, source: Source, chunk_ms: int) -> None:
        """One input fed chunk by chunk; partial results go to stderr as they change."""
        from tasr.streaming import StreamingRecognizer

        waveform = self.load(source)
        if waveform is None:
            return
        try:
            recognizer = StreamingRecognizer(self.model)
        except ValueError as error:
            self.fail(source, str(error))
            return
        step = max(1, round(self.model.sample_rate * chunk_ms / 1000))
        shown = ""
        for start in range(0, waveform.shape[0], step):
            text = recognizer.accept(waveform[start:start + step])
            if text != shown and not self.quiet:
                shown = text
                tqdm.write(f"[{min(start + step, waveform.shape[0]) / self.model.sample_rate:8.2f} s] "
                           f"{source.name}: ...{text[-70:]}" if len(text) > 70 else
                           f"[{min(start + step, waveform.shape[0]) / self.model.sample_rate:8.2f} s] "
                           f"{source.name}: {text}", file=sys.stderr)
        self.finish(source, recognizer.finish(), waveform)
