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
front-end frames (10 ms each by default), and otherwise in overlapping windows of --max-frames
whose overlap covers the receptive field, which gives the same log-probabilities as one pass.
With full attention (left/right None) memory grows QUADRATICALLY (a T' x T' score matrix per
head and layer, T' = frames / subsampling: one hour at 40 ms frames is 90,000^2 x 4 bytes =
32 GB per head), and a recording longer than --max-frames cannot be split; it is reported and
skipped.

Timestamps: words come from the CTC alignment of the decoded tokens (greedy: the best path;
beam: Viterbi forced alignment), with a confidence in [0, 1]; a pause of 0.3 s also ends a
word. CTC spikes end words early, so each word is then widened to the edges of the sound
around it (--raw-timestamps keeps the alignment's times). Subtitles (srt, vtt) break at
pauses, keep to two lines of 42 characters and have increasing times within the audio.

--streaming feeds each file chunk by chunk (--chunk-ms) through the online front-end and the
encoder's stream and prints partial results as they come; the final text is the offline one.
With --runtime onnxruntime[-int8] the encoder's stream is the folder's streaming graph
(`tasr export --streaming`), which steps in the chunk size it was exported with.

A file longer than 60 s is read block by block, resampled as it streams, and goes through the
online front-end, the encoder's stream (chunks of the most frames whose activations fit
--memory-mb) and the decoder, its outputs written segment by segment into temporary files
renamed at the end: memory does not grow with the length of the file (`tasr.longform`), and the
result is that of the whole file at once.

