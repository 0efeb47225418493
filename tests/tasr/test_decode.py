import json
from pathlib import Path

import pytest
import soundfile
import torch

from tasr import audio
import corpora
from tasr.models.ctc import ctc_loss
from tasr.cli import main
from tasr.decoding import arpa_words
from tasr.scoring import error_report, score
from tasr.model import SpeechRecognizer
from tasr.text import load_tokenizer, train_tokenizer

FSDD = corpora.fsdd.root / "recordings"
WORDS = "zero one two three four five six seven eight nine".split()
NAMES = ["0_george_0", "3_jackson_1", "5_lucas_2", "7_nicolas_3"]
CONFIG = {
    "sample_rate": 8000,
    "fbank": {"num_mel_bins": 40},
    "encoder": {"block": "conformer", "d_model": 64, "n_heads": 4, "n_layers": 2, "ff_dim": 128, "left": 8,
                "right": 2, "dropout": 0.0, "subsampling_channels": 16},
}

needs_fsdd = pytest.mark.usefixtures("fsdd_root")


def write_manifest(folder: Path, names, broken=False) -> Path:
    lines = []
    for name in names:
        path = FSDD / f"{name}.wav"
        lines.append({"id": name, "audio": str(path), "duration": soundfile.info(path).duration,
                      "text": WORDS[int(name[0])]})
    if broken:
        (folder / "broken.wav").write_bytes(b"RIFF....WAVEnot really")
        lines.append({"id": "broken_utt", "audio": "broken.wav", "duration": 0.5, "text": "five"})
    manifest = folder / "test.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return manifest


def test_score_and_error_report_count_edits():
    refs, hyps = ["seven eight nine", "one two"], ["seven ate nine nine", "one"]
    result = score(refs, hyps)
    assert (result["substitutions"], result["deletions"], result["insertions"], result["hits"]) == (1, 1, 1, 3)
    assert result["wer"] == pytest.approx(3 / 5) and result["words"] == 5
    assert result["sentence_error_rate"] == 1.0
    assert score(["abc"], ["abc"])["cer"] == 0.0 and score(["abcd"], ["abxd"])["cer"] == pytest.approx(0.25)
    report = error_report(["u1", "u2"], refs, hyps)
    assert "u1 WER 66.7% (S=1 D=0 I=1, 3 words)" in report
    assert "REF: one two" in report and "HYP: one ***" in report


def test_score_normalizes_references_and_hypotheses_alike():
    refs, hyps = [" Seven\u00a0 EIGHT\tnine "], ["seven eight nine"]  # NFKC, spaces, case
    assert score(refs, hyps, lowercase=True)["wer"] == 0.0 and score(hyps, refs, lowercase=True)["cer"] == 0.0
    assert score(refs, hyps)["substitutions"] == 2  # case counts unless the tokenizer lower-cases
    assert "REF: seven eight nine" in error_report(["u"], refs, hyps, lowercase=True)


def test_arpa_words(tmp_path):
    (tmp_path / "lm.arpa").write_text("\\data\\\nngram 1=4\n\n\\1-grams:\n-1\t<s>\t0\n-1\t</s>\n-1\tONE\t0\n-1\tTWO\n\n"
                                      "\\2-grams:\n-1\tONE TWO\n\\end\\\n")
    assert arpa_words(tmp_path / "lm.arpa") == ["ONE", "TWO"]


def test_tokenizer_command(tmp_path, capsys):
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps({"id": str(i), "audio": "x.wav", "duration": 1.0, "text": w.upper()}) + "\n"
                                for i, w in enumerate(WORDS)))
    assert main(["tokenizer", "--manifest", str(manifest), "--kind", "bpe", "--vocab-size", "30",
                 "--lowercase", "--out", str(tmp_path / "lang" / "bpe.json")]) == 0
    assert "bpe tokenizer with 30 tokens" in capsys.readouterr().out
    tokenizer = load_tokenizer(tmp_path / "lang" / "bpe.json")
    assert tokenizer.vocab_size == 30 and tokenizer.decode(tokenizer.encode("Seven Nine")) == "seven nine"
    assert main(["tokenizer", "--out", str(tmp_path / "x.json")]) == 2
    assert "--manifest or --text" in capsys.readouterr().err


