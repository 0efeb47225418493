"""Word and character error rates of hypotheses against references, the one way tasr scores text.

Both sides are normalised as the tokenizers normalise text (`tasr.text.normalize`: NFKC, single
spaces, stripped; lower-cased when the model's tokenizer lower-cases), so validation in training
and `tasr decode` give the same figures for the same texts. WER counts words; CER counts
characters, spaces included (jiwer).
"""

import jiwer

from tasr.text import normalize

EMPTY = {"utterances": 0, "words": 0, "wer": 0.0, "cer": 0.0, "substitutions": 0, "deletions": 0,
         "insertions": 0, "hits": 0, "sentence_error_rate": 0.0}
MARKS = {"equal": "", "substitute": "S", "delete": "D", "insert": "I"}


def normalized(texts: list[str], lowercase: bool = False) -> list[str]:
    """`texts` as they are scored."""
    return [normalize(str(text), lowercase) for text in texts]


def score(refs: list[str], hyps: list[str], lowercase: bool = False) -> dict:
    """WER/CER and error counts of hypotheses against references (both normalised, lower-cased
    when `lowercase`); empty lists give zeros."""
    if not refs:
        return dict(EMPTY)
    refs, hyps = normalized(refs, lowercase), normalized(hyps, lowercase)
    words = jiwer.process_words(refs, hyps)
    chars = jiwer.process_characters(refs, hyps)
    return {
        "utterances": len(refs),
        "words": sum(len(r) for r in words.references),
        "wer": words.wer,
        "cer": chars.cer,
        "substitutions": words.substitutions,
        "deletions": words.deletions,
        "insertions": words.insertions,
        "hits": words.hits,
        "sentence_error_rate": sum(r != h for r, h in zip(words.references, words.hypotheses)) / len(refs),
    }


def error_report(utt_ids: list[str], refs: list[str], hyps: list[str], lowercase: bool = False) -> str:
    """Per utterance: id, WER and S/D/I counts, then REF/HYP aligned word by word with error marks
    (*** for a missing word)."""
    if not refs:
        return ""
    words = jiwer.process_words(normalized(refs, lowercase), normalized(hyps, lowercase))
    blocks = []
    for utt_id, ref, hyp, chunks in zip(utt_ids, words.references, words.hypotheses, words.alignments):
        ref_row, hyp_row, marks = [], [], []
        counts = {"S": 0, "D": 0, "I": 0}
        for chunk in chunks:
            r = ref[chunk.ref_start_idx : chunk.ref_end_idx]
            h = hyp[chunk.hyp_start_idx : chunk.hyp_end_idx]
            mark = MARKS[chunk.type]
            for i in range(max(len(r), len(h))):
                a = r[i] if i < len(r) else "***"
                b = h[i] if i < len(h) else "***"
                width = max(len(a), len(b), 1)
                ref_row.append(a.ljust(width))
                hyp_row.append(b.ljust(width))
                marks.append(mark.ljust(width))
                if mark:
                    counts[mark] += 1
        errors = sum(counts.values())
        rate = errors / len(ref) if ref else float(errors > 0)
        blocks.append(
            f"{utt_id} WER {100 * rate:.1f}% (S={counts['S']} D={counts['D']} I={counts['I']}, {len(ref)} words)\n"
            f"REF: {' '.join(ref_row).rstrip()}\nHYP: {' '.join(hyp_row).rstrip()}\n"
            f"     {' '.join(marks).rstrip()}\n")
    return "\n".join(blocks)
