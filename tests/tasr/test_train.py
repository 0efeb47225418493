"""`tasr train`, `tasr average` and `tasr cmvn` on a handful of real FSDD recordings (tiny models, CPU).

What must hold: a tiny model overfits a few utterances to CER 0; a run stopped and resumed ends
with exactly the parameters of an uninterrupted one; two DDP processes (torchrun, gloo) end with
the parameters of one process with the same global batch; bad audio is skipped and reported.
"""

import csv
import inspect
import json
import os
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

import pytest
import soundfile
import torch
import yaml

import corpora
from model_helpers import TINY_ENCODER
from tasr import data
from tasr.cli import main
from tasr.errors import TasrError
from tasr.models.ctc import ctc_loss
from tasr.models.encoder import Encoder
from tasr.model import SpeechRecognizer
from tasr.training.checkpoints import load_checkpoint, save_checkpoint
from tasr.training.config import DEFAULTS, check_config, load_config
from tasr.training.log import TrainLog
from tasr.training.loop import Trainer
from tasr.training.optim import learning_rate
from tasr.training.rng import rng_state, seed_everything, set_rng_state

REPO = Path(__file__).resolve().parents[2]
FSDD = corpora.fsdd.root / "recordings"
WORDS = "zero one two three four five six seven eight nine".split()

pytestmark = [pytest.mark.usefixtures("fsdd_root"),
              pytest.mark.usefixtures("one_thread")]

TINY = {
    "model": {"sample_rate": 8000,
              "encoder": {**TINY_ENCODER, "left": 4}},
    "optim": {"lr": 3e-3, "warmup_steps": 3, "decay": "cosine"},
    "batching": {"max_frames": 250, "num_workers": 0},
    "epochs": 3,
    "log_interval": 2,
}


def fsdd_manifest(path, speaker="george", indices=(0,), digits=range(10), repeat=1):
    """A manifest of FSDD recordings `{digit}_{speaker}_{index}.wav`, each listed `repeat` times."""
    lines = []
    for r in range(repeat):
        for index in indices:
            for digit in digits:
                audio = FSDD / f"{digit}_{speaker}_{index}.wav"
                lines.append(json.dumps({"id": f"{audio.stem}-{r}", "audio": str(audio),
                                         "duration": soundfile.info(audio).duration, "text": WORDS[digit]}))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_config(path, config, **changes):
    config = json.loads(json.dumps(config))
    for key, value in changes.items():
        section = config
        *parents, last = key.split("__")
        for parent in parents:
            section = section.setdefault(parent, {})
        section[last] = value
    path.write_text(yaml.safe_dump(config))
    return path


def run_train(*args):
    assert main(["train", *map(str, args)]) == 0


