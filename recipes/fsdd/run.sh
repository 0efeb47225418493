#!/usr/bin/env bash
# FSDD connected digits: real human speech, trained on four speakers (and AN4's digit strings), tested on a fifth.
#   ./run.sh                                     # downloads FSDD from GitHub
#   FSDD_ROOT=../../../shared/data/fsdd AN4_ROOT=../../../shared/data/an4 ./run.sh
#                                                # or --corpus-dir DIR, --an4-dir DIR: existing copies
# Stages are described in ../README.md; see README.md here for run times and results.
usage="usage: $0 [--stage N] [--stop-stage M] [--corpus-dir DIR] [--config FILE] [--exp-dir DIR] [--nj N] [--ngpu N] ..."
. "$(dirname "$0")/../tools/recipe.sh"
cd "$(dirname "$0")"

stage=0
stop_stage=100
nj=2                                # DataLoader workers and parallel jobs
ngpu=0                              # >1: training through torchrun, one process per GPU
nproc=1                             # on a CPU: training processes (torchrun, gloo), one compute thread each; on 2 cores
                                    # 2 train 1.3-1.6x faster than one, not better (README; a partner model forces 1)
config=conf/conformer_ctc.yaml
exp_dir=exp                         # the final model is $exp_dir/model.pt
data_dir=data
download_dir=downloads
url=""                              # FSDD archive to download (default: the GitHub release, see local/download.py)
corpus_dir=$(absolute "${FSDD_ROOT:-}")  # an existing FSDD copy (holding recordings/): no download
train_speakers=george,jackson,lucas,nicolas
test_speakers=yweweler              # never heard in training
num_train=6000                      # connected-digit utterances built from the training speakers
num_dev=300                         # from the training speakers' held-out recordings (index 0-4)
num_test=500                        # from the test speakers (all their recordings)
num_isolated=500                    # single digits of the test speakers with no pause around them, as FSDD's files are
min_digits=1                        # digits per utterance: min_digits..max_digits
max_digits=7
espeak_num=1500                     # extra training utterances spoken by espeak-ng voices (0: none)
perturb=0.15                        # per-digit speed/pitch change in training utterances (+-)
trim=0.8                            # probability of cutting a training digit's quiet start/end at a random level
trim_db=6-30                        # range of the trim levels, dB under the digit's loudest 10 ms frame
bare=0.2                            # probability of a training utterance without pauses before and after its digits
an4=digits                          # digits: AN4's training utterances that say nothing but digit words (137, 69 other
                                    # speakers; resampled to 8 kHz by the loader), an4_repeat times each, join the
                                    # training utterances; true: all 948 (letters, digits, words); false: no AN4
an4_repeat=4                        # copies of each AN4 digit utterance with an4=digits
an4_dir=$(absolute "${AN4_ROOT:-}") # an existing AN4 copy; empty: stage 0 downloads it into $download_dir/an4
tilt=0                              # random spectral tilt of training utterances (first-order filter coefficient, e.g. 0.7; 0: none)
seed=1                              # training seed: model, training-data draw and augmentation
test_seed=3                         # draw of the test sets (isolated: test_seed + 1), the same for every training seed
cmvn_utterances=2000                # utterances (random) for the CMVN statistics; 0: all
average_num=2                       # model.pt = average of the N best checkpoints (validation loss); 0: keep train's
beam_size=10                        # beam width of the beam-search decode (greedy is always run; 0: greedy only)
speeds=0.9,0.95,1,1.05,1.1          # stage 6 also decodes with model.pt hearing the audio at each of these
                                    # speeds, the results combined (tasr decode --speeds; empty: not)
partner=""                          # config overrides of a second model trained beside the first in $exp_dir/partner,
                                    # e.g. model.fbank.subtract_mean=true; stage 6 also decodes both together (empty: none)
