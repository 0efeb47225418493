import json

import pytest

from tasr.errors import TasrError
from tasr.text import (CharTokenizer, SentencePieceTokenizer, load_tokenizer, normalize, save_tokenizer,
                       tokenizer_from_state, train_tokenizer)

TEXTS = [
    "ZERO ONE TWO THREE", "FOUR FIVE SIX", "SEVEN EIGHT NINE", "ONE TWO THREE FOUR FIVE",
    "SIX SEVEN EIGHT NINE ZERO", "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG",
]


def test_normalize_collapses_space_and_keeps_case():
    assert normalize("  Hello \t  WORLD\n") == "Hello WORLD"
    assert normalize("ＡＢ  c", lowercase=True) == "ab c"  # NFKC turns full-width letters into ASCII


@pytest.mark.parametrize("kind", ["char", "bpe", "unigram"])
def test_round_trip_and_blank(kind):
    tokenizer = train_tokenizer(TEXTS, kind, vocab_size=40)
    for text in TEXTS + ["NINE  ZERO   ONE"]:
        ids = tokenizer.encode(text)
        assert ids and min(ids) >= 1 and max(ids) < tokenizer.vocab_size
        assert tokenizer.decode(ids) == normalize(text)
        assert tokenizer.decode([0] + ids + [0]) == normalize(text)  # blanks are ignored
    tokens = tokenizer.tokens
    assert len(tokens) == tokenizer.vocab_size == len(set(tokens))
    assert tokens[0] == "<blank>" and tokens[1] == "<unk>"


@pytest.mark.parametrize("kind", ["char", "bpe", "unigram"])
def test_state_round_trip_is_plain_and_exact(kind, tmp_path):
    tokenizer = train_tokenizer(TEXTS, kind, vocab_size=40, lowercase=True)
    state = tokenizer.to_state()
    json.dumps(state)  # plain types only
    again = tokenizer_from_state(json.loads(json.dumps(state)))
    assert again.tokens == tokenizer.tokens and again.kind == kind
    assert again.encode("Seven Eight") == tokenizer.encode("SEVEN EIGHT")
    save_tokenizer(tokenizer, tmp_path / "lang" / "tokenizer.json")
    assert load_tokenizer(tmp_path / "lang" / "tokenizer.json").tokens == tokenizer.tokens


def test_unknown_characters_map_to_unk():
    tokenizer = CharTokenizer.train(["ABC"])
    assert tokenizer.encode("AXB") == [tokenizer.encode("A")[0], 1, tokenizer.encode("B")[0]]
    assert tokenizer.decode(tokenizer.encode("AXB")) == "A⁇B"


def test_sentencepiece_vocab_size_counts_blank_and_spells_words():
    tokenizer = train_tokenizer(TEXTS * 20, "bpe", vocab_size=30)
    assert isinstance(tokenizer, SentencePieceTokenizer)
    assert tokenizer.vocab_size == 30
    assert "".join(tokenizer.spell("SEVEN")) == "▁SEVEN"
    assert train_tokenizer(TEXTS, "unigram", vocab_size=10_000).vocab_size < 10_000  # small text: fewer pieces


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(TasrError, match="unknown tokenizer kind"):
        train_tokenizer(TEXTS, "wordpiece")
    with pytest.raises(TasrError, match="empty"):
        train_tokenizer(["", "  "], "char")
    with pytest.raises(TasrError, match="empty"):
        train_tokenizer([], "bpe")
    with pytest.raises(TasrError, match="not a tokenizer state"):
        tokenizer_from_state({"kind": "morse"})
    with pytest.raises(TasrError, match="SentencePiece"):
        tokenizer_from_state({"kind": "bpe", "model": "not base64!"})
    with pytest.raises(TasrError, match="not found"):
        load_tokenizer(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(TasrError, match="bad.json: not a tokenizer file"):
        load_tokenizer(tmp_path / "bad.json")
