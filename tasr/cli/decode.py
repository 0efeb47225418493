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
model at every speed, rescored by all of them; both need `--beam N`, and an `--lm` must be ARPA).

An utterance whose audio cannot be read is reported on stderr with its id and the reason, left
out of the scores and listed under "skipped" in summary.json; every other utterance is still
decoded and written. The exit status is then 1 (0 with `--allow-skips`).
"""

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from tasr import data
from tasr.cli import at_least
from tasr.decoding import DecodingOptions, decode_manifest
from tasr.device import CHOICES as DEVICES
from tasr.ensemble import make_search
from tasr.errors import TasrError
from tasr.files import make_folder, write_text
from tasr.model import load_model
from tasr.scoring import error_report, normalized, score


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


def report_skip(utt_id: str, reason: str) -> None:
    tqdm.write(f"tasr decode: skipping {utt_id}: {reason}", file=sys.stderr)


def main(args):
    if args.batch_size < 1:
        raise TasrError(f"--batch-size must be >= 1, got {args.batch_size}")
    options = DecodingOptions(beam=args.beam, lm=args.lm, lexicon=args.lexicon, lm_weight=args.lm_weight,
                              word_score=args.word_score)
    options.check()
    models = [load_model(path, args.device) for path in args.model]
    device = next(models[0].parameters()).device
    items = data.read_manifest(args.manifest)
    transcribe = make_search(models, options, args.speeds)
    out = Path(args.out)
    make_folder(out)

    hyps, skipped, compute, load = decode_manifest(transcribe, models[0].sample_rate, items, device,
                                                   args.batch_size, args.num_workers, report_skip)

    decoded = [item for item in items if item["id"] in hyps]
    lowercase = models[0].tokenizer.lowercase
    ids = [item["id"] for item in decoded]
    refs = normalized([item["text"] for item in decoded], lowercase)
    hyp_list = [hyps[i] for i in ids]
    write_text(out / "hyp.txt", "".join(f"{i} {h}\n" for i, h in zip(ids, hyp_list)))
    write_text(out / "ref.txt", "".join(f"{i} {r}\n" for i, r in zip(ids, refs)))
    write_text(out / "errors.txt", error_report(ids, refs, hyp_list, lowercase))
    audio_seconds = sum(item["duration"] for item in decoded)
    search = " + ".join([options.describe()] + [f"ensemble of {len(models)}"] * (len(models) > 1)
                        + [f"speeds {','.join(f'{x:g}' for x in args.speeds)}"] * (args.speeds != [1.0]))
    summary = {
        **score(refs, hyp_list, lowercase),
        "audio_seconds": round(audio_seconds, 3),
        "compute_seconds": round(compute, 3),
        "load_seconds": round(load, 3),
        "rtf": compute / audio_seconds if audio_seconds else None,
        "search": search,
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
