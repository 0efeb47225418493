"""Train a tokenizer from transcripts: `tasr tokenizer --manifest train.jsonl --kind bpe --vocab-size 500 --out data/lang/tokenizer.json`.

Kinds: `char` (one token per character; --vocab-size is ignored), `bpe` and `unigram`
(SentencePiece, trained on the normalised transcripts). The vocabulary size counts the CTC
blank (id 0) and <unk> (id 1). The output is a JSON file that `tasr train --tokenizer FILE`
(or the config's `tokenizer:` entry) uses, and that `tasr.text.load_tokenizer` reads.
Normalisation: see `tasr.text` (NFKC, single spaces, case kept unless --lowercase).
"""

from tasr import data
from tasr.errors import TasrError
from tasr.files import check_writable
from tasr.text import save_tokenizer, train_tokenizer


def add_arguments(parser):
    parser.add_argument("--manifest", action="append", default=[], help="JSONL manifest(s) whose text to train on (repeatable)")
    parser.add_argument("--text", action="append", default=[], help="plain text file(s), one sentence a line (repeatable)")
    parser.add_argument("--kind", choices=("char", "bpe", "unigram"), default="char", help="tokenizer kind (default char)")
    parser.add_argument("--vocab-size", type=int, default=500, help="tokens including blank and <unk> (bpe/unigram; default 500)")
    parser.add_argument("--lowercase", action="store_true", help="lower-case all text (default: keep case)")
    parser.add_argument("--out", required=True, help="tokenizer file to write (JSON)")


def main(args):
    if not args.manifest and not args.text:
        raise TasrError("give at least one --manifest or --text")
    if args.kind != "char" and args.vocab_size < 3:
        raise TasrError(f"--vocab-size must be at least 3, got {args.vocab_size}")
    check_writable(args.out)
    texts = []
    for manifest in args.manifest:
        texts += [str(item["text"]) for item in data.read_manifest(manifest)]
    for path in args.text:
        try:
            with open(path, encoding="utf-8") as f:
                texts += [line for line in f if line.strip()]
        except (OSError, UnicodeDecodeError) as error:
            raise TasrError(f"--text {path}: cannot read it ({error})") from None
    tokenizer = train_tokenizer(texts, args.kind, args.vocab_size, args.lowercase)
    save_tokenizer(tokenizer, args.out)
    note = ""
    if args.kind != "char" and tokenizer.vocab_size < args.vocab_size:
        note = f" (asked for {args.vocab_size}: the text has too few distinct pieces)"
    print(f"trained a {args.kind} tokenizer with {tokenizer.vocab_size} tokens{note} "
          f"from {len(texts)} sentences -> {args.out}")
