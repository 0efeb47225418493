# Shared by every recipes/<corpus>/run.sh (sourced, not run). Kaldi/ESPnet habits:
#
#   parse_options "$@"   --some-name VALUE sets the shell variable some_name, which the
#                        script must list in $option_names with a default; --help prints
#                        $usage and the options with their current values. Values of the
#                        options listed in $path_options are made absolute against the
#                        folder the script was started from (run.sh itself works in its
#                        own folder, so its defaults are relative to it). A non-empty
#                        $threads becomes OMP_NUM_THREADS for every command.
#   stage_wanted N       true when N lies within --stage .. --stop-stage.
#   run_stage N NAME COMMAND...
#                        runs COMMAND (a shell function or a program) as stage N unless
#                        $exp_dir/.done/stageN.NAME exists; its output goes to the terminal
#                        and to $exp_dir/log/stageN.NAME.log. When COMMAND fails, the script
#                        stops with a message naming the stage and its log; the marker is
#                        written only after success, so re-running redoes only what failed.
#   once TARGET COMMAND...
#                        runs COMMAND unless TARGET exists and was made by the same command
#                        line (kept in TARGET.made-by): data shared by several experiments is
#                        made once, and made again when its options change.
#   config_value FILE KEY DEFAULT
#                        a value of the YAML config FILE (KEY dotted: tokenizer.kind), or DEFAULT.
#   average_checkpoints  stage 5 of every recipe: model.pt = average of the $average_num best
#                        checkpoints by validation loss (0: leave model.pt as training wrote it).
#   decode_set NAME MANIFEST
#                        greedy decode of MANIFEST into $exp_dir/decode/NAME/greedy, and beam
#                        search into .../beam$beam_size unless $beam_size is 0. A non-empty
#                        $lexicon (a word list or lexicon file) restricts the beam search to its
#                        words, with $word_score added per word; it then writes .../beam${beam_size}_lexicon.
#   training_words MANIFEST OUT
#                        the sorted distinct words of MANIFEST's text, one a line, into OUT
#                        (a word list for decode_set's $lexicon).
#   train_command        `tasr train`, or `torchrun --nproc_per_node N -m tasr train` when N, the
#                        recipe's $nproc (CPU processes, gloo) or else its --ngpu, is more than 1.
#
# The `tasr` command used is the repository's .venv/bin/tasr when that exists (put first on
# PATH here), otherwise whatever `tasr` is on PATH.

set -euo pipefail

caller_dir=$PWD
_recipe_tools="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_repo_root="$(cd "$_recipe_tools/../.." && pwd)"
if [ -x "$_repo_root/.venv/bin/tasr" ]; then
  export PATH="$_repo_root/.venv/bin:$PATH"
fi
if ! command -v tasr >/dev/null; then
  echo "$0: the 'tasr' command is not on PATH: run 'make test' (or 'pip install -e .') in $_repo_root first" >&2
  exit 1
fi
# Python helpers in local/ import the repository's packages even without an install.
export PYTHONPATH="$_repo_root${PYTHONPATH:+:$PYTHONPATH}"

parse_options() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --help|-h)
        echo "${usage:-usage: $0 [options]}"
        echo
        echo "options (current values):"
        for name in ${option_names:-}; do
          printf '  --%-16s %s\n' "${name//_/-}" "${!name}"
        done
        exit 0 ;;
      --*=*)
        _set_option "${1%%=*}" "${1#*=}"; shift ;;
      --*)
        [ $# -ge 2 ] || { echo "$0: option $1 needs a value" >&2; exit 2; }
        _set_option "$1" "$2"; shift 2 ;;
      *)
        echo "$0: unexpected argument '$1' (options are --name value; see --help)" >&2; exit 2 ;;
    esac
  done
  if [ -n "${threads:-}" ]; then  # torch's intra-op threads in every tasr command
    export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
  fi
}

_set_option() {
  local name="${1#--}"
  name="${name//-/_}"
  if ! _listed "$name" ${option_names:-} || [ -z "${!name+set}" ]; then
    echo "$0: unknown option $1 (see --help)" >&2
    exit 2
  fi
  local value=$2
  if _listed "$name" ${path_options:-}; then
    value=$(absolute "$value")
  fi
  printf -v "$name" '%s' "$value"
}

_listed() {  # NAME WORDS...: is NAME one of WORDS?
  local name=$1 word
  shift
  for word in "$@"; do [ "$word" = "$name" ] && return 0; done
  return 1
}

