#!/usr/bin/env bash
# The fault harness (issue 12): `kill -9` at seeded moments of `crossclr ingest`, `train` and
# `map`, then a rerun to completion (`train --resume`), and every result file compared by SHA-256
# with an uninterrupted run's. Right after each kill, every file under its final name must be
# whole (safetensors sizes agree with their headers, JSON parses, JPEG/PNG end where they should);
# the temporaries a kill leaves are listed, never compared.
#
#   scripts/faults.sh [N] [SEED]      N kills per command (default 20), SEED picks the moments (1)
#
# CROSSCLR_BIN: the binary to test (default: `cargo build`, then target/debug/crossclr).
# FAULTS_DIR: the working folder, kept afterwards (default: a temporary one, removed when every
# kill survived). FAULTS_COMMANDS: which commands (default "ingest train map"). FAULTS_EPOCHS:
# epochs of the trained run (default 3).
# Needs bash, python3 and the ffmpeg libraries the binary links; ffmpeg itself is not used.
#
# Compared bytes: ingest, every file of the project (features, staged videos and their records,
# thumbnails, manifest, crossclr.toml); train, every file of the run folder but `lock` (it holds
# the writer's process id and start time: who holds the run, not a result), with metrics.jsonl
# compared without its `seconds` field (wall-clock time of each epoch's steps); map, the layout
# file. Exit status 0 when every kill survived: rerun completed, bytes equal, nothing half-written.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-20}
SEED=${2:-1}
COMMANDS=${FAULTS_COMMANDS:-ingest train map}
EPOCHS=${FAULTS_EPOCHS:-3}
if ! [[ $N =~ ^[0-9]+$ && $SEED =~ ^[0-9]+$ ]]; then
  echo "usage: scripts/faults.sh [N] [SEED] (non-negative integers)" >&2
  exit 2
fi

if [[ -n ${CROSSCLR_BIN:-} ]]; then
  BIN=$CROSSCLR_BIN
else
  cargo build --locked --quiet --bin crossclr
  BIN=$PWD/target/debug/crossclr
fi
if [[ -n ${FAULTS_DIR:-} ]]; then
  W=$FAULTS_DIR
  mkdir -p "$W"
  keep=1
else
  W=$(mktemp -d "${TMPDIR:-/tmp}/crossclr-faults.XXXXXX")
  keep=0
fi
W=$(cd "$W" && pwd)
echo "faults: $N kills per command, seed $SEED, binary $BIN, in $W"

# The checks and digests, in Python's standard library only.
cat >"$W/faults.py" <<'PYTHON'
import hashlib, json, os, re, struct, sys

TEMPORARY = re.compile(r"^\..+\.tmp-\d+-\d+$")

def files(root):
    for folder, _, names in os.walk(root):
        for name in sorted(names):
            yield os.path.join(folder, name), name

