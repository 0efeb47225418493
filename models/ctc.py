"""CTC: output layer, loss, greedy decoding, beam search and forced alignment. Blank is id 0.

- `CTCHead(d_model, vocab_size)`: encodings [B, T, d] -> log-probabilities [B, T, V].
- `ctc_loss(log_probs, lengths, targets, target_lengths)`: summed over the batch and divided by
  the number of target tokens (so long and short utterances weigh by their tokens).
- `greedy_decode(log_probs, lengths)`: best token per frame, repeats merged, blanks dropped.
- `greedy_spans(log_probs)`: the greedy tokens with their frame spans; `pause_chunks(log_probs,
  min_pause)`: frame ranges cut at pauses; `ctc_feasible(tokens, frames, subsampling)`.
- `log_likelihoods(log_probs, candidates)`: log P(token sequence | input) of each candidate.
- `BeamSearchDecoder`: torchaudio's CTC beam search (flashlight-text), optionally with a KenLM
  n-gram language model and a lexicon.
- `align(log_probs, tokens)`: Viterbi forced alignment (torchaudio) -> one frame span per token.
"""

import os
import tempfile
from dataclasses import dataclass

import torch
from torch import nn

BLANK = 0


class CTCHead(nn.Module):
    """Dropout, then a linear layer to `vocab_size` outputs (blank included), then log-softmax."""

    def __init__(self, d_model: int, vocab_size: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(d_model, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, d] -> log_probs [B, T, V] (float32 even under autocast, for the loss)."""
        return torch.log_softmax(self.linear(self.dropout(x)).float(), dim=-1)


def ctc_loss(log_probs, lengths, targets, target_lengths, reduction: str = "mean"):
    """CTC loss of log_probs [B, T, V] (frames `lengths` [B]) against `targets`.

    targets: padded [B, S] ids >= 1 (or concatenated [sum(target_lengths)]), target_lengths [B].
    reduction: "mean" = sum over the batch / number of target tokens; "sum"; "none" = per utterance.
    Impossible alignments (more tokens than frames allow) count as 0 (zero_infinity), not inf.
    """
    losses = nn.functional.ctc_loss(
        log_probs.float().transpose(0, 1), targets, lengths, target_lengths,
        blank=BLANK, reduction="none", zero_infinity=True)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    if reduction == "mean":
        return losses.sum() / torch.as_tensor(target_lengths).sum().clamp(min=1).to(losses)
    raise ValueError(f"reduction must be mean, sum or none, not {reduction!r}")


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor | None = None) -> list[list[int]]:
    """Best path: argmax per frame, repeated tokens merged, blanks removed. log_probs [B, T, V]."""
    best = log_probs.argmax(dim=-1).cpu()
    if lengths is None:
        lengths = torch.full((best.shape[0],), best.shape[1])
    results = []
    for path, length in zip(best, lengths.tolist()):
        tokens = torch.unique_consecutive(path[:length])
        results.append(tokens[tokens != BLANK].tolist())
    return results


def ctc_feasible(tokens: list[int], frames: int, subsampling: int) -> bool:
    """Whether CTC can align `tokens` to an utterance of `frames` input frames (repeats need a blank between)."""
    repeats = sum(1 for a, b in zip(tokens, tokens[1:]) if a == b)
    return len(tokens) + repeats <= frames // subsampling - 1


def log_likelihoods(log_probs: torch.Tensor, candidates: list[list[int]]) -> torch.Tensor:
    """log P(candidate | input) [N], summed over all CTC alignments, for one utterance's
    log_probs [T, V]; -inf for a candidate that no alignment of T frames can produce."""
    if not candidates:
        return torch.zeros(0)
    count = len(candidates)
    targets = torch.tensor([t for c in candidates for t in c], dtype=torch.long)
    lengths = torch.tensor([len(c) for c in candidates])
    losses = nn.functional.ctc_loss(
        log_probs.float().cpu().unsqueeze(1).expand(-1, count, -1), targets,
        torch.full((count,), log_probs.shape[0]), lengths, blank=BLANK, reduction="none")
    return -losses


@dataclass
class TokenSpan:
    """One token of an alignment: output frames start .. end-1, mean posterior `score` in [0, 1]."""

    token: int
    start: int
    end: int
    score: float


def greedy_spans(log_probs: torch.Tensor) -> list[TokenSpan]:
    """The greedy (best-path) tokens of log_probs [T, V] with their frame spans and mean probability.

    The best path is the most probable alignment of its own tokens, so these spans are what
    forced alignment of the greedy tokens would give (up to ties), at O(T) cost.
    """
    if log_probs.shape[0] == 0:
        return []
    best_lp, best = log_probs.float().max(dim=-1)
    values, counts = torch.unique_consecutive(best, return_counts=True)
    ends = counts.cumsum(0)
    starts = ends - counts
    sums = torch.cat([best_lp.new_zeros(1), best_lp.exp().cumsum(0)])
    means = (sums[ends] - sums[starts]) / counts
    keep = values != BLANK
    return [TokenSpan(int(v), int(s), int(e), float(m)) for v, s, e, m in
            zip(values[keep].tolist(), starts[keep].tolist(), ends[keep].tolist(), means[keep].tolist())]


def pause_chunks(log_probs: torch.Tensor, min_pause: int) -> list[tuple[int, int]]:
    """Frame ranges [(start, end), ...] covering log_probs [T, V], cut in the middle of every run
    of at least `min_pause` frames where the blank is the best token (a pause). Greedy decoding
    of each chunk gives the tokens of the whole; beam search runs chunk by chunk on them."""
    T = log_probs.shape[0]
    if T == 0:
        return []
    blank = (log_probs.argmax(dim=-1) == BLANK).cpu()
    values, counts = torch.unique_consecutive(blank, return_counts=True)
    cuts, position = [], 0
    for is_blank, count in zip(values.tolist(), counts.tolist()):
        if is_blank and count >= min_pause and 0 < position and position + count < T:
            cuts.append(position + count // 2)
        position += count
    bounds = [0] + cuts + [T]
    return list(zip(bounds[:-1], bounds[1:]))


def align(log_probs: torch.Tensor, tokens: list[int]) -> list[TokenSpan]:
    """Viterbi alignment of `tokens` (ids >= 1) to log_probs [T, V] of one utterance.

    Returns one `TokenSpan` per token, in order; multiply frames by the encoder's frame period
    (the model's output frame, in seconds) for times. Raises ValueError if the tokens cannot fit in T frames.
    """
    import torchaudio.functional as F

    if log_probs.dim() == 3:
        log_probs = log_probs[0]
    tokens = [int(t) for t in tokens]
    if not tokens:
        return []
    repeats = sum(a == b for a, b in zip(tokens, tokens[1:]))
    if len(tokens) + repeats > log_probs.shape[0]:
        raise ValueError(f"{len(tokens)} tokens cannot be aligned to {log_probs.shape[0]} frames")
    emissions = log_probs.detach().float().cpu()[None]
    targets = torch.tensor([tokens], dtype=torch.int32)
    path, scores = F.forced_align(emissions, targets, blank=BLANK)
    spans = F.merge_tokens(path[0], scores[0].exp(), blank=BLANK)
    return [TokenSpan(s.token, s.start, s.end, float(s.score)) for s in spans]


class BeamSearchDecoder:
    """CTC prefix beam search (torchaudio's flashlight-text decoder), optionally with an n-gram LM.

    tokens: token strings in id order, blank first (a tokenizer's `tokens`); word boundaries are
    "▁" (a token of its own for characters, the start of a piece for SentencePiece).
    lm: path to a KenLM model (ARPA or binary) over words; it needs `lexicon`, a dict
    word -> token strings (the application reads one from a lexicon file); only words in the
    lexicon can then be output (a lexicon without lm restricts the output the same way).
    lm_weight, word_score, beam_size, beam_threshold, unk_score: as in
    torchaudio.models.decoder.ctc_decoder. Without a lexicon, decoding is lexicon-free.

    `__call__(log_probs [B, T, V], lengths [B])` returns a list of token-id lists (the best
    hypothesis for each utterance; blanks and repeats removed). With a lexicon, they are the
    spellings of the completed words, joined by "▁" when that is a token of its own.
    `nbest_lists` returns up to `nbest` distinct hypotheses of each utterance, best first.
    """

    def __init__(self, tokens, beam_size: int = 10, lm=None, lexicon=None, lm_weight: float = 2.0,
                 word_score: float = 0.0, beam_threshold: float = 25.0, unk_score: float = float("-inf"),
                 nbest: int = 1):
        try:
            from torchaudio.models.decoder import ctc_decoder
            import flashlight.lib.text.decoder  # noqa: F401  (ctc_decoder fails late without it)
        except ImportError:
            raise ImportError("beam search needs the flashlight-text package: pip install flashlight-text "
                              "(or use greedy decoding)") from None
        self.tokens = list(tokens)
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError("token strings must be distinct")
        if lm is not None:
            if not os.path.isfile(lm):
                raise FileNotFoundError(f"language model {lm} not found")
            if lexicon is None:
                raise ValueError("a word language model needs a lexicon (word -> tokens)")
        # word -> token ids, used to write out the words of a lexicon search (flashlight's token
        # path may end inside a word that was never completed)
        self.spellings = None if lexicon is None else self._check_lexicon(lexicon)
        # Silence: characters have a word-boundary token "▁"; when pieces carry "▁" themselves
        # (SentencePiece, whose vocabulary may also hold a lone "▁"), the blank doubles as the
        # "silence" flashlight needs.
        pieces_carry_boundary = any(len(t) > 1 and t.startswith("▁") for t in self.tokens)
        sil = "▁" if "▁" in self.tokens and not pieces_carry_boundary else self.tokens[BLANK]
        self.sil = self.tokens.index(sil)
        # With a boundary token of its own, each lexicon word is spelled with a "▁" after it, so
        # the search cannot cut one word into others ("ONE" into the letter words "O N E"); the
        # last word's "▁" is given by an extra frame that says "▁" (see `nbest_lists`).
        self.closing_boundary = self.spellings is not None and self.sil != BLANK
        lexicon_file = None
        try:
            if self.spellings is not None:
                with tempfile.NamedTemporaryFile("w", suffix=".lexicon", delete=False, encoding="utf-8") as f:
                    for word, ids in self.spellings.items():
                        spelling = [self.tokens[i] for i in ids] + [sil] * self.closing_boundary
                        f.write(f"{word} {' '.join(spelling)}\n")
                lexicon_file = f.name
            self.decoder = ctc_decoder(
                lexicon=lexicon_file, tokens=self.tokens, lm=lm, nbest=nbest, beam_size=beam_size,
                beam_threshold=beam_threshold, lm_weight=lm_weight if lm else 0.0,
                word_score=word_score, unk_score=unk_score, sil_score=0.0, log_add=False,
                blank_token=self.tokens[BLANK], sil_token=sil, unk_word="<unk>")
        finally:
            if lexicon_file:
                os.unlink(lexicon_file)

    def _check_lexicon(self, lexicon) -> dict:
        """{word: token ids} from a dict word -> token strings."""
        ids = {t: i for i, t in enumerate(self.tokens)}
        spellings = {}
        for word, spelling in lexicon.items():
            if spelling and all(t in ids for t in spelling) and word and not any(c.isspace() for c in word):
                spellings.setdefault(word, [ids[t] for t in spelling])
        if not spellings:
            raise ValueError("no lexicon word can be spelled with the model's tokens")
        return spellings

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor | None = None) -> list[list[int]]:
        return [hypotheses[0] if hypotheses else [] for hypotheses in self.nbest_lists(log_probs, lengths)]

    def nbest_lists(self, log_probs: torch.Tensor, lengths: torch.Tensor | None = None) -> list[list[list[int]]]:
        """For each utterance of log_probs [B, T, V], its hypotheses (token-id lists), best first."""
        emissions = log_probs.detach().float().cpu()
        if lengths is not None:
            lengths = lengths.detach().cpu().to(torch.int32)
        if self.closing_boundary:  # one more frame, after each utterance's last, that is surely "▁"
            B, T, V = emissions.shape
            ends = torch.full((B,), T) if lengths is None else lengths.long()
            emissions = torch.cat([emissions, emissions.new_zeros(B, 1, V)], dim=1)
            boundary = emissions.new_full((V,), float("-inf"))
            boundary[self.sil] = 0.0
            emissions[torch.arange(B), ends] = boundary
            lengths = (ends + 1).to(torch.int32)
        emissions = emissions.contiguous()
        # each hypothesis once, at its best place (paths that differ only in silence give one)
        return [[list(ids) for ids in dict.fromkeys(tuple(self._token_ids(h)) for h in hypotheses)]
                for hypotheses in self.decoder(emissions, lengths)]

    def _token_ids(self, hypothesis) -> list[int]:
        """One flashlight hypothesis as token ids (spelled words with a lexicon, else its tokens)."""
        if self.spellings is not None:  # the completed words, spelled
            ids = []
            for word in hypothesis.words:
                spelling = self.spellings.get(word)
                if spelling:  # a boundary token between words unless the piece has its own "▁"
                    joint = ids and self.sil != BLANK and not self.tokens[spelling[0]].startswith("▁")
                    ids += ([self.sil] if joint else []) + spelling
            return ids
        ids = hypothesis.tokens.tolist()  # blanks and repeats already removed
        # flashlight pads the path with one silence frame before and after the input, and the
        # path may add silence of its own at either end
        while ids and ids[0] == self.sil:
            ids = ids[1:]
        while ids and ids[-1] == self.sil:
            ids = ids[:-1]
        return ids
