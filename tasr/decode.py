"""Decode a manifest with a model and score it: `tasr decode --model m.pt --manifest test.jsonl --out dir`.

Writes into `--out`:

    hyp.txt        "<id> <hypothesis>" per utterance (Kaldi text format, manifest order)
    ref.txt        "<id> <reference>" (normalised as the tokenizer normalises text)
    errors.txt     per utterance: WER and S/D/I counts, then the aligned REF/HYP words
                   (*** marks a missing word; S, D, I under the words mark the errors)
    summary.json   WER, CER, substitutions/deletions/insertions/hits (jiwer), sentence error
                   rate, audio seconds, compute seconds, real-time factor, skipped utterances

and prints a one-line summary. WER counts words; CER counts characters, spaces included.
The real-time factor is compute time (features, network, search) / audio duration; reading the
audio files is timed separately (`load_seconds`).

Search: greedy by default; `--beam N` uses the CTC beam search (flashlight-text) and `--lm`
a KenLM word n-gram (ARPA or binary). `--lexicon` (a "word tok tok ..." file, or a word list
spelled with the model's tokens) restricts the beam search's output to its words, with or
without an LM; for an ARPA LM without `--lexicon` the LM's unigrams are the lexicon.
`--model` given more than once decodes with an ensemble of the models, and `--speeds` lets each
model also hear the audio played faster or slower (`tasr.ensemble`: the N best texts of every
model at every speed, rescored by all of them; both need `--beam N`).

An utterance whose audio cannot be read is reported on stderr with its id and the reason, left
out of the scores and listed under "skipped" in summary.json; every other utterance is still
decoded and written. The exit status is then 1 (0 with `--allow-skips`).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from tasr.cli import at_least
from tasr.device import CHOICES as DEVICES, pick_device
from tasr.errors import TasrError
from tasr.files import make_folder, write_text
from tasr.scoring import error_report, score


def add_arguments(parser):
    parser.add_argument("--model", required=True, action="append",
                        help="model file (written by tasr train / tasr average); repeat it to decode with an "
                             "ensemble of models (needs --beam)")
    parser.add_argument("--manifest", required=True, help="JSONL manifest with id, audio, duration, text")
    parser.add_argument("--out", required=True, help="folder for hyp.txt, ref.txt, errors.txt, summary.json")
    parser.add_argument("--beam", type=int, default=None, metavar="N", help="beam size (default: greedy search)")
    parser.add_argument("--speeds", type=speed_list, default=[1.0], metavar="F,F,...",
                        help="decode the audio at each of these speeds (e.g. 0.9,1,1.1) and combine the results "
                             "like an ensemble (needs --beam; default 1: as it is)")
    parser.add_argument("--lm", default=None, help="KenLM word language model (ARPA or binary); needs --beam")
    parser.add_argument("--lexicon", default=None, help="lexicon file 'word tok tok ...' (or one word per line, "
                        "spelled with the model's tokens): with --beam, only its words are output "
                        "(default for an ARPA --lm: the LM's words)")
    parser.add_argument("--lm-weight", type=float, default=2.0, help="language model weight (default 2.0)")
    parser.add_argument("--word-score", type=float, default=0.0, help="score added per word (default 0.0)")
    parser.add_argument("--batch-size", type=int, default=16, help="utterances per batch (default 16)")
    parser.add_argument("--num-workers", type=at_least(0), default=0, help="audio-loading processes (default 0)")
    parser.add_argument("--device", default="auto", help=f"{DEVICES} (default auto: cuda if available)")
    parser.add_argument("--allow-skips", action="store_true",
                        help="exit with status 0 even when unreadable utterances were skipped")


def speed_list(text: str) -> list[float]:
    """"0.9,1,1.1" -> [0.9, 1.0, 1.1], each > 0 (an argparse type)."""
    try:
        speeds = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected speed factors such as 0.9,1,1.1, got {text!r}") from None
    if not all(speed > 0 for speed in speeds):
        raise argparse.ArgumentTypeError(f"speed factors must be > 0, got {text!r}")
    return speeds


# ---------------------------------------------------------------- beam search set-up

KENLM_MAGIC = b"mmap lm http://kheafield.com/code"  # how KenLM's build_binary files begin


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


def build_lexicon(lm: str | None, lexicon: str | None, tokenizer):
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


def make_search(model, args):
    """A function log_probs, lengths -> token-id lists (greedy or beam)."""
    if args.lm and not args.beam:
        raise TasrError("--lm needs --beam N")
    if args.beam is not None and args.beam < 1:
        raise TasrError(f"--beam must be >= 1, got {args.beam}")
    if not args.beam:
        return lambda log_probs, lengths: model.decode(log_probs, lengths)
    from models.ctc import BeamSearchDecoder

    if args.lm and not Path(args.lm).is_file():
        raise TasrError(f"--lm {args.lm}: no such file")
    if args.lm:
        lm_format(args.lm)
    lexicon = build_lexicon(args.lm, args.lexicon, model.tokenizer) if args.lm or args.lexicon else None
    try:
        decoder = BeamSearchDecoder(model.tokenizer.tokens, beam_size=args.beam, lm=args.lm, lexicon=lexicon,
                                    lm_weight=args.lm_weight, word_score=args.word_score)
    except ImportError as error:
        raise TasrError(str(error)) from None
    except (ValueError, RuntimeError) as error:
        raise TasrError(f"cannot set up the beam search: {str(error).splitlines()[-1]}") from None
    return decoder


# ---------------------------------------------------------------- the command

def make_transcriber(models, args):
    """A function waveforms [B, N], lengths [B] -> texts: one model's search, or an ensemble's."""
    if len(models) > 1 or args.speeds != [1.0]:
        from tasr.ensemble import EnsembleSearch

        if args.beam is None or args.beam < 1 or args.lm or args.lexicon:
            raise TasrError("an ensemble (--model given more than once, or --speeds) needs --beam N "
                            "and takes no --lm or --lexicon")
        return EnsembleSearch(models, args.beam, args.speeds)
    model = models[0]
    search = make_search(model, args)

    def transcribe(waveforms, lengths):
        log_probs, out_lengths = model(waveforms, lengths)
        return [model.tokenizer.decode(ids) for ids in search(log_probs, out_lengths)]

    return transcribe


def decode_manifest(transcribe, sample_rate, items, device, batch_size=16, num_workers=0):
    """Decode manifest `items` with `transcribe` (waveforms [B, N], lengths [B] -> texts):
    ({id: hypothesis}, [(id, reason) skipped], compute seconds, load seconds)."""
    from tasr import data

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
            tqdm.write(f"tasr decode: skipping {utt_id}: {reason}", file=sys.stderr)
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


def main(args):
    from tasr import data
    from tasr.model import SpeechRecognizer
    from tasr.text import normalize

    if args.batch_size < 1:
        raise TasrError(f"--batch-size must be >= 1, got {args.batch_size}")
    device = pick_device(args.device)
    models = [SpeechRecognizer.load(path, map_location=device) for path in args.model]
    items = data.read_manifest(args.manifest)
    transcribe = make_transcriber(models, args)
    out = Path(args.out)
    make_folder(out)

    hyps, skipped, compute, load = decode_manifest(transcribe, models[0].sample_rate, items, device,
                                                   args.batch_size, args.num_workers)

    decoded = [item for item in items if item["id"] in hyps]
    lowercase = getattr(models[0].tokenizer, "lowercase", False)
    ids = [item["id"] for item in decoded]
    refs = [normalize(str(item["text"]), lowercase) for item in decoded]
    hyp_list = [hyps[i] for i in ids]
    write_text(out / "hyp.txt", "".join(f"{i} {h}\n" for i, h in zip(ids, hyp_list)))
    write_text(out / "ref.txt", "".join(f"{i} {r}\n" for i, r in zip(ids, refs)))
    write_text(out / "errors.txt", error_report(ids, refs, hyp_list))
    audio_seconds = sum(item["duration"] for item in decoded)
    summary = {
        **score(refs, hyp_list),
        "audio_seconds": round(audio_seconds, 3),
        "compute_seconds": round(compute, 3),
        "load_seconds": round(load, 3),
        "rtf": compute / audio_seconds if audio_seconds else None,
        "search": " + ".join([f"beam {args.beam}"] + ["LM"] * bool(args.lm) + ["lexicon"] * bool(args.lexicon)
                             + [f"ensemble of {len(models)}"] * (len(models) > 1)
                             + [f"speeds {','.join(f'{x:g}' for x in args.speeds)}"] * (args.speeds != [1.0]))
        if args.beam else "greedy",
        "lm": args.lm,
        "lexicon": args.lexicon,
        "device": str(device),
        "model": args.model[0] if len(args.model) == 1 else args.model,
        "manifest": str(args.manifest),
        "skipped": [{"id": i, "reason": r} for i, r in skipped],
    }
    write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    s = summary
    rtf = "n/a" if s["rtf"] is None else f"{s['rtf']:.4f}"
    line = (f"WER {100 * s['wer']:.2f}% [S={s['substitutions']} D={s['deletions']} I={s['insertions']} / "
            f"{s['words']} words], CER {100 * s['cer']:.2f}%, {s['utterances']} utterances, RTF {rtf} "
            f"({s['search']}, {device}) -> {out}")
    if skipped:
        line += f"; {len(skipped)} unreadable utterance(s) skipped (see summary.json)"
    print(line)
    return 1 if skipped and not args.allow_skips else 0
