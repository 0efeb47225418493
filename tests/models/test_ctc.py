import sys
from types import SimpleNamespace

import pytest
import torch

from tasr.models.ctc import BeamSearchDecoder, CTCHead, align, ctc_feasible, ctc_loss, greedy_decode, log_likelihoods
from tasr.models.masks import valid_mask
from tasr.text import train_tokenizer

ARPA = """\\data\\
ngram 1=6
ngram 2=2

\\1-grams:
-1.0\t<unk>\t0
-99\t<s>\t-0.3
-1.0\t</s>\t0
-0.5\tONE\t-0.3
-6.0\tONA\t-0.3
-0.5\tTWO\t-0.3

\\2-grams:
-0.2\t<s> ONE
-0.2\tONE TWO

\\end\\
"""


def peaked(tokenizer, text, frames_per_token=2, low=-8.0):
    """Log-probs [1, T, V] that say `text`: each token on one frame, then a blank frame."""
    ids = tokenizer.encode(text)
    log_probs = torch.full((1, frames_per_token * len(ids) + 2, tokenizer.vocab_size), low)
    log_probs[0, :, 0] = 0.0
    for i, token in enumerate(ids):
        log_probs[0, frames_per_token * i, 0] = low
        log_probs[0, frames_per_token * i, token] = 0.0
    return log_probs.log_softmax(-1)


def test_head_gives_log_probabilities():
    head = CTCHead(16, 7)
    log_probs = head(torch.randn(2, 5, 16))
    assert log_probs.shape == (2, 5, 7) and log_probs.dtype == torch.float32
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(2, 5))


def test_loss_is_mean_over_target_tokens_and_ignores_impossible_alignments():
    torch.manual_seed(0)
    log_probs = torch.randn(3, 20, 6).log_softmax(-1)
    lengths = torch.tensor([20, 15, 2])
    targets = torch.tensor([[1, 2, 3, 4], [5, 5, 1, 0], [1, 2, 3, 4]])
    target_lengths = torch.tensor([4, 3, 4])  # the third cannot fit in 2 frames
    per_utterance = ctc_loss(log_probs, lengths, targets, target_lengths, reduction="none")
    assert per_utterance[2] == 0 and torch.isfinite(per_utterance).all()
    reference = torch.nn.functional.ctc_loss(log_probs.transpose(0, 1)[:, :2], targets[:2], lengths[:2],
                                             target_lengths[:2], reduction="sum")
    torch.testing.assert_close(ctc_loss(log_probs, lengths, targets, target_lengths, reduction="sum"), reference)
    torch.testing.assert_close(ctc_loss(log_probs, lengths, targets, target_lengths), reference / 11)


def test_greedy_merges_repeats_and_drops_blanks():
    path = torch.tensor([[1, 1, 0, 1, 2, 2, 0, 0, 3, 3]])
    log_probs = torch.nn.functional.one_hot(path, 5).float().log()
    assert greedy_decode(log_probs, torch.tensor([10])) == [[1, 1, 2, 3]]
    assert greedy_decode(log_probs, torch.tensor([5])) == [[1, 1, 2]]
    assert greedy_decode(log_probs) == [[1, 1, 2, 3]]


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_beam_search_agrees_with_greedy_on_peaked_input(kind):
    tokenizer = train_tokenizer(["ONE TWO THREE FOUR"] * 10, kind, vocab_size=25)
    first, second = peaked(tokenizer, "ONE TWO"), peaked(tokenizer, "TWO THREE FOUR")
    lengths = torch.tensor([first.shape[1], second.shape[1]])
    padding = torch.zeros(1, second.shape[1] - first.shape[1], tokenizer.vocab_size)
    log_probs = torch.cat([torch.cat([first, padding], 1), second], 0)
    beam = BeamSearchDecoder(tokenizer.tokens, beam_size=8)(log_probs, lengths)
    greedy = greedy_decode(log_probs, lengths)
    assert [tokenizer.decode(ids) for ids in beam] == [tokenizer.decode(ids) for ids in greedy]
    assert [tokenizer.decode(ids) for ids in beam] == ["ONE TWO", "TWO THREE FOUR"]


