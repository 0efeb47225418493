"""Build a word n-gram language model in ARPA format: `tasr lm TEXT... -o lm.arpa --order 3`.

TEXT files hold one sentence a line, or are manifests (`.jsonl`: their "text" fields). Each
sentence is wrapped in <s> ... </s>. The model is interpolated Witten-Bell (see `tasr.lm`), a
smoothing that stays well defined on small corpora; `tasr decode --lm` reads the file.
"""

from tasr.cli import at_least
from tasr.files import write_text
from tasr.lm import NGramModel, read_sentences


def add_arguments(parser) -> None:
    parser.add_argument("text", nargs="+", help="text files (one sentence a line) or manifests (.jsonl)")
    parser.add_argument("-o", "--out", required=True, help="the ARPA file to write")
    parser.add_argument("--order", type=at_least(1), default=3, help="n-gram order (default 3)")


def main(args) -> int:
    sentences = [s for path in args.text for s in read_sentences(path)]
    model = NGramModel(sentences, args.order)
    write_text(args.out, model.arpa())
    counts = ", ".join(f"{len(model.ngrams(n))} {n}-grams" for n in range(1, args.order + 1))
    print(f"{args.out}: Witten-Bell {args.order}-gram model of {len(sentences)} sentences ({counts})")
    return 0