@needs_fsdd
def test_decode_writes_hypotheses_errors_and_summary(tmp_path, capsys):
    tokenizer = train_tokenizer(WORDS, "char")
    torch.manual_seed(0)
    SpeechRecognizer(CONFIG, tokenizer).save(tmp_path / "model.pt")
    manifest = write_manifest(tmp_path, NAMES, broken=True)
    out = tmp_path / "decode"
    status = main(["decode", "--model", str(tmp_path / "model.pt"), "--manifest", str(manifest), "--out", str(out),
                   "--batch-size", "3"])
    printed = capsys.readouterr()
    assert status == 1  # an utterance was skipped
    assert "broken_utt" in printed.err and "WER" in printed.out and "1 unreadable" in printed.out
    hyp_lines = (out / "hyp.txt").read_text().splitlines()
    assert [line.split(" ")[0] for line in hyp_lines] == NAMES
    assert (out / "ref.txt").read_text().splitlines()[0] == "0_george_0 zero"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["utterances"] == 4 and summary["words"] == 4
    assert summary["substitutions"] + summary["deletions"] + summary["hits"] == 4
    assert summary["skipped"][0]["id"] == "broken_utt"
    assert summary["rtf"] > 0 and summary["search"] == "greedy"
    assert (out / "errors.txt").read_text().count("REF: ") == 4
    # beam search gives the same kind of output; --allow-skips turns the exit status to 0
    assert main(["decode", "--model", str(tmp_path / "model.pt"), "--manifest", str(manifest),
                 "--out", str(tmp_path / "beam"), "--beam", "4", "--allow-skips"]) == 0
    assert json.loads((tmp_path / "beam" / "summary.json").read_text())["search"] == "beam 4"
    # with a word LM (its words make the lexicon) every output word is one of the LM's words
    unigrams = "".join(f"-1.0\t{w}\t-0.1\n" for w in ["<s>", "</s>", "zero", "three", "five"])
    (tmp_path / "lm.arpa").write_text(f"\\data\\\nngram 1=5\nngram 2=1\n\n\\1-grams:\n{unigrams}\n"
                                      "\\2-grams:\n-0.5\tzero five\n\n\\end\\\n")
    assert main(["decode", "--model", str(tmp_path / "model.pt"), "--manifest", str(manifest),
                 "--out", str(tmp_path / "lm"), "--beam", "4", "--lm", str(tmp_path / "lm.arpa"), "--allow-skips"]) == 0
    words = " ".join(line.split(" ", 1)[1] for line in (tmp_path / "lm" / "hyp.txt").read_text().splitlines()
                     if " " in line).split()
    assert set(words) <= {"zero", "three", "five"}
    # a word list (one word per line, spelled with the model's tokens) restricts the output the same way
    (tmp_path / "words.txt").write_text("seven\nnine\n\n")
    assert main(["decode", "--model", str(tmp_path / "model.pt"), "--manifest", str(manifest),
                 "--out", str(tmp_path / "lex"), "--beam", "4", "--lexicon", str(tmp_path / "words.txt"),
                 "--allow-skips"]) == 0
    words = " ".join(line.split(" ", 1)[1] for line in (tmp_path / "lex" / "hyp.txt").read_text().splitlines()
                     if " " in line).split()
    assert words and set(words) <= {"seven", "nine"}
    assert json.loads((tmp_path / "lex" / "summary.json").read_text())["search"] == "beam 4 + lexicon"
    (tmp_path / "empty.txt").write_text("\n")
    assert main(["decode", "--model", str(tmp_path / "model.pt"), "--manifest", str(manifest),
                 "--out", str(tmp_path / "none"), "--beam", "4", "--lexicon", str(tmp_path / "empty.txt")]) == 2


def test_decode_bad_arguments(tmp_path, capsys):
    tokenizer = train_tokenizer(WORDS, "char")
    SpeechRecognizer(CONFIG, tokenizer).save(tmp_path / "model.pt")
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "a", "audio": "a.wav", "duration": 1, "text": "one"}) + "\n")
    common = ["decode", "--manifest", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "o")]
    assert main(common + ["--model", str(tmp_path / "nothing.pt")]) == 2
    assert "nothing.pt: model file not found" in capsys.readouterr().err
    assert main(common + ["--model", str(tmp_path / "model.pt"), "--lm", "x.arpa"]) == 2
    assert "--lm needs --beam" in capsys.readouterr().err
    assert main(common + ["--model", str(tmp_path / "model.pt"), "--beam", "2", "--lm", str(tmp_path / "x.arpa")]) == 2
    assert "no such file" in capsys.readouterr().err



def test_an_lm_file_that_is_no_language_model_is_named_as_such(tmp_path, capsys):
    SpeechRecognizer(CONFIG, train_tokenizer(WORDS, "char")).save(tmp_path / "model.pt")
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "a", "audio": "a.wav", "duration": 1, "text": "one"}) + "\n")
    (tmp_path / "plain.txt").write_text("one two three\n")
    (tmp_path / "lm.bin").write_bytes(b"mmap lm http://kheafield.com/code format version 5\n\0" + bytes(64))
    common = ["decode", "--model", str(tmp_path / "model.pt"), "--manifest", str(tmp_path / "m.jsonl"),
              "--out", str(tmp_path / "o"), "--beam", "2", "--lm"]
    assert main(common + [str(tmp_path / "plain.txt")]) == 2
    assert (f"--lm {tmp_path / 'plain.txt'}: not a language model (neither an ARPA file, which has a \\data\\ "
            "section, nor a binary KenLM model)") in capsys.readouterr().err
    assert main(common + [str(tmp_path / "lm.bin")]) == 2
    assert "lm.bin is a binary KenLM model: give its words with --lexicon" in capsys.readouterr().err