def whole(path, name):
    """None when the file is whole by its format, else what is wrong."""
    data = open(path, "rb").read()
    if name.endswith(".safetensors"):
        if len(data) < 8:
            return f"{len(data)} bytes, shorter than a safetensors header length"
        n = struct.unpack("<Q", data[:8])[0]
        if 8 + n > len(data):
            return f"header of {n} bytes in a file of {len(data)}"
        header = json.loads(data[8:8 + n])
        end = max([t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"],
                  default=0)
        if 8 + n + end != len(data):
            return f"tensors end at byte {8 + n + end}, the file at {len(data)}"
    elif name.endswith(".json"):
        json.loads(data)
    elif name.endswith(".jsonl"):
        for line in data.decode().splitlines():
            json.loads(line)
        if data and not data.endswith(b"\n"):
            return "last line unterminated"
    elif name.endswith((".jpg", ".jpeg")):
        if not (data.startswith(b"\xff\xd8") and data.rstrip(b"\0").endswith(b"\xff\xd9")):
            return "no JPEG start or end marker"
    elif name.endswith(".png"):
        if not data.endswith(b"IEND\xaeB`\x82"):
            return "no PNG end chunk"
    elif name.endswith(".toml"):
        import tomllib
        tomllib.loads(data.decode())
    return None

def check(root):
    """Prints `bad PATH: why` for each torn file and `temporary PATH` for each temporary."""
    for path, name in files(root):
        if TEMPORARY.match(name):
            print(f"temporary {path}")
            continue
        try:
            problem = whole(path, name)
        except Exception as e:  # any parse error is a torn file
            problem = f"{type(e).__name__}: {e}"
        if problem:
            print(f"bad {path}: {problem}")

def digest(root):
    """`sha256 path` of each result file under root, as the header of faults.sh defines them."""
    for path, name in files(root):
        if TEMPORARY.match(name) or name == "lock":
            continue
        data = open(path, "rb").read()
        if name == "metrics.jsonl":
            lines = []
            for line in data.decode().splitlines():
                record = json.loads(line)
                record.pop("seconds", None)
                lines.append(json.dumps(record, sort_keys=True))
            data = "\n".join(lines).encode()
        print(hashlib.sha256(data).hexdigest(), os.path.relpath(path, root))

def embeddings(source, target):
    """A run's clip embeddings as the `embeddings` tensor `crossclr map` reads, keys kept."""
    data = open(source, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    clip = header["clip"]
    start, end = clip["data_offsets"]
    body = data[8 + n + start:8 + n + end]
    keys = header["__metadata__"]["clip_keys"]
    out = json.dumps({"__metadata__": {"keys": keys},
                      "embeddings": {"dtype": clip["dtype"], "shape": clip["shape"],
                                     "data_offsets": [0, len(body)]}}).encode()
    out += b" " * (-len(out) % 8)
    open(target, "wb").write(struct.pack("<Q", len(out)) + out + body)

{"check": check, "digest": digest, "embeddings": embeddings}[sys.argv[1]](*sys.argv[2:])
PYTHON
py() { python3 "$W/faults.py" "$@"; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# The seeded moments: a 64-bit LCG (Knuth's MMIX constants) in bash's wrapping arithmetic, so a
# seed gives the same fractions everywhere.
lcg=$((SEED * 6364136223846793005 + 1442695040888963407))
next_fraction_ppm() {
  lcg=$((lcg * 6364136223846793005 + 1442695040888963407))
  fraction=$((((lcg >> 33) & 0x7fffffff) % 1000000))
}

# Runs "$@" in the background, kills it with SIGKILL after $1 ms; `killed` is 1 when the kill
# landed while it ran, 0 when it had finished; a first run that failed on its own is fatal.
run_and_kill() {
  local ms=$1 log=$2
  shift 2
  "$@" >"$log" 2>&1 &
  local pid=$!
  sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
  kill -9 "$pid" 2>/dev/null || true
  local status=0
  # Quietly: bash would report each killed job on stderr.
  { wait "$pid"; } 2>/dev/null || status=$?
  case $status in
    0) killed=0 ;;
    137) killed=1 ;;
    *)
      echo "faults: $* failed on its own (status $status) before the kill; see $log" >&2
      killed=error
      ;;
  esac
}

summary=()
temporaries=()
failures=0

# One command's trials. setup_trial DIR makes a fresh copy to break; start_args DIR sets `cmd` to
# the command line (run directly, so that the kill reaches crossclr, not a subshell); rerun DIR
# finishes it; results DIR names the folder whose digest is compared.
trials() {
  local command=$1 reference_ms=$2 reference_digest=$3
  local running=0 survived=0 completed=0 identical=0 torn=0 left=0 resumed=0 stateless=0
  for ((i = 1; i <= N; i++)); do
    next_fraction_ppm
    local ms=$((reference_ms * fraction / 1000000))
    local dir="$W/$command/t$i"
    setup_trial "$dir"
    start_args "$dir"
    run_and_kill "$ms" "$dir.first.log" "${cmd[@]}"
    local ok=1 note=""
    if [[ $killed == error ]]; then
      ok=0
      note="first run failed"
    else
      running=$((running + killed))
      # Killed before the first saved state: what `--resume` used to refuse.
      [[ $command == train && ! -f $dir/runs/r/state.safetensors ]] && stateless=$((stateless + 1))
      local found
      found=$(py check "$(results "$dir")")
      if grep -q '^bad ' <<<"$found"; then
        torn=$((torn + 1))
        ok=0
        note="half-written: $(grep '^bad ' <<<"$found" | head -3 | tr '\n' ' ')"
      fi
      if rerun "$dir" >"$dir.rerun.log" 2>&1; then
        completed=$((completed + 1))
        if cmp -s <(py digest "$(results "$dir")") "$reference_digest"; then
          identical=$((identical + 1))
        else
          ok=0
          note="$note differs: $(diff <(py digest "$(results "$dir")") "$reference_digest" | grep '^[<>]' | head -4 | tr '\n' ' ')"
        fi
      else
        ok=0
        note="$note rerun failed: $(tail -2 "$dir.rerun.log" | tr '\n' ' ')"
      fi
      [[ -f $dir.resumed ]] && resumed=$((resumed + 1))
      while read -r path; do
        [[ -n $path ]] && temporaries+=("$path") && left=$((left + 1))
      done < <(py check "$(results "$dir")" | sed -n 's/^temporary //p')
    fi
    survived=$((survived + ok))
    [[ $ok == 1 ]] || failures=$((failures + 1))
    printf '  %-6s %2d  kill at %5d ms of %5d  %-9s %s\n' "$command" "$i" "$ms" "$reference_ms" \
      "$([[ $killed == 1 ]] && echo running || echo finished)" \
      "$([[ $ok == 1 ]] && echo ok || echo "FAILED:$note")"
  done
  [[ $command == train ]] || resumed=- stateless=-
  summary+=("$(printf '%-7s %8s %10s %10s %10s %12s %12s %8s %9s' "$command" "$survived/$N" \
    "$running" "$completed" "$identical" "$torn" "$left" "$resumed" "$stateless")")
}

