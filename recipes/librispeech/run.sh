#!/usr/bin/env bash
# LibriSpeech: truncated-attention Conformer-CTC, from the openslr archives to RESULTS.md.
#   ./run.sh                                   # train-clean-100, conf/conformer_ctc_100h.yaml
#   ./run.sh --config conf/conformer_ctc_960h.yaml --train-sets train-clean-100,train-clean-360,train-other-500
#   ./run.sh --corpus-dir /data/LibriSpeech    # an unpacked copy: no download
#   ./run.sh --stage 6 --stop-stage 7          # only decode and score
# Stages are described in ../README.md; see README.md here for run times and results.
usage="usage: $0 [--stage N] [--stop-stage M] [--config FILE] [--exp-dir DIR] [--nj N] [--ngpu N] ..."
. "$(dirname "$0")/../tools/recipe.sh"
cd "$(dirname "$0")"

stage=0
stop_stage=100
nj=4                                # parallel jobs for data preparation
ngpu=1                              # >1: training through torchrun, one process per GPU
config=conf/conformer_ctc_100h.yaml
exp_dir=""                          # default: exp/<config name>
data_dir=data                       # manifests
download_dir=downloads              # archives, unpacked into downloads/LibriSpeech/<subset>
corpus_dir=""                       # an existing unpacked LibriSpeech (holding <subset>/ folders): no download
url_base=""                         # download from here instead of openslr.org and its mirrors
md5_list=""                         # md5sum-style list for the archives (default: openslr's published sums)
keep_archives=false                 # true: keep each .tar.gz after unpacking it
train_sets=train-clean-100
dev_sets=dev-clean,dev-other        # validation during training (joined)
test_sets=dev-clean,dev-other,test-clean,test-other
cmvn_utterances=0                   # utterances (random) for the CMVN statistics; 0: all
average_num=10                      # model.pt = average of the N best checkpoints (validation loss); 0: keep train's
beam_size=10                        # beam width of the beam-search decode (greedy is always run; 0: greedy only)
threads=""                          # torch threads per process (empty: torch's default, all cores)
device=auto                         # training/decoding device: auto, cpu, cuda
option_names="stage stop_stage nj ngpu config exp_dir data_dir download_dir corpus_dir url_base md5_list keep_archives
  train_sets dev_sets test_sets cmvn_utterances average_num beam_size device threads"
path_options="config exp_dir data_dir download_dir corpus_dir md5_list"
parse_options "$@"

exp_dir=${exp_dir:-exp/$(basename "$config" .yaml)}
corpus=${corpus_dir:-$download_dir/LibriSpeech}
all_sets=$(echo "$train_sets,$dev_sets,$test_sets" | tr , '\n' | sort -u | paste -sd, -)

download() {
  if [ -n "$corpus_dir" ]; then
    echo "using the unpacked corpus in $corpus_dir: nothing to download"
    for subset in ${all_sets//,/ }; do
      [ -d "$corpus_dir/$subset" ] || [ -d "$corpus_dir/LibriSpeech/$subset" ] \
        || { echo "$corpus_dir has no $subset folder"; return 1; }
    done
    return 0
  fi
  python local/download.py --subsets "$all_sets" --download-dir "$download_dir" \
    ${url_base:+--url-base "$url_base"} ${md5_list:+--md5-list "$md5_list"} \
    $([ "$keep_archives" = true ] && echo --keep-archives)
}

manifests() {
  python local/prepare_manifests.py --corpus-dir "$corpus" --subsets "$all_sets" --out "$data_dir" --nj "$nj"
  join_manifests "$train_sets" "$(manifest_of train "$train_sets")"
  join_manifests "$dev_sets" "$(manifest_of dev "$dev_sets")"
}

manifest_of() {  # PREFIX SETS: the manifest of a comma-separated list of subsets
  local prefix=$1 sets=$2
  if [ "$sets" = "${sets//,/}" ]; then echo "$data_dir/$sets.jsonl"; else echo "$data_dir/${prefix}_${sets//,/+}.jsonl"; fi
}

join_manifests() {  # SETS TARGET: concatenate the subsets' manifests (nothing to do for one subset)
  local sets=$1 target=$2
  [ "$sets" = "${sets//,/}" ] && return 0
  for subset in ${sets//,/ }; do cat "$data_dir/$subset.jsonl"; done > "$target.tmp"
  mv "$target.tmp" "$target"
  echo "$target: $(wc -l < "$target") utterances"
}

tokenizer() {
  train_tokenizer "$(manifest_of train "$train_sets")"
}

cmvn() {
  compute_cmvn "$(manifest_of train "$train_sets")"
}

train() {
  train_model "$(manifest_of train "$train_sets")" "$(manifest_of dev "$dev_sets")"
}


decode() {
  for subset in ${test_sets//,/ }; do
    decode_set "$subset" "$data_dir/$subset.jsonl"
  done
}

results() {
  python ../tools/results.py --exp-dir "$exp_dir" --title "LibriSpeech, $(basename "$config"), trained on $train_sets" \
    --out "$exp_dir/RESULTS.md"
  cat "$exp_dir/RESULTS.md"
}

# The whole stage list is read before it runs, so editing this file during a long run is safe.
main() {
  run_stage 0 download download
  run_stage 1 manifests manifests
  run_stage 2 tokenizer tokenizer
  run_stage 3 cmvn cmvn
  run_stage 4 train train
  run_stage 5 average average_checkpoints
  run_stage 6 decode decode
  run_stage 7 results results
}

main; exit
