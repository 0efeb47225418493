"""Audio of any length to `Result`s: text, words with times and confidences, subtitle segments.

    result = model.transcribe("talk.flac", beam=10)   # = transcribe(model, "talk.flac", beam=10)
    result.text, result.words, result.segments         # Word: text, start/end s, confidence

Long recordings: there is no 30-second slicing. With truncated attention each output frame
depends on a bounded receptive field, so the encoder's memory grows LINEARLY with the length of
the input: a recording goes through the encoder in one pass when it has at most `max_frames`
front-end frames, and otherwise in overlapping windows of `max_frames` whose overlap covers the
receptive field, which gives the same log-probabilities as one pass
(`models.windowing.encode_windowed`). With full attention (left/right None) memory grows
QUADRATICALLY and a recording longer than `max_frames` cannot be split (TasrError). Short
inputs go through the encoder together, in padded batches (`Transcriber.results`). A file, when the
model can stream, is read block by block instead (`Transcriber.bounded`, `tasr.longform`): the
encoder's stream in chunks sized by a memory budget, decoding between pauses, words and segments
given out as they become final, so that memory does not grow with its length.

Timestamps: words come from the CTC alignment of the decoded tokens (greedy: the best path;
beam: Viterbi forced alignment, between pauses of `chunk_pause_s`), with a confidence in [0, 1];
a pause of `pause_s` also ends a word (`tasr.timestamps`). Output frames are converted to
seconds with the model's `output_frame_s` (its front-end's frame shift x subsampling). CTC
spikes end words early, so each word is then widened to the edges of the sound around it
(`snap=False` keeps the alignment's times).

Streaming (`stream`): chunks of samples in, partial `Result`s out (`final` False, text only),
then the final one, which equals the offline result (`tasr.streaming.StreamingRecognizer`).
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from tasr import audio
from tasr.models.ctc import align, greedy_spans, pause_chunks
from tasr.models.windowing import encode_windowed
from tasr.data import BadUtterance, is_plain_name, load_utterance, read_manifest
from tasr.decoding import DecodingOptions
from tasr.errors import TasrError
from tasr.longform import LongTranscription
from tasr.streaming import StreamingRecognizer
from tasr.subtitles import segment
from tasr.timestamps import snap_to_sound, words_from_spans

DEFAULT_MAX_FRAMES = 30_000  # front-end frames per encoder pass: 5 minutes of 10 ms frames
DEFAULT_MEMORY_MB = 128  # activation memory of one encoder chunk for recordings read block by block
BLOCK_SECONDS = 30.0  # seconds of audio read at a time from a file
LONG_FILE_FRAMES = 6_000  # inputs longer than this (60 s of 10 ms frames) go alone, with a progress bar
AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".au",
                    ".snd", ".sph", ".nist", ".w64", ".caf", ".rf64", ".voc", ".wv", ".m4a", ".webm"}


@dataclass
class Result:
    """What was recognised in one input: its `name`, `duration` (s), `text` and `segments`
    (`tasr.subtitles.Segment`, each with its `words`); `final` is False for the partial results
    of a stream (text only)."""

    name: str
    duration: float
    text: str
    segments: list = field(default_factory=list)
    final: bool = True

    @property
    def words(self) -> list:
        """Every `tasr.timestamps.Word`, in time order."""
        return [w for s in self.segments for w in s.words]


class Transcriber:
    """A model and how to transcribe with it: waveforms in, `Result`s out.

    options: `tasr.decoding.DecodingOptions` (default greedy); max_frames: front-end frames per
    encoder pass (None: no limit); pause_s: a pause this long ends a word; chunk_pause_s: beam
    search and alignment run between pauses at least this long; snap: widen words to the sound
    around them (`tasr.timestamps.snap_to_sound`); memory_mb: activation memory of one encoder
    chunk when a recording is read block by block (`bounded`).
    """

    def __init__(self, model, options: DecodingOptions | None = None, max_frames: int | None = DEFAULT_MAX_FRAMES,
                 pause_s: float = 0.3, chunk_pause_s: float = 0.4, snap: bool = True,
                 memory_mb: float = DEFAULT_MEMORY_MB):
        self.model = model
        self.options = options or DecodingOptions()
        model.decoder(self.options)  # set up the search now: bad options are one clear error
        self.device = model.device
        self.max_frames = max_frames or None
        self.pause_s, self.chunk_pause_s, self.snap = pause_s, chunk_pause_s, snap
        self.memory_mb = memory_mb

    @torch.inference_mode()
    def log_probs(self, waveform: torch.Tensor, progress=None) -> torch.Tensor:
        """waveform [N] at the model's rate -> log_probs [T', V] on the CPU, windowed if long
        (the same as one pass); `progress(n)` is told of front-end frames done."""
        model = self.model
        waveform = waveform.to(self.device)
        feats, frame_lengths = model.features(waveform[None], torch.tensor([waveform.shape[0]], device=self.device))
        encoder = model.encoder
        try:
            out = encode_windowed(model.encode_features, encoder.output_lengths, feats[0, :int(frame_lengths[0])],
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
        if self.options.greedy:
            return greedy_spans(log_probs)
        spans = []
        min_pause = max(1, round(self.chunk_pause_s / self.model.output_frame_s))
        for start, end in pause_chunks(log_probs, min_pause):
            chunk = log_probs[start:end]
            tokens = self.model.decode(chunk[None], torch.tensor([end - start]), self.options)[0]
            for span in align(chunk, tokens):
                span.start, span.end = span.start + start, span.end + start
                spans.append(span)
        return spans

    def result(self, log_probs: torch.Tensor, waveform: torch.Tensor, name: str = "") -> Result:
        """The `Result` of one input from its log_probs [T', V] and waveform [N]."""
        model = self.model
        duration = waveform.shape[0] / model.sample_rate
        words = words_from_spans(self.spans(log_probs), model.tokenizer, model.output_frame_s, pause_s=self.pause_s)
        if self.snap:
            snap_to_sound(words, audio.energy_db(waveform, model.sample_rate))
        for w in words:  # the last frames can reach past the end of the audio by a fraction of a frame
            w.start, w.end = min(w.start, duration), min(w.end, duration)
        return Result(name, duration, " ".join(w.text for w in words), segment(words, duration))

    def can_stream(self) -> bool:
        """Whether recordings can go block by block (`bounded`): limited attention context, a
        front-end that does not need the whole input."""
        fbank = dict(self.model.config.get("fbank") or {})
        streams = getattr(self.model, "streams", True)  # False for an exported model (tasr.export.OnnxModel)
        return streams and None not in self.model.encoder.receptive_field() and not fbank.get("subtract_mean")

    def bounded(self, blocks, name: str = "", writers=None, keep_segments: bool = True) -> Result:
        """The `Result` of one recording given as waveform blocks [n] (e.g. `audio.stream_blocks`),
        in memory that does not grow with its length (`tasr.longform`); the same as `result` of
        the whole waveform. `writers` (`tasr.subtitles.TranscriptWriters`) are given the segments
        as they become final and closed at the end; keep_segments=False leaves them out of the Result."""
        try:
            long = LongTranscription(self.model, self.spans, round(self.memory_mb * 2**20), self.pause_s,
                                     self.chunk_pause_s, self.snap)
        except ValueError as error:
            raise TasrError(str(error)) from None
        kept = []
        for block in blocks:
            segments = long.accept(block)
            kept += segments if keep_segments else []
            if writers is not None:
                writers.write(segments)
        segments = long.finish()
        kept += segments if keep_segments else []
        if writers is not None:
            writers.write(segments)
            writers.close(long.duration)
        return Result(name, long.duration, long.text, kept)

    def results(self, inputs, batch_size: int = 8):
        """Transcribe `inputs`, (name, waveform [N]) pairs, short ones together in padded batches of
        at most `batch_size` inputs and `max_frames` frames, long ones alone through the windowed
        encoder. Yields (index in inputs, name, waveform, Result or the reason it failed), in order
        of completion."""
        pending = []  # (index, name, waveform, frames)

        def flush():
            try:
                outputs = self.log_probs_batch([w for _, _, w, _ in pending]) if pending else []
            except RuntimeError as error:  # e.g. out of memory: say which inputs, go on with the rest
                outputs = [f"decoding failed ({str(error).splitlines()[0]})"] * len(pending)
            done = [(i, name, w, self._result(out, w, name)) for (i, name, w, _), out in zip(pending, outputs)]
            pending.clear()
            return done

        for index, (name, waveform) in enumerate(inputs):
            frames = self.model.num_frames(waveform.shape[0])
            if self.max_frames is None or frames > LONG_FILE_FRAMES or frames > self.max_frames:
                yield from flush()
                yield index, name, waveform, self._result(self._long(name, waveform, frames), waveform, name)
                continue
            longest = max([frames] + [f for *_, f in pending])
            if len(pending) >= batch_size or (pending and longest * (len(pending) + 1) > self.max_frames):
                yield from flush()
            pending.append((index, name, waveform, frames))
        yield from flush()

    def _long(self, name: str, waveform: torch.Tensor, frames: int):
        """log_probs of one long input, window by window, with a progress bar over its audio seconds."""
        shift = self.model.frame_shift_s
        with tqdm(total=round(frames * shift, 1), unit="s", desc=Path(name).name[:30], leave=False,
                  disable=None if frames > LONG_FILE_FRAMES else True, dynamic_ncols=True) as bar:
            try:
                return self.log_probs(waveform, progress=lambda n: bar.update(round(n * shift, 2)))
            except (TasrError, RuntimeError) as error:
                return str(error).splitlines()[0]

    def _result(self, log_probs, waveform, name):
        """`result`, or the reason it failed (log_probs may already be one)."""
        if isinstance(log_probs, str):
            return log_probs
        try:
            return self.result(log_probs, waveform, name)
        except TasrError as error:
            return str(error)
        except Exception as error:  # a bug: say so, and go on with the other inputs
            return f"internal error ({type(error).__name__}: {error}); please report it"


def load_audio(source, sample_rate: int) -> torch.Tensor:
    """A waveform [N] at `sample_rate` from a path (anything `audio.load` reads) or a waveform
    tensor [N] already at that rate; TasrError naming the file or the shape and the reason."""
    if isinstance(source, torch.Tensor):
        if source.dim() != 1:
            raise TasrError(f"a waveform must be [N] samples at the model's rate ({sample_rate} Hz), "
                            f"not of shape {list(source.shape)}")
        return source.float()
    try:
        return audio.load(source, sample_rate=sample_rate)
    except audio.AudioError as error:
        raise TasrError(str(error)) from None
    except (OSError, RuntimeError, ValueError) as error:
        raise TasrError(f"{source}: cannot read ({error})") from None


def decoding_options(options: DecodingOptions | None, **settings) -> DecodingOptions:
    """`options`, or DecodingOptions of `settings` (its field names)."""
    return options or DecodingOptions(**settings)


def transcribe(model, source, beam: int | None = None, lexicon: str | None = None, lm: str | None = None,
               lm_weight: float = 2.0, word_score: float = 0.0, options: DecodingOptions | None = None,
               max_frames: int | None = DEFAULT_MAX_FRAMES, snap: bool = True) -> Result:
    """Transcribe `source` (an audio file, or a waveform [N] at the model's rate), of any length.

    beam: beam size (None: greedy); lexicon/lm: a lexicon file and a KenLM word model for beam
    search (`tasr.decoding`), or give `options` instead; max_frames: memory budget per encoder
    pass (front-end frames, None: no limit); snap: widen word times to the sound around them.
    A file goes block by block in bounded memory (`Transcriber.bounded`) when the model can stream,
    with the result of the whole waveform at once.
    """
    options = decoding_options(options, beam=beam, lm=lm, lexicon=lexicon, lm_weight=lm_weight, word_score=word_score)
    transcriber = Transcriber(model, options, max_frames, snap=snap)
    if not isinstance(source, torch.Tensor) and transcriber.can_stream():
        return transcriber.bounded(read_blocks(source, model.sample_rate), os.fsdecode(source))
    waveform = load_audio(source, model.sample_rate)
    name = "" if isinstance(source, torch.Tensor) else os.fsdecode(source)
    return transcriber.result(transcriber.log_probs(waveform), waveform, name)


def read_blocks(path, sample_rate: int, offset: float = 0.0, duration: float | None = None):
    """`audio.stream_blocks` of `path` with TasrError naming the file and the reason (also midway)."""
    try:
        yield from audio.stream_blocks(path, sample_rate, BLOCK_SECONDS, offset, duration)
    except audio.AudioError as error:
        raise TasrError(str(error)) from None
    except (OSError, RuntimeError, ValueError) as error:
        raise TasrError(f"{path}: cannot read ({error})") from None


def stream(model, chunks, beam: int | None = None, lexicon: str | None = None, lm: str | None = None,
           lm_weight: float = 2.0, word_score: float = 0.0, options: DecodingOptions | None = None,
           snap: bool = True):
    """Transcribe a stream: `chunks` are waveform pieces [n] at the model's rate, of any size.

    Yields a partial `Result` (final False: the greedy text so far, no words) after each chunk,
    then the final `Result` of the whole stream, searched with the decoding options (as
    `transcribe`). TasrError when the model cannot stream (a front-end that needs the whole input).
    """
    transcriber = Transcriber(model, decoding_options(options, beam=beam, lm=lm, lexicon=lexicon,
                                                      lm_weight=lm_weight, word_score=word_score), None, snap=snap)
    try:
        recognizer = StreamingRecognizer(model)
    except ValueError as error:
        raise TasrError(str(error)) from None
    pieces, samples = [], 0
    for chunk in chunks:
        chunk = torch.as_tensor(chunk, dtype=torch.float32)
        pieces.append(chunk)
        samples += chunk.shape[0]
        yield Result("", samples / model.sample_rate, recognizer.accept(chunk), final=False)
    waveform = torch.cat(pieces) if pieces else torch.zeros(0)
    yield transcriber.result(recognizer.finish(), waveform)


# ---------------------------------------------------------------- inputs and outputs of many files

@dataclass
class Source:
    """One thing to transcribe: `name` for messages and the result, the `audio` file, the
    manifest `item` (or None for a plain file) and `out_stem` (output path without extension)."""

    name: str
    audio: str
    out_stem: Path
    item: dict | None = None


def find_inputs(inputs, output_dir=None) -> tuple[list[Source], list[tuple[str, str]]]:
    """Expand inputs (audio files, folders searched recursively, JSONL manifests) into `Source`s;
    returns (sources, failures as (input, reason))."""
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


def load_source(source: Source, sample_rate: int) -> torch.Tensor:
    """The waveform [N] of a source at `sample_rate`; raises TasrError naming it and the reason."""
    if source.item is not None:
        try:
            return load_utterance(source.item, sample_rate)
        except BadUtterance as error:
            raise TasrError(str(error)) from None
    return load_audio(source.audio, sample_rate)
