"""Decoding with an ensemble of CTC models: N-best texts of each, rescored by all of them."""

import json

import pytest
import torch
from torch import nn

from tasr.cli import main
from tasr.decoding import KENLM_MAGIC, DecodingOptions
from tasr.ensemble import EnsembleSearch
from tasr.errors import TasrError
from tasr.lm import NGramModel
from tasr.model import SpeechRecognizer
from tasr.text import train_tokenizer
from test_decode import CONFIG, NAMES, WORDS, needs_fsdd, write_manifest


BEAM = DecodingOptions(beam=4)


class FixedOutput(nn.Module):
    """A stand-in model that says "ONE" or "ONA" whatever it hears: log-probs [1, 6, V] with the
    last letter's frame given as {letter: log-probability}."""

    def __init__(self, tokenizer, last_letter: dict, sample_rate=16000):
        super().__init__()
        self.tokenizer, self.sample_rate = tokenizer, sample_rate
        self.weight = nn.Parameter(torch.zeros(1))  # a device to run on
        log_probs = torch.full((1, 6, tokenizer.vocab_size), -8.0)
        log_probs[0, :, 0] = 0.0  # blank frames between the letters
        for frame, letter in [(0, "O"), (2, "N")]:
            log_probs[0, frame, 0], log_probs[0, frame, tokenizer.encode(letter)[0]] = -8.0, 0.0
        log_probs[0, 4, 0] = -8.0
        for letter, value in last_letter.items():
            log_probs[0, 4, tokenizer.encode(letter)[0]] = value
        self.log_probs = log_probs.log_softmax(-1)
        self.heard = []  # (samples, lengths) of every batch it was given

    def forward(self, waveforms, lengths):
        self.heard.append((waveforms.shape[-1], lengths.tolist()))
        return self.log_probs.expand(len(waveforms), -1, -1), torch.full((len(waveforms),), 6)


def test_the_text_all_models_find_likely_wins(tmp_path):
    char = train_tokenizer(["ONE ONA"], "char")
    other = train_tokenizer(["ONE ONA BCD"], "char")  # E, N and O get other ids
    unsure = FixedOutput(char, {"E": 0.0, "A": -1.0})  # "ONE", by a log-probability of 1.0
    sure = FixedOutput(other, {"E": -1.5, "A": 0.0})  # "ONA", by 1.5: it outweighs one such model, not two
    waveforms, lengths = torch.zeros(2, 100), torch.tensor([100, 100])
    assert EnsembleSearch([unsure], options=BEAM)(waveforms, lengths) == ["ONE", "ONE"]
    assert EnsembleSearch([unsure, sure], options=BEAM)(waveforms, lengths) == ["ONA", "ONA"]
    assert EnsembleSearch([unsure, unsure, sure], options=BEAM)(waveforms, lengths) == ["ONE", "ONE"]
    # at other speeds, the audio is resampled: 10 % slower is 10/9 as long
    EnsembleSearch([sure], options=BEAM, speeds=[0.9, 1.0, 1.25])(waveforms[:1, :90], torch.tensor([90]))
    assert sure.heard[-3:] == [(100, [100]), (90, [90]), (72, [72])]
    # with a lexicon, every member keeps to its words: "ONA" is not one of them
    lexicon = tmp_path / "words.txt"
    lexicon.write_text("ONE\n")
    with_lexicon = DecodingOptions(beam=4, lexicon=str(lexicon))
    assert EnsembleSearch([unsure, sure], options=with_lexicon)(waveforms, lengths) == ["ONE", "ONE"]
    # an LM that has heard "ONE" far more often outweighs the acoustic preference for "ONA"
    lm = tmp_path / "lm.arpa"
    lm.write_text(NGramModel([["ONE"]] * 20 + [["ONA"]], order=2).arpa())
    assert EnsembleSearch([unsure, sure], options=DecodingOptions(beam=4, lm=str(lm), lm_weight=0.1))(
        waveforms, lengths) == ["ONA", "ONA"]
    assert EnsembleSearch([unsure, sure], options=DecodingOptions(beam=4, lm=str(lm), lm_weight=2.0))(
        waveforms, lengths) == ["ONE", "ONE"]
    with pytest.raises(TasrError, match="needs --beam N"):
        EnsembleSearch([unsure, sure], options=DecodingOptions())
    binary = tmp_path / "lm.bin"
    binary.write_bytes(KENLM_MAGIC + b"\0" * 16)
    with pytest.raises(TasrError, match="an ensemble needs the LM as an ARPA file"):
        EnsembleSearch([unsure, sure], options=DecodingOptions(beam=4, lm=str(binary), lexicon=str(lexicon)))
    with pytest.raises(TasrError, match="same sample rate"):
        EnsembleSearch([unsure, FixedOutput(char, {"E": 0.0}, sample_rate=8000)], options=BEAM)


@needs_fsdd
def test_decode_command_with_two_models(tmp_path, capsys):
    torch.manual_seed(0)
    SpeechRecognizer(CONFIG, train_tokenizer(WORDS, "char")).save(tmp_path / "char.pt")
    SpeechRecognizer(CONFIG, train_tokenizer(WORDS, "bpe", vocab_size=30)).save(tmp_path / "bpe.pt")
    manifest = write_manifest(tmp_path, NAMES)
    models = ["--model", str(tmp_path / "char.pt"), "--model", str(tmp_path / "bpe.pt")]
    out = tmp_path / "ensemble"
    assert main(["decode", *models, "--beam", "3", "--manifest", str(manifest), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["search"] == "beam 3 + ensemble of 2" and summary["utterances"] == len(NAMES)
    assert summary["model"] == [str(tmp_path / "char.pt"), str(tmp_path / "bpe.pt")]
    assert [line.split(" ")[0] for line in (out / "hyp.txt").read_text().splitlines()] == NAMES
    assert main(["decode", *models, "--manifest", str(manifest), "--out", str(tmp_path / "greedy")]) == 2
    assert "needs --beam N" in capsys.readouterr().err
    # one model at three speeds
    out = tmp_path / "speeds"
    assert main(["decode", *models[2:], "--speeds", "0.9,1,1.1", "--beam", "3", "--manifest", str(manifest),
                 "--out", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["search"] == "beam 3 + speeds 0.9,1,1.1"
    for bad in ["0,1", "fast"]:
        with pytest.raises(SystemExit):
            main(["decode", *models[2:], "--speeds", bad, "--beam", "3", "--manifest", str(manifest), "--out", str(out)])
        assert "--speeds" in capsys.readouterr().err