def test_lexicon_and_language_model_steer_the_search(tmp_path):
    tokenizer = train_tokenizer(["ONE TWO ONA"], "char")
    log_probs = peaked(tokenizer, "ONE TWO")
    e, a = tokenizer.encode("E")[0], tokenizer.encode("A")[0]
    log_probs[0, 4, e], log_probs[0, 4, a] = -0.5, 0.0  # acoustically "ONA" is a little better
    log_probs = log_probs.log_softmax(-1)
    assert tokenizer.decode(greedy_decode(log_probs)[0]) == "ONA TWO"
    words = {w: tokenizer.spell(w) for w in ["ONE", "ONA", "TWO"]}
    no_lm = BeamSearchDecoder(tokenizer.tokens, beam_size=10, lexicon=words)
    assert tokenizer.decode(no_lm(log_probs)[0]) == "ONA TWO"
    (tmp_path / "lm.arpa").write_text(ARPA)
    with_lm = BeamSearchDecoder(tokenizer.tokens, beam_size=10, lm=str(tmp_path / "lm.arpa"), lexicon=words,
                                lm_weight=1.0)
    assert tokenizer.decode(with_lm(log_probs)[0]) == "ONE TWO"
    with pytest.raises(ValueError, match="lexicon"):
        BeamSearchDecoder(tokenizer.tokens, lm=str(tmp_path / "lm.arpa"))
    with pytest.raises(FileNotFoundError):
        BeamSearchDecoder(tokenizer.tokens, lm=str(tmp_path / "missing.arpa"), lexicon=words)


def test_a_lexicon_of_letters_does_not_cut_words_into_letters():
    tokenizer = train_tokenizer(["ONE O N E TWO"], "char")
    words = {w: tokenizer.spell(w) for w in ["ONE", "O", "N", "E", "TWO"]}
    decoder = BeamSearchDecoder(tokenizer.tokens, beam_size=10, lexicon=words, nbest=3)
    for text in ["ONE", "ONE TWO", "O N E", "E ONE"]:
        log_probs = peaked(tokenizer, text)
        assert tokenizer.decode(decoder(log_probs)[0]) == text
    # a batch whose utterances end at different frames
    short, long = peaked(tokenizer, "ONE"), peaked(tokenizer, "E TWO")
    batch = torch.cat([torch.nn.functional.pad(short, (0, 0, 0, long.shape[1] - short.shape[1]), value=0.0), long])
    batch[0, short.shape[1]:] = long[0, -1]  # padding frames that say blank
    lengths = torch.tensor([short.shape[1], long.shape[1]])
    assert [tokenizer.decode(ids) for ids in decoder(batch, lengths)] == ["ONE", "E TWO"]


def test_a_lexicon_of_pieces_with_a_lone_boundary_piece_keeps_every_word():
    # SentencePiece vocabularies can hold "▁" alone beside pieces that start with it
    tokens = ["<blank>", "▁", "▁one", "▁two", "x", "<unk>"]
    ids = [2, 3, 2]  # "▁one ▁two ▁one"
    log_probs = torch.full((1, 2 * len(ids) + 2, len(tokens)), -8.0)
    log_probs[0, :, 0] = 0.0
    for i, token in enumerate(ids):
        log_probs[0, 2 * i, 0], log_probs[0, 2 * i, token] = -8.0, 0.0
    decoder = BeamSearchDecoder(tokens, beam_size=10, lexicon={"one": ["▁one"], "two": ["▁two"], "x": ["▁", "x"]})
    assert decoder(log_probs.log_softmax(-1))[0] == ids