# Reference runs, timed: the kill moments are drawn over the reference's duration.
timed() {
  local started
  started=$(now_ms)
  "$@"
  reference_ms=$(($(now_ms) - started))
}

for command in $COMMANDS; do
  case $command in
    ingest)
      mkdir -p "$W/ingest"
      # The demo's rendered collection: captioned videos of moving shapes, 3-5 clips each.
      "$BIN" demo "$W/ingest/demo" --videos 8 --epochs 1 >"$W/ingest/demo.log" 2>&1
      "$BIN" new "$W/ingest/base" --videos "$W/ingest/demo/collection" \
        --captions "$W/ingest/demo/collection/captions.jsonl" >"$W/ingest/new.log"
      setup_trial() { rm -rf "$1" && cp -a "$W/ingest/base" "$1"; }
      start_args() { cmd=("$BIN" ingest "$1"); }
      rerun() { "$BIN" ingest "$1"; }
      results() { echo "$1"; }
      setup_trial "$W/ingest/reference"
      start_args "$W/ingest/reference"
      timed "${cmd[@]}" >"$W/ingest/reference.log"
      ;;
    train)
      mkdir -p "$W/train"
      "$BIN" synth "$W/train/base" --seed 4 >"$W/train/synth.log"
      setup_trial() { rm -rf "$1" "$1.resumed" && cp -a "$W/train/base" "$1"; }
      start_args() { cmd=("$BIN" train "$1" --run r --epochs "$EPOCHS"); }
      # A kill before the run's folder was made leaves nothing to resume: the run starts again.
      rerun() {
        if [[ -d $1/runs/r ]]; then
          touch "$1.resumed"
          "$BIN" train "$1" --run r --epochs "$EPOCHS" --resume
        else
          "$BIN" train "$1" --run r --epochs "$EPOCHS"
        fi
      }
      results() { echo "$1/runs/r"; }
      setup_trial "$W/train/reference"
      start_args "$W/train/reference"
      timed "${cmd[@]}" >"$W/train/reference.log"
      ;;
    map)
      mkdir -p "$W/map"
      if [[ ! -f $W/train/reference/runs/r/checkpoint.safetensors ]]; then
        "$BIN" synth "$W/map/project" --seed 4 >"$W/map/synth.log"
        "$BIN" train "$W/map/project" --run r --epochs "$EPOCHS" >"$W/map/train.log"
        project=$W/map/project
      else
        project=$W/train/reference
      fi
      # The train split's 723 clips: a map long enough to be killed in.
      "$BIN" eval "$project" --run r --split train >"$W/map/eval.log"
      py embeddings "$project/runs/r/embeddings.safetensors" "$W/map/embeddings.safetensors"
      setup_trial() { rm -rf "$1" && mkdir -p "$1"; }
      start_args() {
        cmd=("$BIN" map --embeddings "$W/map/embeddings.safetensors" --out "$1/layout.safetensors")
      }
      rerun() { start_args "$1" && "${cmd[@]}"; }
      results() { echo "$1"; }
      setup_trial "$W/map/reference"
      start_args "$W/map/reference"
      timed "${cmd[@]}" >"$W/map/reference.log"
      ;;
    *)
      echo "faults: no command $command (ingest, train, map)" >&2
      exit 2
      ;;
  esac
  py digest "$(results "$W/$command/reference")" >"$W/$command/reference.digest"
  echo "$command: reference run $reference_ms ms, $(wc -l <"$W/$command/reference.digest") result files"
  trials "$command" "$reference_ms" "$W/$command/reference.digest"
done

echo
printf '%-7s %8s %10s %10s %10s %12s %12s %8s %9s\n' command survived "running" completed \
  identical half-written temporaries resumed stateless
printf '%s\n' "${summary[@]}"
echo "(running: the kill landed while the command ran; resumed: train reruns with --resume;"
echo " stateless: killed before the run saved its first state, resumed from the start;"
echo " temporaries: left by kills, never read, removed by the next ingest or train once 15 min old)"
for path in "${temporaries[@]}"; do
  echo "  temporary left: ${path#"$W"/}"
done
if ((failures)); then
  echo "faults: $failures kills did not survive; the trials are in $W" >&2
  exit 1
fi
if ((!keep)); then
  rm -rf "$W"
fi
echo "faults: every kill survived"
