"""The utterances a training run leaves out (missing or unreadable audio, transcripts CTC cannot align).

Each is counted once per split, however often it comes up, and the counts are the same in every
process; `Trainer` writes them to skipped.tsv and reports them in its summary line.
"""

from tasr.errors import TasrError


class StopForBadAudio(TasrError):
    """A bad utterance under --on-bad-audio stop."""


class Skipped:
    """Utterances left out (each counted once per split however often it comes up), by reason.

    Each process notes what it finds in `pending`; `merge` adds every process's notes (gathered)
    so that all processes hold the same counts.
    """

    def __init__(self, state=None):
        state = state or {}
        self.counts = dict(state.get("counts", {}))
        self.seen = set(state.get("seen", []))
        self.pending = []  # (split, id, reason, kind) found by this process since the last merge

    def note(self, utt_id: str, reason: str, kind: str, split: str) -> bool:
        """Remember a bad utterance; False if it is known already."""
        key = f"{split}/{utt_id}"
        if key in self.seen or any(f"{p[0]}/{p[1]}" == key for p in self.pending):
            return False
        self.pending.append((split, utt_id, reason, kind))
        return True

    def merge(self, notes) -> list:
        """Count the notes of every process; returns the ones not counted before."""
        new = []
        for split, utt_id, reason, kind in notes:
            if f"{split}/{utt_id}" not in self.seen:
                self.seen.add(f"{split}/{utt_id}")
                key = f"{split}: {kind}"
                self.counts[key] = self.counts.get(key, 0) + 1
                new.append((split, utt_id, reason))
        return new

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        return ", ".join(f"{kind} {n}" for kind, n in sorted(self.counts.items())) or "none"

    def state(self) -> dict:
        return {"counts": dict(self.counts), "seen": sorted(self.seen)}
