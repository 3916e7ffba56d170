#!/usr/bin/env bash
# Throughput (and, on the labelled dev set, recall) of careline's triage engine
# against medspaCy (spaCy + TargetMatcher + ConText) with an equivalent list
# of red-flag phrases.
#
# Usage (from anywhere; paths are relative to this script):
#   bench/triage-vs-medspacy.sh
# Environment:
#   N=12000              corpus size (messages)
#   PYTHON=python3       interpreter used to create the venv (3.11+)
#   CARGO_TARGET_DIR     honoured if set; default: the workspace target/
#   RUNS=3               careline repetitions (best is reported)
#   SKIP_DEV=1           skip the accuracy comparison on crates/triage/eval/dev.jsonl
#   MEDSPACY_SPEC        pip requirement for medspaCy (default: medspacy)
#   CARELINE_BIN         use this careline binary instead of building one
#
# Needs: python3.11+ with venv and pip (Debian 12: apt-get install python3-venv
# python3-pip), a Rust toolchain, network access to PyPI on the first run (the
# venv bench/.venv-medspacy is reused afterwards), awk, lscpu.
#
# What is timed:
#   medspaCy  wall clock of nlp.pipe() over the whole corpus inside one Python
#             process (one core), excluding imports and model/rule load (reported
#             separately as load_s).
#   careline  wall clock of the whole `careline triage --jsonl < corpus > out`
#             process, including process start and protocol load; best of RUNS.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
cd "$ROOT"

N="${N:-12000}"
RUNS="${RUNS:-3}"
PYTHON="${PYTHON:-python3}"
MEDSPACY_SPEC="${MEDSPACY_SPEC:-medspacy}"
VENV="$HERE/.venv-medspacy"
DEV="$ROOT/crates/triage/eval/dev.jsonl"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${CARELINE_BIN:-$TARGET_DIR/release/careline}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/careline-bench.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.1f", n / s }'; }
jget() { "$PYTHON" -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, {"d": d}))' "$1" "$2"; }
say() { printf '\n== %s\n' "$*"; }

say "machine"
echo "cpus: $(nproc)   model: $(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
echo "python: $("$PYTHON" --version 2>&1)   rustc: $(rustc --version 2>/dev/null || echo n/a)"
echo "load average at start: $(cut -d" " -f1-3 /proc/loadavg 2>/dev/null || echo n/a)  (other work on the machine skews the figures)"

# 1. corpus -------------------------------------------------------------------
say "1. generating corpus ($N messages, fixed seed)"
EXCLUDE=()
[[ -f "$DEV" ]] && EXCLUDE=(--exclude "$DEV")
"$PYTHON" "$HERE/make_messages.py" -n "$N" "${EXCLUDE[@]}" --out "$WORK/corpus.jsonl"
CORPUS_LINES=$(wc -l < "$WORK/corpus.jsonl")
CORPUS_BYTES=$(wc -c < "$WORK/corpus.jsonl")
echo "corpus: $CORPUS_LINES messages, $CORPUS_BYTES bytes"

# 2. medspaCy venv ------------------------------------------------------------
say "2. medspaCy environment ($VENV)"
if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import medspacy' 2>/dev/null; then
    echo "reusing existing venv"
else
    t0=$(now)
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet "numpy<2" "$MEDSPACY_SPEC"
    echo "pip install took $(elapsed "$t0" "$(now)") s"
fi
"$VENV/bin/python" -c 'import medspacy, spacy, numpy; print("medspacy", medspacy.__version__, "| spacy", spacy.__version__, "| numpy", numpy.__version__)' 2>/dev/null

# 3. medspaCy run --------------------------------------------------------------
say "3. medspaCy default pipeline (medspacy.load(): PyRuSH + TargetMatcher + ConText)"
MS=$("$VENV/bin/python" "$HERE/medspacy_bench.py" bench --corpus "$WORK/corpus.jsonl" --out "$WORK/medspacy.out.jsonl")
echo "$MS"
say "3b. medspaCy variant: spaCy rule sentencizer instead of PyRuSH (faster baseline)"
MS_FAST=$("$VENV/bin/python" "$HERE/medspacy_bench.py" bench --sentencizer spacy --corpus "$WORK/corpus.jsonl")
echo "$MS_FAST"

# 4. careline ------------------------------------------------------------------
if [[ -z "${CARELINE_BIN:-}" ]]; then
    say "4. careline (cargo build --release -p careline, target dir $TARGET_DIR)"
    t0=$(now)
    CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -p careline
    echo "build took $(elapsed "$t0" "$(now)") s"
else
    say "4. careline ($BIN, not rebuilt)"
fi
head -n 1 "$WORK/corpus.jsonl" > "$WORK/probe.jsonl"
if ! "$BIN" triage --jsonl < "$WORK/probe.jsonl" > "$WORK/probe.out" 2> "$WORK/probe.err" \
        || [[ ! -s "$WORK/probe.out" ]]; then
    echo "error: '$BIN triage --jsonl' does not work (yet):" >&2
    cat "$WORK/probe.err" >&2
    exit 1
