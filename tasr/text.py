"""Tokenizers: text <-> token ids for a CTC model (characters or SentencePiece BPE/unigram).

Id 0 is always the CTC blank; real tokens have ids >= 1 and `vocab_size` counts the blank.
Id 1 is `<unk>`, which stands for anything the tokenizer has not seen in training.

Text normalisation (`normalize`), applied to training text, to every text that is encoded
and by `tasr decode` to references before scoring:

- Unicode NFKC (e.g. full-width letters and ligatures become plain ones);
- runs of whitespace become one space, leading/trailing whitespace is removed;
- case is KEPT as in the transcripts (LibriSpeech is upper case, most others mixed), unless the
  tokenizer was trained with `lowercase=True`, in which case text is lower-cased as well.
  Punctuation is kept: clean your transcripts in the corpus's data preparation, as in Kaldi.

A tokenizer's whole state (for SentencePiece, the trained model itself) is a dict of plain
types (`to_state()`), stored inside the model file and in the JSON files written by
`tasr tokenizer`; `tokenizer_from_state` / `load_tokenizer` bring it back.
"""

import base64
import io
import json
import unicodedata

from tasr.errors import TasrError
from tasr.files import atomic_write

BLANK = "<blank>"
UNK = "<unk>"
WORD_BOUNDARY = "▁"  # how a space is written in token strings (as SentencePiece does)
KINDS = ("char", "bpe", "unigram")


def normalize(text: str, lowercase: bool = False) -> str:
    """The text as tokenizers see it: NFKC, single spaces, stripped, optionally lower-cased."""
    text = " ".join(unicodedata.normalize("NFKC", text).split())
    return text.lower() if lowercase else text


class CharTokenizer:
    """One token per character; the space is a token of its own (written "▁" in `tokens`).

    `chars` are the characters of the vocabulary in id order (ids 2, 3, ...).
    """

    kind = "char"

    def __init__(self, chars, lowercase: bool = False):
        chars = list(chars)
        if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise ValueError("chars must be distinct single characters")
        self.chars = chars
        self.lowercase = lowercase
        self._ids = {c: i + 2 for i, c in enumerate(chars)}

    @classmethod
    def train(cls, texts, lowercase: bool = False):
        chars = set()
        for text in texts:
            chars.update(normalize(text, lowercase))
        if not chars:
            raise TasrError("cannot train a character tokenizer: the training text is empty")
        return cls(sorted(chars), lowercase)

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 2

    @property
    def tokens(self) -> list[str]:
        """Token strings in id order (blank first); the space is written "▁"."""
        return [BLANK, UNK] + [WORD_BOUNDARY if c == " " else c for c in self.chars]

    def encode(self, text: str) -> list[int]:
        return [self._ids.get(c, 1) for c in normalize(text, self.lowercase)]

    def decode(self, ids) -> str:
        pieces = []
        for i in ids:
            i = int(i)
            if i == 0:
                continue
            pieces.append(self.chars[i - 2] if i >= 2 else "⁇")
        return " ".join("".join(pieces).split())

    def spell(self, word: str) -> list[str]:
        """Token strings for one word (for beam-search lexicons), without the word boundary."""
        return [self.tokens[i] for i in self.encode(word)]

    def to_state(self) -> dict:
        return {"kind": "char", "chars": "".join(self.chars), "lowercase": self.lowercase}