absolute() {  # PATH made absolute against the folder the script was started from ("" stays "")
  case "$1" in
    ""|/*) echo "$1" ;;
    *) echo "$caller_dir/$1" ;;
  esac
}

stage_wanted() {
  [ "$1" -ge "$stage" ] && [ "$1" -le "$stop_stage" ]
}

run_stage() {
  local number="$1" name="$2"
  shift 2
  stage_wanted "$number" || return 0
  local marker="$exp_dir/.done/stage$number.$name"
  local log="$exp_dir/log/stage$number.$name.log"
  if [ -e "$marker" ]; then
    echo "stage $number ($name): done already (remove $marker to run it again)"
    return 0
  fi
  mkdir -p "$exp_dir/.done" "$exp_dir/log"
  echo "stage $number ($name): started $(date -u '+%F %T') UTC, log: $log"
  local start=$SECONDS status
  set +e
  (set -e; "$@") 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  set -e
  if [ "$status" -ne 0 ]; then
    echo "$0: stage $number ($name) failed with exit status $status; see $log" >&2
    exit 1
  fi
  echo "finished $(date -u '+%F %T') UTC after $((SECONDS - start))s" > "$marker"
  echo "stage $number ($name): done in $((SECONDS - start)) s"
}

once() {
  local target=$1
  shift
  if [ -e "$target" ] && [ "$(cat "$target.made-by" 2>/dev/null)" = "$*" ]; then
    echo "$target: made already by the same command"
    return 0
  fi
  rm -f "$target.made-by"
  "$@"
  echo "$*" > "$target.made-by"
}

config_value() {
  python - "$1" "$2" "$3" <<'PY'
import sys, yaml
value = yaml.safe_load(open(sys.argv[1])) or {}
for part in sys.argv[2].split("."):
    value = value.get(part) if isinstance(value, dict) else None
print(sys.argv[3] if value is None else str(value).lower() if isinstance(value, bool) else value)
PY
}

tokenizer_options() {  # tasr tokenizer options from the config's `tokenizer` section
  local kind
  kind=$(config_value "$config" tokenizer.kind char)
  echo "--kind $kind --vocab-size $(config_value "$config" tokenizer.vocab_size 500)" \
    "$([ "$(config_value "$config" tokenizer.lowercase false)" = true ] && echo --lowercase)"
}

train_tokenizer() {  # TRAIN_MANIFEST: EXP/tokenizer.json as the config's `tokenizer` section says
  tasr tokenizer $(tokenizer_options) --manifest "$1" --out "$exp_dir/tokenizer.json"
}

compute_cmvn() {  # TRAIN_MANIFEST [CONFIG OVERRIDES...]: EXP/cmvn.json
  local manifest=$1
  shift
  tasr cmvn --config "$config" --manifest "$manifest" --out "$exp_dir/cmvn.json" \
    --max-utterances "$cmvn_utterances" --num-workers "$nj" --device "$device" "$@"
}

train_model() {  # TRAIN_MANIFEST VALID_MANIFEST [CONFIG OVERRIDES...]: resumes from EXP's last checkpoint
  local train=$1 valid=$2
  shift 2
  $(train_command) --config "$config" --train "$train" --valid "$valid" --exp-dir "$exp_dir" \
    --tokenizer "$exp_dir/tokenizer.json" --cmvn "$exp_dir/cmvn.json" --device "$device" --resume "$@"
}

average_checkpoints() {
  if [ "$average_num" -gt 0 ]; then
    tasr average --exp-dir "$exp_dir" --num "$average_num" --by loss --out "$exp_dir/model.pt"
  else
    echo "--average-num 0: model.pt stays as tasr train wrote it"
  fi
}

decode_set() {
  local name=$1 manifest=$2
  tasr decode --model "$exp_dir/model.pt" --manifest "$manifest" --out "$exp_dir/decode/$name/greedy" \
    --device "$device"
  if [ "$beam_size" -gt 0 ]; then
    tasr decode --model "$exp_dir/model.pt" --manifest "$manifest" --out "$exp_dir/decode/$name/beam$beam_size" \
      --beam "$beam_size" --device "$device"
  fi
  if [ "$beam_size" -gt 0 ] && [ -n "${lexicon:-}" ]; then
    tasr decode --model "$exp_dir/model.pt" --manifest "$manifest" --beam "$beam_size" --device "$device" \
      --lexicon "$lexicon" --word-score "${word_score:-0}" --out "$exp_dir/decode/$name/beam${beam_size}_lexicon"
  fi
}

training_words() {
  python -c 'import json, sys; print("\n".join(sorted({w for line in sys.stdin for w in json.loads(line)["text"].split()})))' \
    < "$1" > "$2"
}

training_processes() {  # $ngpu processes on GPUs, otherwise $nproc (1 where the recipe has no such option)
  if [ "${ngpu:-0}" -gt 0 ]; then echo "$ngpu"; else echo "${nproc:-1}"; fi
}

loader_workers() {  # DataLoader workers per training process: $nj for one process; with several, one each on
  # GPUs, and none on a CPU, where each process loads its own audio (a worker would take a core from the other)
  if [ "$(training_processes)" -le 1 ]; then echo "$nj"
  elif [ "${ngpu:-0}" -gt 0 ]; then echo 1
  else echo 0
  fi
}

train_command() {
  local processes
  processes=$(training_processes)
  if [ "$processes" -gt 1 ]; then
    echo "torchrun --standalone --nproc_per_node $processes -m tasr train"
  else
    echo "tasr train"
  fi
}
