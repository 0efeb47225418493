"""Word timestamps: token spans -> words, snapping to the sound, and a tiny trained model on joined digits."""

import glob
import json
import os
import random

import numpy as np
import pytest
import soundfile
import torch

from tasr import audio
import corpora
import tasr
from tasr.models.ctc import ctc_loss, greedy_spans, pause_chunks
from subtitle_helpers import parse_srt
from tasr.cli import main
from tasr.model import SpeechRecognizer
from tasr.text import CharTokenizer
from tasr.timestamps import Word, snap_to_sound, words_from_spans

FSDD = str(corpora.fsdd.root / "recordings")
NAMES = "zero one two three four five six seven eight nine".split()


pytestmark = pytest.mark.usefixtures("one_thread")


def log_probs_of(path, vocab):
    """log_probs [T, V] whose best token per frame follows `path` (probability 0.9)."""
    lp = torch.full((len(path), vocab), 0.1 / (vocab - 1)).log()
    lp[torch.arange(len(path)), torch.tensor(path)] = torch.tensor(0.9).log()
    return lp


def test_words_from_greedy_spans():
    tok = CharTokenizer(list(" abc"))  # ids: blank 0, unk 1, " " 2, a 3, b 4, c 5
    #       a  a  -  b  " "  -  c  -  -  -  -  -  -  -  -  a
    path = [3, 3, 0, 4, 2, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]
    spans = greedy_spans(log_probs_of(path, 6))
    assert [(s.token, s.start, s.end) for s in spans] == [(3, 0, 2), (4, 3, 4), (2, 4, 5), (5, 6, 7), (3, 16, 17)]
    assert all(abs(s.score - 0.9) < 1e-5 for s in spans)
    words = words_from_spans(spans, tok, frame_s=0.04, pause_s=0.3)
    # "ab" ends at the space; "c" and "a" are one word for the tokens but a 0.36 s pause splits them
    assert [(w.text, round(w.start, 2), round(w.end, 2)) for w in words] == [
        ("ab", 0.0, 0.16), ("c", 0.24, 0.28), ("a", 0.64, 0.68)]
    assert pause_chunks(log_probs_of(path, 6), min_pause=5) == [(0, 11), (11, 17)]


def test_snap_to_sound_widens_words_to_the_sound_around_them():
    rate = 8000
    wave = torch.zeros(rate * 2)
    wave[4000:8000] = 0.3 * torch.sin(torch.arange(4000) * 0.3)  # sound from 0.5 s to 1.0 s
    wave += 1e-4 * torch.randn(wave.shape[0])
    words = [Word("a", 0.6, 0.7, 1.0), Word("b", 1.5, 1.6, 1.0)]
    snap_to_sound(words, audio.energy_db(wave, rate))
    assert abs(words[0].start - 0.5) <= 0.02 and abs(words[0].end - 1.0) <= 0.02
    assert (words[1].start, words[1].end) == (1.5, 1.6)  # in silence: left alone


def joined_digits(clips, n, rng, rate=8000):
    """n random clips with 0.2-0.6 s pauses (low noise) -> (waveform, [(word, start s, end s)])."""
    parts, truth, t = [], [], 0
    for _ in range(n):
        wave, name = rng.choice(clips)
        gap = torch.zeros(int(rate * rng.uniform(0.2, 0.6)))
        parts += [gap, wave]
        t += gap.shape[0]
        truth.append((name, t / rate, (t + wave.shape[0]) / rate))
        t += wave.shape[0]
    parts.append(torch.zeros(int(rate * 0.3)))
    wave = torch.cat(parts)
    return wave + 3e-4 * torch.randn(wave.shape[0], generator=torch.Generator().manual_seed(n)), truth


@pytest.fixture(scope="module", params=[10.0, 20.0], ids=["10ms-frames", "20ms-frames"])
def digits(tmp_path_factory, request):
    """A tiny model trained for 200 steps on one speaker's digits joined with pauses (overfits, on
    purpose), with front-end frames of 10 ms or 20 ms: times must come out right for either."""
    corpora.fsdd.require()
    files = sorted(glob.glob(os.path.join(FSDD, "*_george_*.wav")))[::10][:30]
    assert len(files) == 30, f"{FSDD} holds fewer than 300 recordings of george"
    torch.manual_seed(0)
    rng = random.Random(0)
    clips = [(audio.load(f, 8000), NAMES[int(os.path.basename(f)[0])]) for f in files]
    tok = CharTokenizer(sorted(set("".join(NAMES) + " ")))
    config = {"sample_rate": 8000, "fbank": {"num_mel_bins": 40, "frame_shift": request.param},
              "encoder": {"d_model": 48, "n_heads": 2, "n_layers": 2, "ff_dim": 96, "subsampling_channels": 8,
                          "conv_kernel": 7, "left": 8, "right": 2, "dropout": 0.0}}
    model = SpeechRecognizer(config, tok)
    assert model.output_frame_s == pytest.approx(4 * request.param / 1000)
    optimizer = torch.optim.Adam(model.parameters(), 4e-3)
    for _ in range(200):
        batch = [joined_digits(clips, rng.randint(1, 3), rng) for _ in range(4)]
        waves = torch.nn.utils.rnn.pad_sequence([w for w, _ in batch], batch_first=True)
        log_probs, lengths = model(waves, torch.tensor([w.shape[0] for w, _ in batch]))
        targets = [torch.tensor(tok.encode(" ".join(word for word, _, _ in truth))) for _, truth in batch]
        loss = ctc_loss(log_probs, lengths, torch.nn.utils.rnn.pad_sequence(targets, batch_first=True),
                        torch.tensor([len(t) for t in targets]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    root = tmp_path_factory.mktemp("digits")
    model.save(root / "model.pt")
    wave, truth = joined_digits(clips, 40, random.Random(5))
    soundfile.write(root / "digits.wav", wave.numpy(), 8000)
    return root, truth


def boundary_errors(data, truth):
    """|start/end error| in seconds of each recognised word paired with the true word of the same
    text that overlaps it in time (each true word used once)."""
    errors, used = [], set()
    for w in (w for s in data["segments"] for w in s["words"]):
        overlaps = [(min(w["end"], end) - max(w["start"], start), i) for i, (word, start, end) in enumerate(truth)
                    if word == w["word"] and i not in used]
        overlap, i = max(overlaps, default=(0, None))
        if overlap > 0:
            used.add(i)
            errors += [abs(w["start"] - truth[i][1]), abs(w["end"] - truth[i][2])]
    return np.array(errors)


@pytest.mark.slow
def test_word_times_match_true_digit_boundaries(digits):
    root, truth = digits
    assert main(["transcribe", str(root / "model.pt"), str(root / "digits.wav"), "-f", "all", "-q"]) == 0
    data = json.loads((root / "digits.json").read_text())
    errors = boundary_errors(data, truth)
    assert len(errors) / 2 >= 0.85 * len(truth)  # most digits recognised (training data: this is no WER test)
    assert np.median(errors) <= 0.1 and np.percentile(errors, 95) <= 0.15, np.sort(errors)
    cues = parse_srt((root / "digits.srt").read_text(), data["duration"])
    assert len(cues) >= 5  # the longer pauses start new cues
    result = tasr.load_model(root / "model.pt", device="cpu").transcribe(root / "digits.wav")  # the same, as a library
    assert [w.to_dict() for w in result.words] == [w for s in data["segments"] for w in s["words"]]