class SentencePieceTokenizer:
    """SentencePiece (BPE or unigram) word pieces; our id = SentencePiece id + 1 (0 is the blank).

    SentencePiece's own id 0 is `<unk>`, so our id 1 is `<unk>` as for characters.
    `model` is the serialized SentencePiece model (bytes).
    """

    def __init__(self, model: bytes, kind: str = "bpe", lowercase: bool = False):
        import sentencepiece

        if kind not in ("bpe", "unigram"):
            raise TasrError(f"unknown SentencePiece model type {kind!r} (choose bpe or unigram)")
        self.kind = kind
        self.model = bytes(model)
        self.lowercase = lowercase
        self.sp = sentencepiece.SentencePieceProcessor()
        try:
            self.sp.LoadFromSerializedProto(self.model)
        except Exception as error:  # sentencepiece raises RuntimeError/OSError with little detail
            raise TasrError(f"the SentencePiece model is not readable: {error}") from None
        if self.sp.unk_id() != 0 or self.sp.bos_id() >= 0 or self.sp.eos_id() >= 0 or self.sp.pad_id() >= 0:
            raise TasrError("the SentencePiece model must have unk id 0 and no bos/eos/pad pieces")

    @classmethod
    def train(cls, texts, kind: str = "bpe", vocab_size: int = 500, lowercase: bool = False,
              character_coverage: float = 1.0, num_threads: int = 2):
        """Train on `texts`; `vocab_size` counts the blank, like `tokenizer.vocab_size`.

        If the text is too small for that many pieces, the vocabulary is smaller (SentencePiece's
        `hard_vocab_limit=False`); check `vocab_size` of the result.
        """
        import sentencepiece

        if kind not in ("bpe", "unigram"):
            raise TasrError(f"unknown SentencePiece model type {kind!r} (choose bpe or unigram)")
        lines = [line for line in (normalize(t, lowercase) for t in texts) if line]
        if not lines:
            raise TasrError(f"cannot train a {kind} tokenizer: the training text is empty")
        needed = len(set("".join(lines)) - {" "}) + 3  # every character, "▁", <unk> and the blank
        if vocab_size < needed:
            raise TasrError(f"vocab_size {vocab_size} is too small for this text: its characters alone "
                            f"need {needed} tokens (with the blank, <unk> and the word boundary)")
        model = io.BytesIO()
        try:
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=iter(lines), model_writer=model, model_type=kind,
                vocab_size=vocab_size - 1, hard_vocab_limit=False,
                character_coverage=character_coverage, unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,
                normalization_rule_name="identity", num_threads=num_threads,
                input_sentence_size=2_000_000, shuffle_input_sentence=True,
                minloglevel=2, train_extremely_large_corpus=False,
            )
        except RuntimeError as error:
            raise TasrError(f"SentencePiece training failed: {error}") from None
        return cls(model.getvalue(), kind, lowercase)

    @property
    def vocab_size(self) -> int:
        return self.sp.GetPieceSize() + 1

    @property
    def tokens(self) -> list[str]:
        """Token strings in id order (blank first); pieces that start a word begin with "▁"."""
        return [BLANK, UNK] + [self.sp.IdToPiece(i) for i in range(1, self.sp.GetPieceSize())]

    def encode(self, text: str) -> list[int]:
        return [i + 1 for i in self.sp.EncodeAsIds(normalize(text, self.lowercase))]

    def decode(self, ids) -> str:
        return " ".join(self.sp.DecodeIds([int(i) - 1 for i in ids if int(i) != 0]).split())

    def spell(self, word: str) -> list[str]:
        """Token strings for one word (for beam-search lexicons)."""
        return self.sp.EncodeAsPieces(normalize(word, self.lowercase))

    def to_state(self) -> dict:
        return {"kind": self.kind, "model": base64.b64encode(self.model).decode("ascii"),
                "lowercase": self.lowercase}


def train_tokenizer(texts, kind: str = "char", vocab_size: int = 500, lowercase: bool = False):
    """A tokenizer trained on `texts` (an iterable of str): kind is "char", "bpe" or "unigram".

    `vocab_size` (including the blank) is ignored for characters.
    """
    if kind == "char":
        return CharTokenizer.train(texts, lowercase)
    if kind in ("bpe", "unigram"):
        return SentencePieceTokenizer.train(texts, kind, vocab_size, lowercase)
    raise TasrError(f"unknown tokenizer kind {kind!r} (choose one of {', '.join(KINDS)})")


def tokenizer_from_state(state: dict):
    """The tokenizer that `to_state()` described."""
    if not isinstance(state, dict) or state.get("kind") not in KINDS:
        raise TasrError(f"not a tokenizer state: {str(state)[:80]}")
    lowercase = bool(state.get("lowercase", False))
    if state["kind"] == "char":
        return CharTokenizer(state["chars"], lowercase)
    try:
        model = base64.b64decode(state["model"], validate=True)
    except (KeyError, ValueError, TypeError):
        raise TasrError("the tokenizer state has no valid SentencePiece model") from None
    return SentencePieceTokenizer(model, state["kind"], lowercase)


def save_tokenizer(tokenizer, path) -> None:
    """Write the tokenizer's state as JSON (atomically: a temporary file, then a rename)."""
    with atomic_write(path, encoding="utf-8") as f:
        json.dump({"tasr_tokenizer": 1, **tokenizer.to_state()}, f, ensure_ascii=False, indent=1)


def load_tokenizer(path):
    """A tokenizer from a JSON file written by `save_tokenizer` (or `tasr tokenizer`)."""
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except FileNotFoundError:
        raise TasrError(f"{path}: tokenizer file not found") from None
    except (OSError, ValueError) as error:
        raise TasrError(f"{path}: not a tokenizer file ({error})") from None
    if not isinstance(state, dict) or "tasr_tokenizer" not in state:
        raise TasrError(f"{path}: not a tokenizer file (written by `tasr tokenizer`)")
    try:
        return tokenizer_from_state(state)
    except TasrError as error:
        raise TasrError(f"{path}: {error}") from None
