#!/usr/bin/env bash
# CMU AN4: real read speech of 84 speakers (letters, digits, names, commands), test speakers never heard.
#   ./run.sh                                   # downloads AN4 (CMU's SPHERE archive, or the cmusphinx/an4 WAV archive)
#   AN4_ROOT=../../../shared/data/an4 ./run.sh # or --corpus-dir DIR: an existing copy (either layout)
#   ./run.sh --seed 2 --exp-dir exp/seed2      # another training seed (the data stays the same)
# Stages are described in ../README.md; see README.md here for run times and results.
usage="usage: $0 [--stage N] [--stop-stage M] [--corpus-dir DIR] [--config FILE] [--exp-dir DIR] [--seed N] ..."
. "$(dirname "$0")/../tools/recipe.sh"
cd "$(dirname "$0")"

stage=0
stop_stage=100
nj=2                                # DataLoader workers and parallel jobs
ngpu=0                              # >1: training through torchrun, one process per GPU
nproc=2                             # on a CPU: training processes (torchrun, gloo), one compute thread each; on 2 cores
                                    # two processes train 1.4x faster than one process with two threads (--ngpu N > 0: N)
config=conf/conformer_ctc.yaml
exp_dir=exp                         # the final model is $exp_dir/model.pt
data_dir=data
download_dir=downloads
url=""                              # archive to download instead of the default sources (see local/download.py)
corpus_dir=$(absolute "${AN4_ROOT:-}")  # an existing AN4 copy (holding etc/ and wav/): no download
dev_speakers=6                      # training speakers held out (whole) for validation
max_utterances=0                    # keep only the first N utterances of each set (0: all; for quick tests)
seed=1                              # training seed (config `seed`)
epochs=""                           # training epochs (empty: the config's)
cmvn_utterances=0                   # utterances (random) for the CMVN statistics; 0: all
average_num=5                       # model.pt = average of the N best checkpoints (validation loss); 0: keep train's
beam_size=10                        # beam width of the beam-search decode (greedy is always run; 0: greedy only)
lm_order=3                          # stage 6 also decodes with a word n-gram LM of the training text (tasr lm; 0: not)
lm_weight=1.0                       # its weight and the score added per word (chosen on dev)
lm_word_score=1
speeds=0.9,1,1.1                    # stage 6 also decodes beam + lexicon (and + LM) hearing each file at these
                                    # speeds, combined as an ensemble (tasr decode --speeds; empty: not)
threads=1                           # torch threads per process (empty: torch's default)
device=auto
option_names="stage stop_stage nj ngpu nproc config exp_dir data_dir download_dir url corpus_dir dev_speakers
  max_utterances seed epochs cmvn_utterances average_num beam_size lm_order lm_weight lm_word_score speeds threads
  device"
path_options="config exp_dir data_dir download_dir corpus_dir"
parse_options "$@"

an4_root() {  # the AN4 folder holding etc/ and wav/
  if [ -n "$corpus_dir" ]; then echo "$corpus_dir"; else echo "$download_dir/unpacked"; fi
}

corpus() {
  if [ -n "$corpus_dir" ]; then
    python local/download.py --check "$corpus_dir"
  else
    python local/download.py --download-dir "$download_dir" ${url:+--url "$url"}
  fi
}

manifests() {
  mkdir -p "$data_dir"
  once "$data_dir/train.jsonl" python local/prepare_manifests.py --corpus-dir "$(an4_root)" --out "$data_dir" \
    --dev-speakers "$dev_speakers" --max-utterances "$max_utterances"
}

tokenizer() {
  train_tokenizer "$data_dir/train.jsonl"
}

cmvn() {
  compute_cmvn "$data_dir/train.jsonl"
}

train() {
  train_model "$data_dir/train.jsonl" "$data_dir/dev.jsonl" "batching.num_workers=$(loader_workers)" "seed=$seed" \
    ${epochs:+"epochs=$epochs"}
}

beam_decode() {  # SUBSET NAME [tasr decode OPTIONS...]: a beam search into $exp_dir/decode/SUBSET/beam${beam_size}_NAME
  local subset=$1 name=$2
  shift 2
  tasr decode --model "$exp_dir/model.pt" --manifest "$data_dir/$subset.jsonl" --beam "$beam_size" --device "$device" \
    --out "$exp_dir/decode/$subset/beam${beam_size}_$name" "$@"
}

decode() {
  lexicon=$exp_dir/words.txt  # the beam search restricted to the training words is decode_set's third decode
  training_words "$data_dir/train.jsonl" "$lexicon"
  local with_lm=false
  if [ "$beam_size" -gt 0 ] && [ "$lm_order" -gt 0 ]; then
    with_lm=true
    tasr lm "$data_dir/train.jsonl" -o "$exp_dir/lm.arpa" --order "$lm_order"
  fi
  local lm=(--lm "$exp_dir/lm.arpa" --lexicon "$lexicon" --lm-weight "$lm_weight" --word-score "$lm_word_score")
  for subset in dev test; do
    decode_set "$subset" "$data_dir/$subset.jsonl"
    if [ "$with_lm" = true ]; then beam_decode "$subset" "lm$lm_order" "${lm[@]}"; fi
    if [ "$beam_size" -gt 0 ] && [ -n "$speeds" ]; then
      beam_decode "$subset" lexicon_speeds --lexicon "$lexicon" --speeds "$speeds"
      if [ "$with_lm" = true ]; then beam_decode "$subset" "lm${lm_order}_speeds" "${lm[@]}" --speeds "$speeds"; fi
    fi
  done
}

results() {
  python ../tools/results.py --exp-dir "$exp_dir" \
    --title "AN4: $(wc -l < "$data_dir/train.jsonl") training utterances, test speakers never heard" --out "$exp_dir/RESULTS.md"
  cat "$exp_dir/RESULTS.md"
}

# The whole stage list is read before it runs, so editing this file during a long run is safe.
main() {
  run_stage 0 corpus corpus
  run_stage 1 data manifests
  run_stage 2 tokenizer tokenizer
  run_stage 3 cmvn cmvn
  run_stage 4 train train
  run_stage 5 average average_checkpoints
  run_stage 6 decode decode
  run_stage 7 results results
}

main; exit