threads=1                           # torch threads per process (empty: torch's default)
device=auto
option_names="stage stop_stage nj ngpu nproc config exp_dir data_dir download_dir url corpus_dir train_speakers
  test_speakers an4 an4_repeat an4_dir num_train num_dev num_test num_isolated min_digits max_digits espeak_num perturb trim trim_db bare tilt seed test_seed
  cmvn_utterances average_num beam_size speeds partner device threads"
path_options="config exp_dir data_dir download_dir corpus_dir an4_dir"
parse_options "$@"
case "$an4" in true | false | digits) ;; *) echo "--an4 $an4: must be true, false or digits" >&2; exit 2 ;; esac

fsdd_folder() {  # the corpus folder (holding recordings/)
  if [ -n "$corpus_dir" ]; then echo "$corpus_dir"; return; fi
  local found
  found=$(ls -d "$download_dir"/unpacked/*/recordings 2>/dev/null | head -1)
  [ -n "$found" ] || { echo "no FSDD under $download_dir/unpacked: run stage 0" >&2; return 1; }
  dirname "$found"
}

corpus() {
  if [ -n "$corpus_dir" ]; then
    python local/download.py --check "$corpus_dir"
  else
    python local/download.py --download-dir "$download_dir" ${url:+--url "$url"}
  fi
  [ "$an4" != false ] || return 0
  if [ -n "$an4_dir" ]; then
    python ../an4/local/download.py --check "$an4_dir"
  else
    python ../an4/local/download.py --download-dir "$download_dir/an4"
  fi
}

train_manifest() {  # what stages 2-4 train on
  if [ "$an4" = false ]; then echo "$data_dir/train.jsonl"; else echo "$data_dir/train_an4.jsonl"; fi
}

an4_utterances() {  # AN4's training set in lower case (as FSDD's words are; an4=digits: its digit strings) joined to FSDD's
  local an4_train=$data_dir/an4/train.jsonl
  once "$an4_train" python ../an4/local/prepare_manifests.py --corpus-dir "${an4_dir:-$download_dir/an4/unpacked}" \
    --out "$data_dir/an4" --dev-speakers 0 --lowercase
  if [ "$an4" = digits ]; then
    python local/an4_digits.py "$an4_train" "$data_dir/an4/digits.jsonl" --repeat "$an4_repeat"
    an4_train=$data_dir/an4/digits.jsonl
  fi
  cat "$data_dir/train.jsonl" "$an4_train" > "$data_dir/train_an4.jsonl"
}

connected_digits() {
  local corpus
  corpus=$(fsdd_folder)
  mkdir -p "$data_dir"
  once "$data_dir/train.jsonl" python local/make_connected.py --corpus-dir "$corpus" --speakers "$train_speakers" \
    --indices 5-49 --num "$num_train" --perturb "$perturb" --trim "$trim" --trim-db "$trim_db" --tilt "$tilt" --edge-min 0 --bare "$bare" \
    --noise-db -60 --espeak-num "$espeak_num" --seed "$seed" --name train --min-digits "$min_digits" --max-digits "$max_digits" --out-dir "$data_dir/train" --manifest "$data_dir/train.jsonl"
  once "$data_dir/dev.jsonl" python local/make_connected.py --corpus-dir "$corpus" --speakers "$train_speakers" \
    --indices 0-4 --num "$num_dev" --seed "$((seed + 1))" --name dev --min-digits "$min_digits" --max-digits "$max_digits" --out-dir "$data_dir/dev" \
    --manifest "$data_dir/dev.jsonl"
  once "$data_dir/test.jsonl" python local/make_connected.py --corpus-dir "$corpus" --speakers "$test_speakers" \
    --indices 0-49 --num "$num_test" --seed "$test_seed" --name test --min-digits "$min_digits" --max-digits "$max_digits" --out-dir "$data_dir/test" \
    --manifest "$data_dir/test.jsonl"
  once "$data_dir/isolated.jsonl" python local/make_connected.py --corpus-dir "$corpus" --speakers "$test_speakers" \
    --indices 0-49 --num "$num_isolated" --seed "$((test_seed + 1))" --name isolated --min-digits 1 --max-digits 1 --bare 1 \
    --out-dir "$data_dir/isolated" --manifest "$data_dir/isolated.jsonl"
  once "$data_dir/recorded.jsonl" python local/make_connected.py --corpus-dir "$corpus" --speakers "$test_speakers" \
    --indices 0-49 --as-recorded --manifest "$data_dir/recorded.jsonl"
  if [ "$an4" != false ]; then an4_utterances; fi
}

tokenizer() {
  train_tokenizer "$(train_manifest)"
}

with_partner() {  # COMMAND...: run COMMAND for the partner model (its own exp_dir), when there is one
  [ -z "$partner" ] && return 0
  (exp_dir=$exp_dir/partner; "$@")
}

cmvn() {
  compute_cmvn "$(train_manifest)"
  with_partner mkdir -p "$exp_dir/partner"
  with_partner cp "$exp_dir/tokenizer.json" "$exp_dir/partner/tokenizer.json"
  with_partner compute_cmvn "$(train_manifest)" $partner
}

train_one() {
  train_model "$(train_manifest)" "$data_dir/dev.jsonl" "batching.num_workers=$(loader_workers)" "$@"
}

train() {  # the two models at once, one per core; the partner's output goes to its own log
  local partner_log=$exp_dir/log/stage4.train.partner.log pid=""
  if [ -n "$partner" ]; then
    nproc=1
    echo "partner model ($partner): $exp_dir/partner, log: $partner_log"
    with_partner train_one $partner > "$partner_log" 2>&1 &
    pid=$!
  fi
  train_one
  if [ -n "$pid" ] && ! wait "$pid"; then
    tail -5 "$partner_log"
    echo "training the partner model failed; see $partner_log" >&2
    return 1
  fi
}

average() {
  average_checkpoints
  with_partner average_checkpoints
}

ensemble_decode() {  # SUBSET OUT_NAME [tasr decode options]: beam search with several models or speeds
  local subset=$1 out=$2
  shift 2
  tasr decode --model "$exp_dir/model.pt" --beam "$beam_size" --manifest "$data_dir/$subset.jsonl" --device "$device" \
    --out "$exp_dir/decode/$subset/$out" "$@"
}

decode() {
  local partner_model=(--model "$exp_dir/partner/model.pt")
  printf '%s\n' zero one two three four five six seven eight nine > "$exp_dir/digits.txt"
  lexicon=$exp_dir/digits.txt  # decode_set's third decode: the beam search over the ten digit words only
  for subset in dev test isolated recorded; do
    decode_set "$subset" "$data_dir/$subset.jsonl"
    [ "$beam_size" -gt 0 ] || continue
    if [ -n "$speeds" ]; then
      ensemble_decode "$subset" "beam${beam_size}_speeds" --speeds "$speeds"
    fi
    if [ -n "$partner" ]; then
      ensemble_decode "$subset" "beam${beam_size}_partner" "${partner_model[@]}"
    fi
    if [ -n "$partner" ] && [ -n "$speeds" ]; then
      ensemble_decode "$subset" "beam${beam_size}_partner_speeds" "${partner_model[@]}" \
        --speeds "$speeds"
    fi
  done
}

results() {
  python ../tools/results.py --exp-dir "$exp_dir" \
    --title "FSDD connected digits: train $train_speakers, test $test_speakers" --out "$exp_dir/RESULTS.md"
  cat "$exp_dir/RESULTS.md"
}

# The whole stage list is read before it runs, so editing this file during a long run is safe.
main() {
  run_stage 0 corpus corpus
  run_stage 1 data connected_digits
  run_stage 2 tokenizer tokenizer
  run_stage 3 cmvn cmvn
  run_stage 4 train train
  run_stage 5 average average
  run_stage 6 decode decode
  run_stage 7 results results
}

main; exit
