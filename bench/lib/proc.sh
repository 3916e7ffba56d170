# Process helpers shared by the benchmark scripts. Source it (bash), then:
#   say TEXT...         print "== TEXT" to stderr, as a section heading
#   stop_pids PID...    SIGTERM each live process, wait up to 10 s for each,
#                       then SIGKILL what is left (empty arguments are skipped)

say() { printf '\n== %s\n' "$*" >&2; }

stop_pids() {
    local pid
    for pid in "$@"; do
        [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true
    done
    for pid in "$@"; do
        [[ -n "$pid" ]] || continue
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
    done
}
