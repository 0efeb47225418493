"""tasr lm: Witten-Bell n-gram probabilities against values worked out by hand, the ARPA file and its scores."""

import json
import math
import subprocess
import sys

import pytest

from tasr.errors import TasrError
from tasr.lm import ArpaModel, NGramModel, read_sentences

# Toy corpus: "A B", "A C", "B". Words predicted (unigram level): A 2, B 2, C 1, </s> 3 (8 in all,
# 4 types); the vocabulary for the uniform floor: A, B, C, </s>, <unk> (5).
SENTENCES = [["A", "B"], ["A", "C"], ["B"]]
BY_HAND = {
    ("A", ()): (2 + 4 / 5) / (8 + 4),                       # 0.2333
    ("<unk>", ()): (0 + 4 / 5) / (8 + 4),                   # 0.0667: unseen words keep a little
    ("</s>", ()): (3 + 4 / 5) / (8 + 4),
    ("A", ("<s>",)): (2 + 2 * (2.8 / 12)) / (3 + 2),        # after <s>: A 2, B 1
    ("C", ("<s>",)): (0 + 2 * (1.8 / 12)) / (3 + 2),        # unseen after <s>: back-off 2/5 * p(C)
    ("B", ("A",)): (1 + 2 * (2.8 / 12)) / (2 + 2),          # after A: B 1, C 1
    ("</s>", ("C",)): (1 + 1 * (3.8 / 12)) / (1 + 1),       # after C: </s> 1
}


@pytest.mark.parametrize("word, history", list(BY_HAND))
def test_probabilities_match_the_hand_computed_values(word, history):
    assert NGramModel(SENTENCES, order=2).prob(word, history) == pytest.approx(BY_HAND[(word, history)])


def test_each_history_gives_a_distribution():
    model = NGramModel(SENTENCES, order=3)
    for history in [(), ("<s>",), ("<s>", "A"), ("A", "B"), ("C",), ("X", "Y")]:
        assert sum(model.prob(w, history) for w in model.vocabulary) == pytest.approx(1.0)


def parse_arpa(text: str) -> dict:
    """{n-gram tuple: (log10 p, log10 back-off or None)} of an ARPA file."""
    entries, order = {}, None
    for line in text.splitlines():
        if line.startswith("\\") and line.endswith("-grams:"):
            order = int(line[1:line.index("-")])
        elif order and line.strip() and not line.startswith("\\"):
            fields = line.split("\t")
            words = tuple(fields[1].split())
            assert len(words) == order
            entries[words] = (float(fields[0]), float(fields[2]) if len(fields) > 2 else None)
    return entries


def test_arpa_lists_interpolated_probabilities_and_back_off_weights():
    model = NGramModel(SENTENCES, order=2)
    text = model.arpa()
    assert text.startswith("\\data\\\nngram 1=6\nngram 2=6\n") and text.endswith("\\end\\\n")
    entries = parse_arpa(text)
    assert entries[("A", "B")][0] == pytest.approx(math.log10(BY_HAND[("B", ("A",))]), abs=1e-6)
    assert entries[("<s>",)] == (-99.0, pytest.approx(math.log10(2 / 5), abs=1e-6))
    assert entries[("A",)][1] == pytest.approx(math.log10(2 / 4), abs=1e-6)
    assert entries[("<unk>",)][1] is None  # never a history
    # An unseen bigram is the history's back-off weight times the unigram: what the decoder computes.
    backoff, unigram = entries[("<s>",)][1], entries[("C",)][0]
    assert 10 ** (backoff + unigram) == pytest.approx(BY_HAND[("C", ("<s>",))])


def test_kenlm_reads_the_file_and_agrees(tmp_path):
    decoder = pytest.importorskip("flashlight.lib.text.decoder")
    dictionary = pytest.importorskip("flashlight.lib.text.dictionary")
    path = tmp_path / "lm.arpa"
    path.write_text(NGramModel(SENTENCES, order=2).arpa())
    words = dictionary.Dictionary()
    for word in ["A", "B", "C", "<unk>"]:
        words.add_entry(word)
    kenlm = decoder.KenLM(str(path), words)
    state, score = kenlm.score(kenlm.start(False), words.get_index("A"))
    assert score == pytest.approx(math.log10(BY_HAND[("A", ("<s>",))]), abs=1e-4)
    state, score = kenlm.score(state, words.get_index("B"))
    assert score == pytest.approx(math.log10(BY_HAND[("B", ("A",))]), abs=1e-4)


def test_command_reads_manifests_and_text_files(tmp_path):
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps({"id": f"u{i}", "audio": "x.wav", "duration": 1.0, "text": " ".join(s)})
                                + "\n" for i, s in enumerate(SENTENCES[:2])))
    (tmp_path / "more.txt").write_text("B\n\n")
    assert read_sentences(manifest) + read_sentences(tmp_path / "more.txt") == SENTENCES
    out = tmp_path / "lm.arpa"
    result = subprocess.run([sys.executable, "-m", "tasr", "lm", str(manifest), str(tmp_path / "more.txt"),
                             "-o", str(out), "--order", "2"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "3 sentences" in result.stdout
    assert out.read_text() == NGramModel(SENTENCES, order=2).arpa()


def test_bad_input_is_named(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a"}\n')
    with pytest.raises(TasrError, match="bad.jsonl, line 1"):
        read_sentences(bad)
    with pytest.raises(TasrError, match="no sentences"):
        NGramModel([], order=2)
    result = subprocess.run([sys.executable, "-m", "tasr", "lm", str(tmp_path / "missing.txt"), "-o",
                             str(tmp_path / "lm.arpa")], capture_output=True, text=True)
    assert result.returncode == 2 and "missing.txt: No such file" in result.stderr


def test_arpa_model_scores_sentences_with_back_off(tmp_path):
    path = tmp_path / "lm.arpa"
    path.write_text(NGramModel(SENTENCES, order=2).arpa())
    lm = ArpaModel(path)
    assert lm.order == 2
    # "C" after <s> was never seen: the back-off weight of <s> (2/5) times p(C)
    by_hand = math.log10(BY_HAND[("C", ("<s>",))]) + math.log10(BY_HAND[("</s>", ("C",))])
    assert lm.log10_prob(["C"]) == pytest.approx(by_hand, abs=1e-5)
    model = NGramModel(SENTENCES, order=2)
    for sentence in [["A", "B"], ["B", "A", "C"], ["D"]]:  # D: unknown, scored as <unk>
        words = ["<s>"] + sentence + ["</s>"]
        expected = sum(math.log10(model.prob(w if w in model.vocabulary else "<unk>", words[:i]))
                       for i, w in enumerate(words) if i)
        assert lm.log10_prob(sentence) == pytest.approx(expected, abs=1e-5)
    bad = tmp_path / "bad.arpa"
    bad.write_text("\\data\\\nngram 1=1\n\n\\1-grams:\n-0.5\tA\tB\tC\n\\end\\\n")
    with pytest.raises(TasrError, match="bad.arpa: not an ARPA file"):
        ArpaModel(bad)
    with pytest.raises(TasrError, match="no such file|No such file"):
        ArpaModel(tmp_path / "missing.arpa")
