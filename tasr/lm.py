"""A word n-gram language model in ARPA format, of text files or manifests (what `tasr lm` writes).

TEXT files hold one sentence a line, or are manifests (`.jsonl`: their "text" fields). Each
sentence is wrapped in <s> ... </s>. The model is interpolated Witten-Bell, a smoothing that
stays well defined on small corpora (no counts-of-counts to estimate, unlike Kneser-Ney):

    p(w | h) = (c(h w) + T(h) * p(w | h')) / (c(h) + T(h))

where h' is h without its first word, c(h) counts the words that follow the history h, and
T(h) the different ones. The unigram level interpolates with the uniform distribution over
the vocabulary (every word seen, </s> and <unk>), so an unseen word keeps a small probability.
In ARPA terms, the listed log10 p of each seen n-gram is the interpolated value above and the
back-off weight of a history h is T(h) / (c(h) + T(h)); `tasr decode --lm` (KenLM inside
flashlight-text) reads the file, and `ArpaModel` scores whole sentences with any ARPA file.
"""

import json
import math
from collections import Counter, defaultdict
from pathlib import Path

from tasr.errors import TasrError

BOS, EOS, UNK = "<s>", "</s>", "<unk>"


def read_sentences(path) -> list[list[str]]:
    """Word lists of a text file (one sentence a line) or a manifest (`.jsonl`, its "text" fields)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise TasrError(f"{path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise TasrError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    if path.suffix != ".jsonl":
        return [line.split() for line in lines if line.strip()]
    sentences = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            text = json.loads(line)["text"]
        except (json.JSONDecodeError, TypeError, KeyError):
            raise TasrError(f"{path}, line {number}: not a manifest line with a \"text\" field") from None
        if not isinstance(text, str):
            raise TasrError(f"{path}, line {number}: \"text\" must be a string")
        sentences.append(text.split())
    return sentences


class NGramModel:
    """Interpolated Witten-Bell n-gram model of `sentences` (lists of words), `order` >= 1."""

    def __init__(self, sentences, order: int = 3):
        if order < 1:
            raise TasrError(f"--order must be >= 1, got {order}")
        self.order = order
        # follows[n][h] = Counter of the words after history h (a tuple of n words)
        self.follows = [defaultdict(Counter) for _ in range(order)]
        for sentence in sentences:
            words = [BOS] + list(sentence) + [EOS]
            for i in range(1, len(words)):
                for n in range(order):
                    if i - n < 0:
                        break
                    self.follows[n][tuple(words[i - n:i])][words[i]] += 1
        if not self.follows[0]:
            raise TasrError("no sentences to build a language model from")
        self.vocabulary = sorted(set(self.follows[0][()]) | {EOS, UNK})
        self._cache = {}

    def prob(self, word: str, history=()) -> float:
        """p(word | history), history the preceding words (only the last order-1 are used)."""
        history = tuple(history)[-(self.order - 1):] if self.order > 1 else ()
        key = (word, history)
        if key not in self._cache:
            self._cache[key] = self._prob(word, history)
        return self._cache[key]

    def _prob(self, word, history) -> float:
        if not history:
            lower = 1.0 / len(self.vocabulary)
        else:
            lower = self.prob(word, history[1:])
        counts = self.follows[len(history)].get(history)
        if not counts:
            return lower
        total, types = sum(counts.values()), len(counts)
        return (counts[word] + types * lower) / (total + types)

    def backoff(self, history) -> float | None:
        """Interpolation weight T(h) / (c(h) + T(h)) of a seen history, or None for an unseen one."""
        counts = self.follows[len(history)].get(tuple(history)) if len(history) < self.order else None
        if not counts:
            return None
        return len(counts) / (sum(counts.values()) + len(counts))

    def ngrams(self, n: int) -> list[tuple]:
        """The seen n-grams of length n (n = 1: the vocabulary and <s>), sorted."""
        if n == 1:
            return sorted((w,) for w in set(self.vocabulary) | {BOS})
        return sorted(h + (w,) for h, counts in self.follows[n - 1].items() for w in counts)

    def arpa(self) -> str:
        """The model in ARPA format (log10 probabilities and back-off weights)."""
        sections = {n: self.ngrams(n) for n in range(1, self.order + 1)}
        lines = ["\\data\\"] + [f"ngram {n}={len(grams)}" for n, grams in sections.items()] + [""]
        for n, grams in sections.items():
            lines.append(f"\\{n}-grams:")
            for gram in grams:
                logp = -99.0 if gram == (BOS,) else math.log10(self.prob(gram[-1], gram[:-1]))
                line = f"{logp:.6f}\t{' '.join(gram)}"
                weight = self.backoff(gram) if n < self.order else None
                if weight is not None:
                    line += f"\t{math.log10(weight):.6f}"
                lines.append(line)
            lines.append("")
        lines.append("\\end\\")
        return "\n".join(lines) + "\n"


class ArpaModel:
    """A back-off n-gram model read from an ARPA file: `log10_prob(words)` of a whole sentence."""

    def __init__(self, path):
        self.grams = {}  # n-gram tuple: (log10 p, log10 back-off weight)
        n = 0  # the words per line in the current \\n-grams: section (0: not in one)
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if line.startswith("\\"):
                        n = int(line[1:-len("-grams:")]) if line.endswith("-grams:") else 0
                        continue
                    fields = line.split()
                    if not n or not fields:
                        continue
                    if len(fields) not in (n + 1, n + 2):
                        raise ValueError
                    weight = float(fields[n + 1]) if len(fields) == n + 2 else 0.0
                    self.grams[tuple(fields[1 : n + 1])] = (float(fields[0]), weight)
        except OSError as error:
            raise TasrError(f"{path}: {error.strerror}") from None
        except UnicodeDecodeError:
            raise TasrError(f"{path}: not a UTF-8 ARPA file (a binary KenLM model?)") from None
        except ValueError:
            raise TasrError(f"{path}: not an ARPA file (bad line {line[:60]!r})") from None
        if not self.grams:
            raise TasrError(f"{path}: no n-grams in it")
        self.order = max(map(len, self.grams))

    def word_log10_prob(self, word: str, history=()) -> float:
        """log10 p(word | history): the longest seen n-gram ending in `word`, plus the back-off
        weights of the longer histories that were not followed by it; <unk> for an unknown word."""
        history = tuple(history)[len(history) - self.order + 1 :] if self.order > 1 else ()
        backoff = 0.0
        while history + (word,) not in self.grams:
            if not history:
                return backoff + self.grams.get((UNK,), (-99.0, 0.0))[0]
            backoff += self.grams.get(history, (0.0, 0.0))[1]
            history = history[1:]
        return backoff + self.grams[history + (word,)][0]

    def log10_prob(self, words) -> float:
        """log10 p(</s>, words | <s>): a whole sentence."""
        words = [BOS] + list(words) + [EOS]
        return sum(self.word_log10_prob(words[i], words[:i]) for i in range(1, len(words)))