def test_an_out_folder_that_cannot_be_written_is_an_error_naming_it(tmp_path, capsys, monkeypatch):
    import errno
    import os

    SpeechRecognizer(CONFIG, train_tokenizer(WORDS, "char")).save(tmp_path / "model.pt")
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "a", "audio": "gone.wav", "duration": 1, "text": "one"}) + "\n")
    (tmp_path / "afile").write_text("")
    common = ["decode", "--model", str(tmp_path / "model.pt"), "--manifest", str(tmp_path / "m.jsonl"), "--out"]
    assert main(common + [str(tmp_path / "afile")]) == 2  # before decoding
    assert capsys.readouterr().err == f"tasr decode: error: {tmp_path / 'afile'}: Not a directory\n"

    def no_space(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    assert main(common + [str(tmp_path / "o")]) == 2
    assert f"tasr decode: error: {tmp_path / 'o' / 'hyp.txt'}: No space left on device\n" in capsys.readouterr().err
    assert os.listdir(tmp_path / "o") == []


@pytest.mark.slow
@needs_fsdd
def test_encoder_and_ctc_overfit_a_few_digits():
    """A tiny Conformer-CTC learns three real recordings by heart (greedy output = transcripts)."""
    torch.manual_seed(0)
    names = ["0_george_0", "5_lucas_2", "9_yweweler_4"]
    waves = [audio.load(FSDD / f"{name}.wav", 8000) for name in names]
    texts = [WORDS[int(name[0])] for name in names]
    tokenizer = train_tokenizer(texts, "char")
    lengths = torch.tensor([len(w) for w in waves])
    waveforms = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)
    cmvn = audio.GlobalCMVN()
    cmvn.accumulate(*audio.Fbank(8000, num_mel_bins=40)(waveforms, lengths))
    model = SpeechRecognizer(CONFIG, tokenizer, cmvn)
    feats, frame_lengths = model.features(waveforms, lengths)
    targets = torch.nn.utils.rnn.pad_sequence([torch.tensor(tokenizer.encode(t)) for t in texts], batch_first=True)
    target_lengths = torch.tensor([len(tokenizer.encode(t)) for t in texts])
    optimizer = torch.optim.AdamW(model.parameters(), 3e-3)
    hyps = []
    for step in range(200):
        model.train()
        log_probs, out_lengths = model.encode_features(feats, frame_lengths)
        loss = ctc_loss(log_probs, out_lengths, targets, target_lengths)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 10 == 9:
            model.eval()
            with torch.no_grad():
                hyps = [tokenizer.decode(ids) for ids in model.decode(*model.encode_features(feats, frame_lengths))]
            if hyps == texts:
                break
    assert hyps == texts, f"after {step + 1} steps (loss {loss.item():.3f}): {hyps}"


@pytest.mark.parametrize("field, value, reason", [
    ("duration", float("inf"), '"duration" must be > 0 and at most 604800 s (a week), not inf'),
    ("duration", 1e300, '"duration" must be > 0 and at most 604800 s (a week), not 1e+300'),
    ("text", None, '"text" must be a string, not null'),
    ("audio", 5, '"audio" must be a path (a non-empty string), not 5'),
])
def test_decode_refuses_manifest_values_of_the_wrong_type(tmp_path, capsys, field, value, reason):
    SpeechRecognizer(CONFIG, train_tokenizer(WORDS, "char")).save(tmp_path / "model.pt")
    (tmp_path / "a.wav").write_bytes(b"")
    line = {"id": "a", "audio": "a.wav", "duration": 1.0, "text": "one", field: value}
    (tmp_path / "m.jsonl").write_text(json.dumps(line) + "\n")
    assert main(["decode", "--model", str(tmp_path / "model.pt"), "--manifest", str(tmp_path / "m.jsonl"),
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"manifest {tmp_path / 'm.jsonl'}, line 1: utterance 'a': {reason}" in err
    assert not (tmp_path / "o" / "summary.json").exists()


def test_decode_refuses_a_manifest_that_is_not_utf8(tmp_path, capsys):
    SpeechRecognizer(CONFIG, train_tokenizer(WORDS, "char")).save(tmp_path / "model.pt")
    (tmp_path / "m.jsonl").write_bytes(b'{"id": "a", "audio": "a.wav", "duration": 1.0, "text": "caf\xe9"}\n')
    assert main(["decode", "--model", str(tmp_path / "model.pt"), "--manifest", str(tmp_path / "m.jsonl"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "line 1: not UTF-8 text (byte 0xe9 at position 60)" in capsys.readouterr().err