def latest_checkpoint(exp):
    return torch.load(sorted((Path(exp) / "checkpoints").glob("step-*.pt"))[-1], weights_only=True)


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].numel())


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One uninterrupted 3-epoch run (9 steps) that several tests compare against."""
    folder = tmp_path_factory.mktemp("small")
    manifest = fsdd_manifest(folder / "train.jsonl")
    config = write_config(folder / "tiny.yaml", TINY)
    run_train("--config", config, "--train", manifest, "--valid", manifest, "--exp-dir", folder / "exp")
    return folder


# ---------------------------------------------------------------- pieces

def test_config_defaults_file_and_overrides(tmp_path):
    path = write_config(tmp_path / "c.yaml", TINY)
    config = load_config(path, ["optim.lr=5e-4", "model.encoder.left=null", "speed_perturb=[0.9,1.0,1.1]"])
    assert config["optim"]["lr"] == 5e-4 and config["optim"]["warmup_steps"] == 3
    assert config["optim"]["betas"] == DEFAULTS["optim"]["betas"]
    assert config["model"]["encoder"]["left"] is None and config["model"]["encoder"]["right"] == 1
    assert config["speed_perturb"] == [0.9, 1.0, 1.1]
    with pytest.raises(TasrError, match="unknown setting optim.learning_rate"):
        load_config(path, ["optim.learning_rate=1"])
    with pytest.raises(TasrError, match="expected section.key=value"):
        load_config(path, ["optim.lr"])


def test_learning_rate_warms_up_then_decays():
    optim = {"lr": 1e-3, "warmup_steps": 10, "decay": "cosine", "min_lr": 1e-5}
    lrs = [learning_rate(step, optim, 100) for step in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] == pytest.approx(1e-5, rel=0.05)
    assert learning_rate(399, {**optim, "decay": "inverse_sqrt"}, 100) == pytest.approx(1e-3 * (10 / 400) ** 0.5)


def test_rng_states_survive_weights_only_checkpoints(tmp_path):
    import random

    import numpy as np

    seed_everything(5)
    save_checkpoint(tmp_path / "c.pt", {"model": {}, "step": 0, "rng": rng_state(torch.device("cpu"))})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(6)
    set_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"], torch.device("cpu"))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_broken_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "step-00000001.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(TasrError, match="step-00000001.pt: not a readable tasr checkpoint"):
        load_checkpoint(tmp_path / "step-00000001.pt")


def test_a_checkpoint_holding_code_is_refused_without_torchs_advice(tmp_path):
    import argparse  # any class that is not a plain value or tensor

    torch.save({"model": {}, "step": 1, "payload": argparse.Namespace()}, tmp_path / "step-00000001.pt")
    with pytest.raises(TasrError) as error:
        load_checkpoint(tmp_path / "step-00000001.pt")
    assert "step-00000001.pt: not a tasr checkpoint" in str(error.value)
    assert "weights_only" not in str(error.value)


@pytest.mark.parametrize("override, message", [
    ("optim.lr=abc", "optim.lr must be a positive number, got 'abc'"),
    ("optim.lr=0", "optim.lr must be a positive number, got 0"),
    ("batching.max_frames=abc", "batching.max_frames must be a whole number >= 1, got 'abc'"),
    ("epochs=-1", "epochs must be a whole number >= 0 or null, got -1"),
    ("epochs=abc", "epochs must be a whole number >= 0 or null, got 'abc'"),
    ("max_steps=1.5", "max_steps must be a whole number >= 0 or null, got 1.5"),
    ("log_interval=x", "log_interval must be a whole number >= 1, got 'x'"),
    ("optim.warmup_steps=abc", "optim.warmup_steps must be a whole number >= 0, got 'abc'"),
    ("optim.betas=0.9", "optim.betas must be two numbers from 0 to below 1, e.g. [0.9, 0.98], got 0.9"),
    ("optim.betas=[0.9,x]", "optim.betas must be two numbers from 0 to below 1"),
    ("grad_clip=abc", "grad_clip must be a positive number or null, got 'abc'"),
    ("speed_perturb=abc", "speed_perturb must be null or a list of positive factors"),
    ("speed_perturb=[0.9,x]", "speed_perturb must be null or a list of positive factors"),
    ("batching.num_workers=-1", "batching.num_workers must be a whole number >= 0, got -1"),
    ("model.encoder.d_model=abc", "model.encoder.d_model must be a whole number >= 0, got 'abc'"),
    ("model.encoder.dropout=abc", "model.encoder.dropout must be a number, got 'abc'"),
    ("model.fbank.num_mel_bins=abc", "model.fbank.num_mel_bins must be a whole number >= 0, got 'abc'"),
    ("model.specaugment.num_time_masks=x", "model.specaugment.num_time_masks must be a whole number >= 0"),
    ("optim=5", "optim must be a mapping of settings, got 5"),
    ("precision=fp16", "precision must be one of bf16, fp32, got 'fp16'"),
    ("tokenizer.vocab_size=abc", "tokenizer.vocab_size must be a whole number >= 1, got 'abc'"),
    ("inter_ctc.layers=3", "inter_ctc.layers must be a list of block numbers (1 = the first block), e.g. [3], got 3"),
    ("inter_ctc.layers=[0]", "inter_ctc.layers must be a list of block numbers"),
    ("inter_ctc.weight=1", "inter_ctc.weight must be a number from 0 to below 1, got 1"),
    ("narrowband.prob=1.5", "narrowband.prob must be a number from 0 to 1, got 1.5"),
    ("narrowband.rate=0", "narrowband.rate must be a whole number >= 1, got 0"),
    ("gain_db=6", "gain_db must be null or [low, high] in dB with low <= high, e.g. [-20, 6], got 6"),
    ("gain_db=[6,-20]", "gain_db must be null or [low, high] in dB with low <= high"),
    ("noise.prob=-0.1", "noise.prob must be a number from 0 to 1, got -0.1"),
    ("noise.snr_db=null", "noise.snr_db must be [low, high] in dB with low <= high, e.g. [10, 40], got null"),
])
def test_config_values_of_the_wrong_type_are_named(override, message):
    with pytest.raises(TasrError) as error:
        check_config(load_config(None, [override]))
    assert str(error.value).startswith(f"config: {message}")


def test_a_probability_of_one_is_accepted():
    check_config(load_config(None, ["noise.prob=1", "narrowband.prob=1.0"]))


def test_whole_numbers_written_as_floats_become_ints():
    config = load_config(None, ["batching.max_frames=2e4", "epochs=3.0", "model.encoder.d_model=64.0"])
    check_config(config)
    assert config["batching"]["max_frames"] == 20000 and config["epochs"] == 3
    assert all(isinstance(v, int) for v in (config["batching"]["max_frames"], config["epochs"],
                                            config["model"]["encoder"]["d_model"]))


def test_a_bad_config_value_stops_train_and_cmvn_before_any_work(tmp_path, capsys):
    manifest = fsdd_manifest(tmp_path / "train.jsonl", digits=range(2))
    config = write_config(tmp_path / "c.yaml", TINY)
    assert main(["train", "--config", str(config), "--train", str(manifest), "--valid", str(manifest),
                 "--exp-dir", str(tmp_path / "exp"), "optim.lr=abc"]) == 2
    assert "tasr train: error: config: optim.lr must be a positive number, got 'abc'" in capsys.readouterr().err
    assert not (tmp_path / "exp").exists()  # not even an empty checkpoints folder
    assert main(["cmvn", "--manifest", str(manifest), "--config", str(config), "--out", str(tmp_path / "c.json"),
                 "model.encoder.d_model=abc"]) == 2
    assert "config: model.encoder.d_model must be a whole number >= 0, got 'abc'" in capsys.readouterr().err
    assert not (tmp_path / "c.json").exists()


def test_intermediate_ctc_mixes_the_losses_and_needs_blocks_that_exist(tmp_path, capsys):
    """The objective is (1 - w) CTC(final) + w * mean of CTC(intermediate blocks), summed over the batch."""
    manifest = fsdd_manifest(tmp_path / "train.jsonl", digits=range(3))
    config = write_config(tmp_path / "c.yaml", TINY, model__encoder={**TINY["model"]["encoder"], "n_layers": 3},
                          inter_ctc={"layers": [1, 2], "weight": 0.4}, epochs=1)
    run_train("--config", config, "--train", manifest, "--valid", manifest, "--exp-dir", tmp_path / "exp")
    model = SpeechRecognizer.load(tmp_path / "exp" / "model.pt").train()
    model.specaugment = None
    items = [json.loads(line) for line in manifest.read_text().splitlines()]
    wave = torch.from_numpy(soundfile.read(items[0]["audio"], dtype="float32")[0])
    tokens = torch.tensor([model.tokenizer.encode(items[0]["text"])])
    batch = data.Batch(wave[None], torch.tensor([wave.numel()]), tokens, torch.tensor([tokens.shape[1]]))
    trainer = SimpleNamespace(config={"inter_ctc": {"layers": [1, 2], "weight": 0.4}}, ddp=model,
                              _autocast=nullcontext)
    torch.manual_seed(0)
    got = Trainer._loss_sum(trainer, batch)
    torch.manual_seed(0)
    log_probs, lengths, inter = model(batch.waveforms, batch.lengths, (1, 2))

    def ctc(x):
        return ctc_loss(x, lengths, batch.tokens, batch.token_lengths, reduction="sum")
    torch.testing.assert_close(got, 0.6 * ctc(log_probs) + 0.4 * (ctc(inter[0]) + ctc(inter[1])) / 2)
    assert main(["train", "--config", str(config), "--train", str(manifest), "--valid", str(manifest),
                 "--exp-dir", str(tmp_path / "exp2"), "inter_ctc.layers=[3]"]) == 2
    assert "config: inter_ctc.layers must be block numbers from 1 to 2 (the model has 3 blocks), got [3]" in \
        capsys.readouterr().err


def test_narrowband_training_needs_a_rate_below_the_models(tmp_path, capsys):
    manifest = fsdd_manifest(tmp_path / "train.jsonl", digits=range(2))
    config = write_config(tmp_path / "c.yaml", TINY, epochs=1, narrowband={"prob": 0.5, "rate": 4000})
    run_train("--config", config, "--train", manifest, "--valid", manifest, "--exp-dir", tmp_path / "exp")
    assert (tmp_path / "exp" / "model.pt").exists()
    rate = SpeechRecognizer.load(tmp_path / "exp" / "model.pt").sample_rate
    assert main(["train", "--config", str(config), "--train", str(manifest), "--valid", str(manifest),
                 "--exp-dir", str(tmp_path / "exp2"), f"narrowband.rate={rate}"]) == 2
    assert f"config: narrowband.rate must be below the model's sample rate {rate} Hz, got {rate}" in \
        capsys.readouterr().err


@pytest.mark.parametrize("path", sorted(REPO.glob("recipes/*/conf/*.yaml")), ids=lambda p: f"{p.parts[-3]}/{p.name}")
def test_every_recipe_config_is_valid(path):
    config = load_config(path)
    check_config(config)
    layers = config["model"].get("encoder", {}).get("n_layers", inspect.signature(Encoder).parameters["n_layers"].default)
    assert all(i < layers for i in config["inter_ctc"]["layers"])


def test_a_torn_last_row_of_the_log_is_dropped_on_resume(tmp_path):
    def steps():
        with open(tmp_path / "train_log.csv", newline="") as f:
            return [r["step"] for r in csv.DictReader(f)]

    log = TrainLog(tmp_path, None)
    for step in (2, 4, 6):
        log.add(epoch=1, step=step, split="train", loss=1.0 / step, lr=1e-3)
    for torn in ("1700000000.0,1,", "1700000000.0,1,6,train,0.1"):  # killed while a row was written
        with open(tmp_path / "train_log.csv", "a") as f:
            f.write(torn)
        TrainLog(tmp_path, 6)
        assert steps() == ["2", "4", "6"]
    TrainLog(tmp_path, 4).add(epoch=1, step=6, split="train", loss=0.5, lr=1e-3)
    assert steps() == ["2", "4", "6"]


# ---------------------------------------------------------------- what the issue asks

@pytest.mark.slow
def test_tiny_model_overfits_a_few_utterances_to_cer_zero(tmp_path):
    manifest = valid = fsdd_manifest(tmp_path / "train.jsonl", speaker="jackson", digits=range(8))
    config = write_config(tmp_path / "c.yaml", TINY, model__encoder={
        "block": "transformer", "d_model": 64, "n_heads": 2, "n_layers": 2, "ff_dim": 128,
        "subsampling_channels": 16, "left": 8, "right": 2, "dropout": 0.0},
        optim={"lr": 3e-3, "warmup_steps": 10, "decay": "constant"}, batching__max_frames=2000, epochs=60,
        keep_last=1)
    run_train("--config", config, "--train", manifest, "--valid", valid, "--exp-dir", tmp_path / "exp")

    model = SpeechRecognizer.load(tmp_path / "exp" / "model.pt")
    items = [json.loads(line) for line in valid.read_text().splitlines()]
    waves = [torch.from_numpy(soundfile.read(item["audio"], dtype="float32")[0]) for item in items]
    lengths = torch.tensor([w.numel() for w in waves])
    padded = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)
    assert model.transcribe_batch(padded, lengths) == [item["text"] for item in items]

    with open(tmp_path / "exp" / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    valid_rows = [r for r in rows if r["split"] == "valid"]
    assert float(valid_rows[-1]["cer"]) == 0.0 and float(valid_rows[0]["cer"]) > 0.5
    assert (tmp_path / "exp" / "train_curves.png").stat().st_size > 10_000
    assert len(list((tmp_path / "exp" / "checkpoints").glob("step-*.pt"))) <= 2  # keep_last 1 + the best


def test_resume_continues_exactly(small_run, tmp_path):
    """Stop after 5 steps (mid-epoch 2), resume: the same parameters and optimizer state as 9 straight steps.

    Speed perturbation, SpecAugment and dropout are on, so every RNG has to be restored too."""
    manifest = small_run / "train.jsonl"
    config = write_config(tmp_path / "c.yaml", TINY, speed_perturb=[0.9, 1.0, 1.1], model__ctc_dropout=0.1,
                          model__specaugment={"num_freq_masks": 1, "freq_mask_width": 8, "num_time_masks": 1,
                                              "time_mask_width": 5})
    common = ["--config", config, "--train", manifest, "--valid", manifest]
    run_train(*common, "--exp-dir", tmp_path / "straight")
    run_train(*common, "--exp-dir", tmp_path / "resumed", "--stop-after", 5)
    stopped = latest_checkpoint(tmp_path / "resumed")
    assert (stopped["step"], stopped["epoch"], stopped["position"]) == (5, 1, 2)
    assert not (tmp_path / "resumed" / "model.pt").exists()
    run_train(*common, "--exp-dir", tmp_path / "resumed", "--resume")

    a, b = latest_checkpoint(tmp_path / "straight"), latest_checkpoint(tmp_path / "resumed")
    assert a["step"] == b["step"] == 9
    assert max_difference(a["model"], b["model"]) <= 1e-6
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert max_difference(sa, sb) <= 1e-6
    # the log of the resumed run has each step once
    with open(tmp_path / "resumed" / "train_log.csv") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r["split"] == "train"]
    assert steps == sorted(set(steps))


def test_gradient_accumulation_counts_steps_not_batches(small_run, tmp_path):
    manifest = small_run / "train.jsonl"
    config = write_config(tmp_path / "c.yaml", TINY, epochs=2, batching__accumulation=2)
    run_train("--config", config, "--train", manifest, "--valid", manifest, "--exp-dir", tmp_path / "exp")
    last = latest_checkpoint(tmp_path / "exp")
    assert (last["step"], last["epoch"], last["position"]) == (4, 2, 0)  # 3 batches an epoch: steps of 2 + 1


def test_a_fresh_run_refuses_an_experiment_folder_with_checkpoints(small_run, capsys):
    manifest = small_run / "train.jsonl"
    code = main(["train", "--config", str(small_run / "tiny.yaml"), "--train", str(manifest), "--valid",
                 str(manifest), "--exp-dir", str(small_run / "exp")])
    assert code == 2 and "add --resume" in capsys.readouterr().err



def test_resume_from_into_a_new_folder_writes_its_files_and_refuses_other_text(small_run, tmp_path, capsys):
    last = sorted((small_run / "exp" / "checkpoints").glob("step-*.pt"))[-1]
    manifest = small_run / "train.jsonl"
    # a finished run continued into a new folder: the folder's files and model.pt, as a fresh run writes them
    run_train("--train", manifest, "--valid", manifest, "--exp-dir", tmp_path / "copy", "--resume-from", last)
    names = sorted(p.name for p in (tmp_path / "copy").iterdir())
    assert names == ["checkpoints", "cmvn.json", "config.yaml", "model.pt", "tokenizer.json", "train_curves.png",
                     "train_log.csv"]
    assert (tmp_path / "copy" / "tokenizer.json").read_text() == (small_run / "exp" / "tokenizer.json").read_text()
    assert json.loads((tmp_path / "copy" / "cmvn.json").read_text()) == json.loads(
        (small_run / "exp" / "cmvn.json").read_text())
    config = yaml.safe_load((tmp_path / "copy" / "config.yaml").read_text())
    assert config == latest_checkpoint(small_run / "exp")["config"]
    assert SpeechRecognizer.load(tmp_path / "copy" / "model.pt").info["steps"] == 9
    # text the checkpoint's tokenizer cannot spell (upper case: every character <unk>) is refused
    upper = tmp_path / "upper.jsonl"
    upper.write_text("".join(json.dumps({**item, "text": item["text"].upper()}) + "\n" for item in
                             map(json.loads, manifest.read_text().splitlines())))
    args = ["train", "--train", str(upper), "--valid", str(upper), "--exp-dir", str(tmp_path / "other"),
            "--resume-from", str(last), "epochs=4"]
    assert main(args) == 2
    assert (f"100.0% of the training tokens are <unk> with the tokenizer of checkpoint {last}: it was made for "
            "other text. Use a tokenizer of this data, or raise --max-unk-rate (now 0.01)") in capsys.readouterr().err
    assert not (tmp_path / "other").exists()
    # the same check for a tokenizer given to a fresh run; --max-unk-rate lets it through
    fresh = ["train", "--config", str(small_run / "tiny.yaml"), "--train", str(upper), "--valid", str(upper),
             "--tokenizer", str(small_run / "exp" / "tokenizer.json"), "--exp-dir", str(tmp_path / "fresh"), "epochs=1"]
    assert main(fresh) == 2
    given = small_run / "exp" / "tokenizer.json"
    assert f"with tokenizer {given}: it was made for other text" in capsys.readouterr().err
    assert main(fresh + ["--max-unk-rate", "1"]) == 0
    assert "note: 100.00% of the training tokens are <unk>" in capsys.readouterr().err


def test_an_exp_dir_that_cannot_be_written_or_a_full_disk_is_an_error_naming_it(small_run, tmp_path, capsys,
                                                                                monkeypatch):
    import errno

    manifest = small_run / "train.jsonl"
    (tmp_path / "afile").write_text("")
    args = ["train", "--config", str(small_run / "tiny.yaml"), "--train", str(manifest), "--valid", str(manifest)]
    assert main(args + ["--exp-dir", str(tmp_path / "afile" / "exp")]) == 2
    assert f"tasr train: error: {tmp_path / 'afile' / 'exp'}: Not a directory" in capsys.readouterr().err

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", no_space)  # the disk fills up as the first checkpoint is written
    assert main(args + ["--exp-dir", str(tmp_path / "full")]) == 2
    checkpoint = tmp_path / "full" / "checkpoints" / "step-00000003.pt"
    assert f"tasr train: error: {checkpoint}: No space left on device\n" in capsys.readouterr().err
    assert not (tmp_path / "full" / "checkpoints").exists()  # no empty folder left behind


@pytest.mark.slow
def test_ddp_two_processes_match_one(small_run, tmp_path):
    """torchrun --nproc_per_node 2 (gloo): each process takes half of every global batch."""
    manifest = small_run / "train.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "tasr", "train", "--config", str(small_run / "tiny.yaml"), "--train", str(manifest),
               "--valid", str(manifest), "--exp-dir", str(tmp_path / "ddp"), "--device", "cpu"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es) on cpu" in result.stderr

    one, two = latest_checkpoint(small_run / "exp"), latest_checkpoint(tmp_path / "ddp")
    assert one["step"] == two["step"] == 9 and two["world_size"] == 2
    assert max_difference(one["model"], two["model"]) < 1e-4  # the same sums, added in another order
    assert len(two["rng"]) == 2  # each process's random state, for an exact resume
    assert SpeechRecognizer.load(tmp_path / "ddp" / "model.pt").num_parameters > 0


def test_bad_audio_is_skipped_and_reported_or_stops_the_run(tmp_path, capsys):
    manifest = fsdd_manifest(tmp_path / "train.jsonl", digits=range(6))
    (tmp_path / "junk.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 20)
    with open(manifest, "a") as f:
        f.write(json.dumps({"id": "junk", "audio": "junk.wav", "duration": 0.5, "text": "one"}) + "\n")
        f.write(json.dumps({"id": "gone", "audio": "gone.wav", "duration": 0.5, "text": "two"}) + "\n")
    config = write_config(tmp_path / "c.yaml", TINY, epochs=1)
    args = ["--config", config, "--train", manifest, "--valid", manifest]
    run_train(*args, "--exp-dir", tmp_path / "skip")
    err = capsys.readouterr().err
    assert "skipping train utterance junk: cannot read" in err and "skipping train utterance gone" in err
    assert "skipped utterances: train: missing audio file 1, train: unreadable audio 1, valid: missing" in err
    skipped = (tmp_path / "skip" / "skipped.tsv").read_text().splitlines()
    assert sorted(line.split("\t")[:2] for line in skipped) == [
        ["train", "gone"], ["train", "junk"], ["valid", "gone"], ["valid", "junk"]]
    assert (tmp_path / "skip" / "model.pt").exists()

    code = main(["train", *map(str, args), "--exp-dir", str(tmp_path / "stop"), "--on-bad-audio", "stop"])
    assert code == 2
    assert "utterance gone: no such file" in capsys.readouterr().err


# ---------------------------------------------------------------- average and cmvn

def test_average_of_checkpoints_is_their_mean(small_run, tmp_path):
    paths = sorted((small_run / "exp" / "checkpoints").glob("step-*.pt"))[-2:]
    assert main(["average", *map(str, paths), "--out", str(tmp_path / "avg.pt")]) == 0
    model = SpeechRecognizer.load(tmp_path / "avg.pt")
    a, b = (torch.load(p, weights_only=True)["model"] for p in paths)
    name = "ctc.linear.weight"
    assert torch.allclose(model.state_dict()[name], (a[name] + b[name]) / 2, atol=1e-7)
    assert model.cmvn is not None and model.info["averaged"] == [p.name for p in paths]
    # chosen by validation loss from the experiment folder
    assert main(["average", "--exp-dir", str(small_run / "exp"), "--num", "2", "--out", str(tmp_path / "b.pt")]) == 0
    assert main(["average", "--out", str(tmp_path / "c.pt")]) == 2



def test_average_and_cmvn_outputs_that_cannot_be_written_are_errors_naming_them(small_run, tmp_path, capsys,
                                                                                monkeypatch):
    import errno

    (tmp_path / "folder").mkdir()
    assert main(["average", "--exp-dir", str(small_run / "exp"), "--num", "1", "--out", str(tmp_path / "folder")]) == 2
    assert f"tasr average: error: {tmp_path / 'folder'}: Is a directory\n" == capsys.readouterr().err

    def no_space(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    out = tmp_path / "cmvn.json"
    assert main(["cmvn", "--manifest", str(small_run / "train.jsonl"), "--config", str(small_run / "tiny.yaml"),
                 "--out", str(out), "--num-workers", "0"]) == 2
    assert capsys.readouterr().err.endswith(f"tasr cmvn: error: {out}: No space left on device\n")
    assert main(["average", "--exp-dir", str(small_run / "exp"), "--num", "1", "--out", str(tmp_path / "m.pt")]) == 2
    assert f"tasr average: error: {tmp_path / 'm.pt'}: No space left on device\n" == capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["folder"]


def test_cmvn_command_matches_what_train_computed(small_run, tmp_path):
    assert main(["cmvn", "--manifest", str(small_run / "train.jsonl"), "--config", str(small_run / "tiny.yaml"),
                 "--out", str(tmp_path / "cmvn.json"), "--num-workers", "0"]) == 0
    ours = json.loads((tmp_path / "cmvn.json").read_text())
    trains = json.loads((small_run / "exp" / "cmvn.json").read_text())
    assert ours["count"] == trains["count"] > 0
    assert max(abs(a - b) for a, b in zip(ours["sum"], trains["sum"])) < 1e-6 * max(map(abs, ours["sum"]))
    # a config override, as for tasr train: each utterance's own mean taken out leaves a global mean near 0
    assert main(["cmvn", "--manifest", str(small_run / "train.jsonl"), "--config", str(small_run / "tiny.yaml"),
                 "--out", str(tmp_path / "no_mean.json"), "--num-workers", "0", "model.fbank.subtract_mean=true"]) == 0
    no_mean = json.loads((tmp_path / "no_mean.json").read_text())
    assert no_mean["count"] == ours["count"]
    assert max(map(abs, no_mean["sum"])) < 1e-3 * max(map(abs, ours["sum"]))


# ---------------------------------------------------------------- tasr bench train

def test_bench_contexts_and_one_measurement():
    from tasr.bench import train as bench_train

    assert bench_train.parse_context("16,2") == (16, 2)
    assert bench_train.parse_context("none") == (None, None) == bench_train.parse_context("full")
    assert bench_train.parse_context("none,4") == (None, 4)
    with pytest.raises(TasrError, match="LEFT,RIGHT"):
        bench_train.parse_context("16")
    job = {"config": {"model": TINY["model"]}, "context": [4, 1], "seconds": 1.0, "batch": 1, "steps": 1,
           "device": "cpu", "threads": 1, "bf16": False}
    figures = bench_train.measure(job)
    assert figures["frames_per_s"] > 0 and figures["peak_rss_mib"] > figures["step_rss_mib"] >= 0
    assert figures["parameters"] > 0 and figures["backend"] in ("dense", "chunked", "flex")
    assert figures["loss"] == figures["loss"] and figures["loss"] > 0  # finite CTC loss


@pytest.mark.parametrize("field, value, reason", [
    ("text", None, '"text" must be a string, not null'),
    ("duration", float("inf"), '"duration" must be > 0 and at most 604800 s (a week), not inf'),
])
def test_manifest_values_of_the_wrong_type_stop_before_training(tmp_path, capsys, field, value, reason):
    manifest = fsdd_manifest(tmp_path / "train.jsonl", digits=range(2))
    with open(manifest, "a") as f:
        f.write(json.dumps({"id": "bad", "audio": "x.wav", "duration": 0.5, "text": "one", field: value}) + "\n")
    config = write_config(tmp_path / "c.yaml", TINY, epochs=1)
    code = main(["train", "--config", str(config), "--train", str(manifest), "--valid", str(manifest),
                 "--exp-dir", str(tmp_path / "exp")])
    assert code == 2 and f"manifest {manifest}, line 3: utterance 'bad': {reason}" in capsys.readouterr().err