A file that cannot be read is reported and skipped, and so is a truncated WAV file (one whose
data chunk is shorter than its header says: it is not transcribed in part) and a manifest line
that is not a valid utterance (a value of the wrong type, an id that is not a plain file name);
the exit status is 1 if any input failed.
"""

import argparse
import sys
import time

import torch
from tqdm import tqdm

from tasr import export
from tasr.decoding import DecodingOptions
from tasr.device import CHOICES as DEVICES
from tasr.errors import TasrError
from tasr.model import load_model
from tasr import audio
from tasr.subtitles import FORMATS, TranscriptWriters, write_transcript
from tasr.transcription import (DEFAULT_MAX_FRAMES, DEFAULT_MEMORY_MB, LONG_FILE_FRAMES, Source, Transcriber,
                                check_outputs, find_inputs, load_source, output_paths, read_blocks, stream)

RUNTIMES = ("torch", "onnxruntime", "onnxruntime-int8")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL",
                        help="model file (model.pt written by `tasr train`); with --runtime onnxruntime[-int8]: "
                             "the folder written by `tasr export` (model.onnx, model.int8.onnx, tokens.txt)")
    parser.add_argument("inputs", metavar="INPUT", nargs="+",
                        help="audio files, folders (searched recursively) and/or .jsonl manifests")
    parser.add_argument("--format", "-f", default="txt", choices=[*FORMATS, "all"],
                        help="output format (default txt); all = every format")
    parser.add_argument("--output-dir", "-o", metavar="DIR",
                        help="write outputs here (default: next to each input)")
    parser.add_argument("--device", default="auto", help=f"{DEVICES} (default auto: cuda if available)")
    parser.add_argument("--runtime", default="torch", choices=RUNTIMES,
                        help="torch (default): MODEL is model.pt; onnxruntime / onnxruntime-int8: MODEL is a "
                             "`tasr export` folder run on the CPU by onnxruntime (fp32: the outputs of torch; int8: "
                             "int8 weights, smaller and faster)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads for torch or onnxruntime (default: torch's choice, usually the number of cores)")
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
                        help="memory budget: at most N front-end frames (10 ms by default) per encoder pass "
                             f"(default {DEFAULT_MAX_FRAMES} = 5 min); longer recordings go in overlapping "
                             "windows with the same result as one pass. Memory grows linearly with N for "
                             "truncated attention, quadratically for full attention. 0 = no limit")
    parser.add_argument("--memory-mb", type=float, default=DEFAULT_MEMORY_MB, metavar="MB",
                        help="activation memory of one encoder chunk for files read block by block "
                             f"(default {DEFAULT_MEMORY_MB})")
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
    for flag in ("threads", "batch_size", "beam", "chunk_ms"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise TasrError(f"--{flag.replace('_', '-')} must be at least 1, not {value}")
    if args.max_frames < 0:
        raise TasrError(f"--max-frames must be 0 (no limit) or positive, not {args.max_frames}")
    options = DecodingOptions(beam=args.beam, lm=args.lm, lexicon=args.lexicon)
    options.check()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.runtime == "torch":
        model = load_model(args.model, args.device)
    elif args.device not in ("auto", "cpu"):
        raise TasrError(f"--runtime {args.runtime} runs on the CPU: use --runtime torch for --device {args.device}")
    else:
        model = export.OnnxModel(args.model, int8=args.runtime == "onnxruntime-int8", threads=args.threads)
        if args.streaming:
            model.log_prob_stream()  # no streaming graph in the folder: say so now, not once per file
    if args.memory_mb <= 0:
        raise TasrError(f"--memory-mb must be positive, not {args.memory_mb}")
    transcriber = Transcriber(model, options, max_frames=args.max_frames, snap=not args.raw_timestamps,
                              memory_mb=args.memory_mb)

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
    """One `tasr transcribe` run: loads sources, has them transcribed, writes and prints, counting what happened."""

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
        except Exception as error:  # a bug: say so, and go on with the other inputs
            self.fail(source, f"internal error ({type(error).__name__}: {error}); please report it")
            return None

    def finish(self, source: Source, result) -> None:
        """Write and print a `Result` (or count the reason it failed, a string)."""
        if isinstance(result, str):
            self.fail(source, result)
            return
        try:
            for fmt, path in output_paths(source, self.formats).items():
                write_transcript(result, fmt, path)
        except (TasrError, OSError) as error:
            self.fail(source, str(error))
            return
        self.report(source, result)

    def batched(self, sources, batch_size: int) -> None:
        """Every source through `Transcriber.results` (short ones batched, long ones windowed), long
        files block by block in bounded memory (`bounded`)."""
        loaded = []

        def inputs():
            for source in sources:
                if self.is_long(source):
                    self.bounded(source)
                    continue
                waveform = self.load(source)
                if waveform is not None:
                    loaded.append(source)
                    yield source.name, waveform

        for index, _, _, result in self.transcriber.results(inputs(), batch_size):
            self.finish(loaded[index], result)

    def is_long(self, source: Source) -> bool:
        """A file (not a manifest line) longer than `LONG_FILE_FRAMES` that the model can take block by block."""
        if source.item is not None or not self.transcriber.can_stream():
            return False
        try:
            duration = audio.info(source.audio).duration
        except audio.AudioError:
            return False  # `load` reports it
        return duration is None or duration > LONG_FILE_FRAMES * self.model.frame_shift_s

    def bounded(self, source: Source) -> None:
        """One long file read, transcribed and written block by block; an error midway leaves no output."""
        try:
            with TranscriptWriters(output_paths(source, self.formats), source.name) as writers:
                result = self.transcriber.bounded(read_blocks(source.audio, self.model.sample_rate), source.name,
                                                  writers, keep_segments=False)
        except (TasrError, OSError) as error:
            self.fail(source, str(error))
            return
        except Exception as error:  # a bug: say so, and go on with the other inputs
            self.fail(source, f"internal error ({type(error).__name__}: {error}); please report it")
            return
        self.report(source, result)

    def report(self, source: Source, result) -> None:
        if not self.quiet:
            tqdm.write(f"{source.name}: {result.text}", file=sys.stdout)
        self.done += 1
        self.audio_seconds += result.duration
        self.bar.update(1)

    def stream(self, source: Source, chunk_ms: int) -> None:
        """One input fed chunk by chunk; partial results go to stderr as they change."""
        waveform = self.load(source)
        if waveform is None:
            return
        step = max(1, round(self.model.sample_rate * chunk_ms / 1000))
        chunks = (waveform[start:start + step] for start in range(0, waveform.shape[0], step))
        shown = ""
        try:
            for result in stream(self.model, chunks, options=self.transcriber.options, snap=self.transcriber.snap):
                if result.final:
                    result.name = source.name
                    self.finish(source, result)
                elif result.text != shown and not self.quiet:
                    shown = text = result.text
                    text = f"...{text[-70:]}" if len(text) > 70 else text
                    tqdm.write(f"[{result.duration:8.2f} s] {source.name}: {text}", file=sys.stderr)
        except TasrError as error:
            self.fail(source, str(error))
        except Exception as error:  # a bug: say so, and go on with the other inputs
            self.fail(source, f"internal error ({type(error).__name__}: {error}); please report it")