def test_log_likelihoods_sum_every_alignment():
    torch.manual_seed(0)
    log_probs = torch.randn(3, 3).log_softmax(-1)  # 3 frames, blank + tokens 1 and 2
    p = log_probs.exp()
    # the paths of three frames that give [1] (0 is blank; 1_1 would give [1, 1])
    paths_of_1 = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (0, 1, 1), (1, 1, 1)]
    expected = sum(p[0, a] * p[1, b] * p[2, c] for a, b, c in paths_of_1).log()
    got = log_likelihoods(log_probs, [[1], [1, 2], [1, 1, 1, 1]])
    assert got[0] == pytest.approx(float(expected), abs=1e-5)
    assert got[1] < 0 and got[2] == float("-inf")  # four tokens cannot come out of three frames


def test_nbest_lists_hold_distinct_hypotheses_best_first():
    tokenizer = train_tokenizer(["ONE TWO ONA"], "char")
    log_probs = peaked(tokenizer, "ONE TWO")
    e, a = tokenizer.encode("E")[0], tokenizer.encode("A")[0]
    log_probs[0, 4, e], log_probs[0, 4, a] = 0.0, -0.5
    log_probs = log_probs.log_softmax(-1)
    decoder = BeamSearchDecoder(tokenizer.tokens, beam_size=5, nbest=5)
    texts = [tokenizer.decode(ids) for ids in decoder.nbest_lists(log_probs)[0]]
    assert texts[0] == "ONE TWO" and "ONA TWO" in texts and len(set(texts)) == len(texts)
    assert decoder(log_probs) == [tokenizer.encode("ONE TWO")]


def test_nbest_lists_merge_paths_that_differ_only_in_silence():
    tokenizer = train_tokenizer(["ONE TWO"], "char")
    decoder = BeamSearchDecoder(tokenizer.tokens, beam_size=5, nbest=3)
    sil, one = tokenizer.tokens.index("▁"), tokenizer.encode("ONE")
    paths = [[sil, *one, sil], [sil, *one, sil, sil], [sil, sil, *one[:2], sil]]
    # flashlight orders tied paths freely; here it returns these three
    decoder.decoder = lambda emissions, lengths: [[SimpleNamespace(tokens=torch.tensor(p)) for p in paths]]
    assert decoder.nbest_lists(torch.zeros(1, 4, tokenizer.vocab_size)) == [[one, one[:2]]]


def test_missing_flashlight_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "flashlight.lib.text.decoder", None)
    with pytest.raises(ImportError, match="pip install flashlight-text"):
        BeamSearchDecoder(["<blank>", "a"])


def test_align_gives_token_spans_in_order():
    tokenizer = train_tokenizer(["ONE TWO"], "char")
    log_probs = peaked(tokenizer, "ONE TWO", frames_per_token=3)
    tokens = tokenizer.encode("ONE TWO")
    spans = align(log_probs[0], tokens)
    assert [s.token for s in spans] == tokens
    assert [(s.start, s.end) for s in spans] == [(3 * i, 3 * i + 1) for i in range(len(tokens))]
    assert all(0.99 < s.score <= 1.0 for s in spans)
    assert align(log_probs, []) == []
    with pytest.raises(ValueError, match="cannot be aligned"):
        align(log_probs[0, :3], tokens)


def test_ctc_feasible_counts_a_blank_between_repeats():
    assert ctc_feasible([3, 4, 5], frames=16, subsampling=4)  # 3 tokens in 16 // 4 - 1 = 3 output frames
    assert not ctc_feasible([3, 3, 5], frames=16, subsampling=4)  # the repeat needs a blank: 4 frames
    assert not ctc_feasible([3], frames=7, subsampling=4)


def test_valid_mask_marks_the_real_frames():
    mask = valid_mask(torch.tensor([3, 0, 5]), 5)
    assert mask.dtype == torch.bool and mask.tolist() == [[True] * 3 + [False] * 2, [False] * 5, [True] * 5]
