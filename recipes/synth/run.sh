#!/usr/bin/env bash
# Synthetic speech: generated sentences spoken by espeak-ng voices; test voices never heard in
# training; a long recording for long-input decoding. Runs end to end on a laptop CPU (`make demo`).
#   recipes/synth/run.sh
#   recipes/synth/run.sh --num-train 20000 --config conf/conformer_ctc.yaml --exp-dir exp/big
# Stages are described in ../README.md; see README.md here for run times and results.
usage="usage: $0 [--stage N] [--stop-stage M] [--config FILE] [--exp-dir DIR] [--nj N] [--ngpu N] ..."
. "$(dirname "$0")/../tools/recipe.sh"
cd "$(dirname "$0")"

stage=0
stop_stage=100
nj=2                                # parallel espeak-ng jobs and DataLoader workers
ngpu=0                              # >1: training through torchrun, one process per GPU
config=conf/conformer_ctc.yaml
exp_dir=exp                         # the final model is $exp_dir/model.pt
data_dir=data
num_train=3000                      # training sentences (each with its own voice, speed and pitch)
num_dev=200
num_test=300                        # spoken by test voices only
long_minutes=5                      # length of the long test recording (0: none)
seed=1
cmvn_utterances=2000                # utterances (random) for the CMVN statistics; 0: all
average_num=1                       # model.pt = average of the N best checkpoints (validation loss); 0: keep train's
beam_size=10                        # beam width of the beam-search decode (greedy is always run; 0: greedy only)
word_score=-1                       # a third search: beam over the training sentences' words only, this score
                                    # per word (tuned on dev: 0 inserts short words, -2 deletes them)
threads=1                           # torch threads per process: small models on 2 cores train fastest with one
                                    # compute thread and the other core loading data (empty: torch's default)
device=auto
option_names="stage stop_stage nj ngpu config exp_dir data_dir num_train num_dev num_test long_minutes seed
  average_num beam_size word_score device threads"
path_options="config exp_dir data_dir"
parse_options "$@"

speech() {
  mkdir -p "$data_dir"
  once "$data_dir/test.jsonl" python local/make_data.py --out "$data_dir" --num-train "$num_train" \
    --num-dev "$num_dev" --num-test "$num_test" --long-minutes "$long_minutes" --seed "$seed" --nj "$nj"
}

check() {
  python local/check_data.py --data-dir "$data_dir"
}

tokenizer() {
  train_tokenizer "$data_dir/train.jsonl"
}

cmvn() {
  compute_cmvn "$data_dir/train.jsonl"
}

train() {
  train_model "$data_dir/train.jsonl" "$data_dir/dev.jsonl" "batching.num_workers=$nj"
}

decode() {
  local sets="dev test" lexicon="$exp_dir/words.txt"
  training_words "$data_dir/train.jsonl" "$lexicon"
  [ -s "$data_dir/long.jsonl" ] && sets="$sets long"
  for subset in $sets; do
    decode_set "$subset" "$data_dir/$subset.jsonl"
  done
}

results() {
  python ../tools/results.py --exp-dir "$exp_dir" --title "Synthetic speech (espeak-ng), $num_train training sentences" \
    --out "$exp_dir/RESULTS.md"
  cat "$exp_dir/RESULTS.md"
}

# The whole stage list is read before it runs, so editing this file during a long run is safe.
main() {
  run_stage 0 speech speech
  run_stage 1 check check
  run_stage 2 tokenizer tokenizer
  run_stage 3 cmvn cmvn
  run_stage 4 train train
  run_stage 5 average average_checkpoints
  run_stage 6 decode decode
  run_stage 7 results results
}

main; exit