fi
BEST=""
FIRST=""
for i in $(seq 1 "$RUNS"); do
    t0=$(now)
    "$BIN" triage --jsonl < "$WORK/corpus.jsonl" > "$WORK/careline.out.jsonl"
    s=$(elapsed "$t0" "$(now)")
    echo "run $i: ${s} s  ($(rate "$CORPUS_LINES" "$s") msgs/s, wall clock incl. process start)"
    [[ -z "$FIRST" ]] && FIRST="$s"
    if [[ -z "$BEST" ]] || awk -v a="$s" -v b="$BEST" 'BEGIN { exit !(a < b) }'; then BEST="$s"; fi
done
OUT_LINES=$(wc -l < "$WORK/careline.out.jsonl")
if [[ "$OUT_LINES" -ne "$CORPUS_LINES" ]]; then
    echo "error: careline wrote $OUT_LINES lines for $CORPUS_LINES messages" >&2
    exit 1
fi
CL=$("$PYTHON" "$HERE/careline_stats.py" count --input "$WORK/corpus.jsonl" --output "$WORK/careline.out.jsonl")
echo "$CL"

# 5. summary -------------------------------------------------------------------
MS_RATE=$(jget "$MS" 'd["msgs_per_s"]')
MS_FAST_RATE=$(jget "$MS_FAST" 'd["msgs_per_s"]')
CL_FIRST=$(rate "$CORPUS_LINES" "$FIRST")
CL_BEST=$(rate "$CORPUS_LINES" "$BEST")
say "5. summary ($CORPUS_LINES messages, $(nproc) CPUs, load average now $(cut -d" " -f1-3 /proc/loadavg 2>/dev/null || echo n/a))"
printf '%-52s %12s\n' "engine" "msgs/s"
printf '%-52s %12s   (load %ss, run %ss)\n' "medspaCy default (PyRuSH+TargetMatcher+ConText)" "$MS_RATE" \
    "$(jget "$MS" 'd["load_s"]')" "$(jget "$MS" 'd["run_s"]')"
printf '%-52s %12s   (load %ss, run %ss)\n' "medspaCy w/ spaCy sentencizer" "$MS_FAST_RATE" \
    "$(jget "$MS_FAST" 'd["load_s"]')" "$(jget "$MS_FAST" 'd["run_s"]')"
printf '%-52s %12s   (%ss incl. process start)\n' "careline triage --jsonl (first run)" "$CL_FIRST" "$FIRST"
printf '%-52s %12s   (%ss incl. process start)\n' "careline triage --jsonl (best of $RUNS)" "$CL_BEST" "$BEST"
echo
echo "careline is $(awk -v a="$CL_BEST" -v b="$MS_RATE" 'BEGIN { printf "%.1f", a / b }')x medspaCy (default pipeline)"
echo "careline is $(awk -v a="$CL_BEST" -v b="$MS_FAST_RATE" 'BEGIN { printf "%.1f", a / b }')x medspaCy (spaCy-sentencizer variant)"
echo
echo "flagged on the corpus:"
echo "  medspaCy  non-negated red-flag target:                 $(jget "$MS" 'd["flagged_nonneg"]')"
echo "  medspaCy  ... and not hypothetical/historical/family:  $(jget "$MS" 'd["flagged_strict"]')"
echo "  careline  emergency+urgent:                            $(jget "$CL" 'd["flagged"]')   $(jget "$CL" 'd["by_disposition"]')"

# 6. optional accuracy on the labelled dev set --------------------------------
if [[ -f "$DEV" && -z "${SKIP_DEV:-}" ]]; then
    say "6. dev set ($(wc -l < "$DEV") labelled messages): share of expected != routine that each flags"
    MSE=$("$VENV/bin/python" "$HERE/medspacy_bench.py" eval --dev "$DEV")
    "$PYTHON" "$HERE/careline_stats.py" strip --dev "$DEV" > "$WORK/dev.nolabels.jsonl"
    "$BIN" triage --jsonl < "$WORK/dev.nolabels.jsonl" > "$WORK/dev.careline.jsonl"
    CLE=$("$PYTHON" "$HERE/careline_stats.py" eval --dev "$DEV" --output "$WORK/dev.careline.jsonl")
    echo "$MSE"
    echo "$CLE"
    echo
    echo "  medspaCy recall (non-negated target):      $(jget "$MSE" 'd["recall_nonneg"]')   routine flagged: $(jget "$MSE" 'd["routine_flagged_nonneg"]')"
    echo "  medspaCy recall (strict ConText):          $(jget "$MSE" 'd["recall_strict"]')   routine flagged: $(jget "$MSE" 'd["routine_flagged_strict"]')"
    echo "  careline recall (emergency or urgent):     $(jget "$CLE" 'd["recall"]')   routine flagged: $(jget "$CLE" 'd["routine_flagged"]')   exact disposition: $(jget "$CLE" 'd["exact_accuracy"]')"
fi
