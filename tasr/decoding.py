"""How log-probabilities become token ids: `DecodingOptions` and the one decoder factory.

    options = DecodingOptions(beam=10, lm="lm.arpa")      # greedy when beam is None
    decode = make_decoder(model.tokenizer, options)       # (log_probs [B, T, V], lengths [B]) -> token-id lists

Greedy decoding takes the best token of each frame. Beam search is CTC prefix search
(`models.ctc.BeamSearchDecoder`, flashlight-text), optionally with a KenLM word n-gram (`lm`, ARPA
or binary) and a lexicon (`lexicon`: a "word tok tok ..." file, or a word list spelled with the
model's tokens) that restricts the output to its words; for an ARPA LM without a lexicon, the
LM's words are the lexicon. Bad settings raise TasrError naming the flag and the reason.
`decode_manifest` decodes a whole manifest in batches, timing the search apart from the reading.
"""

import dataclasses
import time
from pathlib import Path

import torch
from tqdm import tqdm

from tasr.models.ctc import BeamSearchDecoder, greedy_decode
from tasr import data
from tasr.errors import TasrError

KENLM_MAGIC = b"mmap lm http://kheafield.com/code"  # how KenLM's build_binary files begin


@dataclasses.dataclass(frozen=True)
class DecodingOptions:
    """How to search. Frozen and compared by value, so it can key a cache of decoders.

    beam: beam size, None for greedy search; lm: KenLM word model file (needs beam); lexicon:
    lexicon file (needs beam); lm_weight, word_score: added to the beam's scores per LM
    log-probability and per word; nbest: hypotheses kept per utterance (`nbest_lists`).
    """

    beam: int | None = None
    lm: str | None = None
    lexicon: str | None = None
    lm_weight: float = 2.0
    word_score: float = 0.0
    nbest: int = 1

    @property
    def greedy(self) -> bool:
        return not self.beam

    def check(self) -> None:
        """TasrError for settings that do not go together or files that are not there."""
        if self.beam is not None and self.beam < 1:
            raise TasrError(f"--beam must be >= 1, got {self.beam}")
        if (self.lm or self.lexicon) and not self.beam:
            raise TasrError(f"--{'lm' if self.lm else 'lexicon'} needs --beam N (beam search, e.g. --beam 10)")
        if self.lm:
            if not Path(self.lm).is_file():
                raise TasrError(f"--lm {self.lm}: no such file")
            lm_format(self.lm)
        if self.lexicon and not Path(self.lexicon).is_file():
            raise TasrError(f"--lexicon {self.lexicon}: no such file")

    def describe(self) -> str:
        """"greedy", or e.g. "beam 10 + LM + lexicon"."""
        if self.greedy:
            return "greedy"
        return " + ".join([f"beam {self.beam}"] + ["LM"] * bool(self.lm) + ["lexicon"] * bool(self.lexicon))


def make_decoder(tokenizer, options: DecodingOptions):
    """The search `options` describe for a model with `tokenizer`: a callable
    (log_probs [B, T, V], lengths [B]) -> token-id lists; beam search decoders also have
    `nbest_lists`. Raises TasrError for bad options or a missing package."""
    options.check()
    if options.greedy:
        return greedy_decode
    lexicon = build_lexicon(options.lm, options.lexicon, tokenizer) if options.lm or options.lexicon else None
    try:
        return BeamSearchDecoder(tokenizer.tokens, beam_size=options.beam, lm=options.lm, lexicon=lexicon,
                                 lm_weight=options.lm_weight, word_score=options.word_score, nbest=options.nbest)
    except ImportError as error:
        raise TasrError(str(error)) from None
    except (ValueError, RuntimeError) as error:
        raise TasrError(f"cannot set up the beam search: {str(error).splitlines()[-1]}") from None


def arpa_words(path) -> list[str]:
    """The words (unigrams) of an ARPA language model, without <s>, </s> and <unk>."""
    words, in_unigrams = [], False
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if line.startswith("\\"):
                if in_unigrams:
                    break
                in_unigrams = line == "\\1-grams:"
                continue
            if in_unigrams and line:
                fields = line.split()
                if len(fields) >= 2 and fields[1] not in ("<s>", "</s>", "<unk>"):
                    words.append(fields[1])
    return words


def lm_format(path) -> str:
    """"arpa" or "binary" (KenLM's own format); TasrError for a file that is neither."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if b"\\data\\" in head:
        return "arpa"
    if head.startswith(KENLM_MAGIC):
        return "binary"
    raise TasrError(f"--lm {path}: not a language model (neither an ARPA file, which has a \\data\\ "
                    "section, nor a binary KenLM model)")


def build_lexicon(lm: str | None, lexicon: str | None, tokenizer) -> dict:
    """The lexicon argument of BeamSearchDecoder, {word: token strings}: from a lexicon file
    ("word tok tok ..." lines; a line with the word alone is spelled by the tokenizer), or the
    LM's words spelled by the tokenizer."""
    if lexicon:
        if not Path(lexicon).is_file():
            raise TasrError(f"--lexicon {lexicon}: no such file")
        entries = {}
        with open(lexicon, encoding="utf-8") as f:
            for fields in map(str.split, f):
                if fields:
                    entries.setdefault(fields[0], fields[1:] or tokenizer.spell(fields[0]))
        if not entries:
            raise TasrError(f"--lexicon {lexicon}: no words in it")
        return entries
    if lm_format(lm) == "binary":
        raise TasrError(f"--lm {lm} is a binary KenLM model: give its words with --lexicon")
    words = arpa_words(lm)
    if not words:
        raise TasrError(f"--lm {lm}: no unigrams found in the ARPA file")
    unk = tokenizer.tokens[1]
    lexicon = {word: spelling for word in words if unk not in (spelling := tokenizer.spell(word))}
    if not lexicon:
        raise TasrError(f"--lm {lm}: none of its words can be spelled with the model's tokens (letter case?)")
    return lexicon


def decode_manifest(transcribe, sample_rate: int, items, device, batch_size: int = 16, num_workers: int = 0,
                    report=None):
    """Decode manifest `items` with `transcribe` (waveforms [B, N], lengths [B] -> texts), longest
    first in batches of `batch_size`: ({id: hypothesis}, [(id, reason) skipped], compute seconds,
    load seconds). `report(id, reason)` is told of each unreadable utterance as it is skipped."""
    dataset = data.SpeechDataset(items, None, sample_rate)
    order = sorted(range(len(items)), key=lambda i: -items[i]["duration"])  # little padding per batch
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    hyps, skipped = {}, []
    compute = load = 0.0
    progress = tqdm(total=len(items), desc="decode", unit="utt", disable=None)
    started = time.perf_counter()
    for batch in data.make_loader(dataset, batches, num_workers):
        load += time.perf_counter() - started
        for utt_id, reason in batch.skipped:
            skipped.append((utt_id, reason))
            if report:
                report(utt_id, reason)
        if len(batch):
            started = time.perf_counter()
            with torch.inference_mode():
                texts = transcribe(batch.waveforms.to(device), batch.lengths.to(device))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            compute += time.perf_counter() - started
            hyps.update(zip(batch.ids, texts))
        progress.update(len(batch) + len(batch.skipped))
        started = time.perf_counter()
    progress.close()
    return hyps, skipped, compute, load
