# Shared by the drill scripts (sourced, not run): their options, the load, the drill's life and
# the report. A scenario sets `target` and `mode`, may define the hooks below, then calls
# `parse "$@"` and `run_drill`.
#
# Options every script takes:
#   --cluster DIR   the running local cluster's folder (default Cluster/run/dev, what Cluster/up
#                   starts); its profile.json is used unless --profile names another
#   --profile P     a client profile (name or file)
#   --ttl 20s       longest the failure lasts (the drill lifts it, or the script ends it, then)
#   --load 45s      how long `coffre load` uploads and reads through --via
#   --via NZ        the coordinator the load goes through
#   --size BYTES    bytes per file the load writes (default 256 KiB)
#   --margin N      healthy shards beyond k the pre-flight and the abort keep
#
# Modes: stop, blackhole, slow (Coffre's fault layer puts them on and lifts them); kill (the
# script SIGKILLs the target's processes and starts them again once the drill's TTL is over);
# external (the scenario's hooks cause the failure and end it).
#
# Exit codes: 0 the drill recovered and every file the load stored read back bit-exact;
# 8 a file did not; 9 the pre-flight refused the drill; 1 anything else (not recovered, a
# scenario's own check failed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bin="${COFFRE_BIN:-$PWD/.build/release}"
coffre="$bin/coffre"
cluster=Cluster/run/dev profile="" via=NZ ttl=20s load=45s mode="${mode:-stop}" size=""
target=()
extra=()
margin=()
work=$(mktemp -d)
loader="" faulted=false failed=""

# Hooks a scenario may redefine.
setup() { :; }          # before the load starts (e.g. put a node on a small file system)
fault_on() { :; }       # right after the drill started: cause the failure
fault_off() { :; }      # once the drill's fault phase is over: end the failure
check() { :; }          # after the report: the scenario's own checks (call fail "why")
teardown() { :; }       # always, last

fail() { echo "FAILED: $*" >&2; failed="$failed $*"; }

parse() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --country|--node|--coordinator) target+=("$1" "$2"); shift 2 ;;
            --mode) mode="$2"; shift 2 ;;
            --latency|--loss) extra+=("$1" "$2"); shift 2 ;;
            --margin) margin=("$1" "$2"); shift 2 ;;
            --ttl) ttl="$2"; shift 2 ;;
            --load) load="$2"; shift 2 ;;
            --via) via="$2"; shift 2 ;;
            --size) size="$2"; shift 2 ;;
            --cluster) cluster="$2"; shift 2 ;;
            --profile) profile="$2"; shift 2 ;;
            *) echo "unknown argument $1 (see Cluster/drills/lib.sh)" >&2; exit 2 ;;
        esac
    done
    [ -n "$profile" ] || profile="$cluster/profile.json"
    [ ${#target[@]} -gt 0 ] || { echo "name a --country, --node or --coordinator" >&2; exit 2; }
}

c() { "$coffre" "$@" --profile "$profile"; }
# The local cluster's own processes (kill, start).
lc() { "$coffre" admin cluster "$@" --cluster "$cluster" --bin "$bin"; }
# A field of a JSON document on stdin: json_field drill.phase reads .phase.
json_field() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v.get(k) if isinstance(v,dict) else None
print("" if v is None else (json.dumps(v) if isinstance(v,(dict,list,bool)) else v))' "$1"; }
drill_field() { c admin drill status --json | json_field "$1"; }
seconds() { case "$1" in *h) echo $((${1%h} * 3600)) ;; *m) echo $((${1%m} * 60)) ;; *s) echo "${1%s}" ;; *) echo "$1" ;; esac; }
# Waits (at most $2 s) until the command in the other arguments succeeds.
await() {
    local what="$1" limit="$2"; shift 2
    for _ in $(seq 1 "$limit"); do "$@" && return 0; sleep 1; done
    echo "gave up waiting ($limit s) for: $what" >&2
    return 1
}
phase_is_not() { [ "$(drill_field phase)" != "$1" ]; }

# The target's processes, as `coffre admin cluster stop|start` selects them.
selection() {
    local i
    for ((i = 0; i < ${#target[@]}; i += 2)); do
        echo "${target[i]} ${target[i + 1]}"
    done
}
kill_target() { while read -r flag name; do lc stop "$flag" "$name" --kill; done < <(selection); }
start_target() { while read -r flag name; do lc start "$flag" "$name"; done < <(selection); }

cleanup() {
    [ -z "$loader" ] || kill "$loader" 2>/dev/null || true
    # A script that fails midway still ends its failure: nothing stays killed or filled.
    if $faulted; then fault_off || true; fi
    teardown || true
    rm -rf "$work"
}

run_drill() {
    trap cleanup EXIT
    local drill_mode="$mode" drill_target=("${target[@]}")
    case "$mode" in
        kill)
            drill_mode=external
            fault_on() { kill_target; }
            fault_off() { start_target; }
            # A country's coordinator goes down with its nodes.
            for ((i = 0; i < ${#target[@]}; i += 2)); do
                [ "${target[i]}" != --country ] || drill_target+=(--coordinator "${target[i + 1]}")
            done
            ;;
        stop|blackhole|slow|external) ;;
        *) echo "unknown mode $mode" >&2; exit 2 ;;
    esac
    local storage=() i
    for ((i = 0; i < ${#target[@]}; i += 2)); do
        [ "${target[i]}" = --coordinator ] || storage+=("${target[i]}" "${target[i + 1]}")
    done
    if [ ${#storage[@]} -gt 0 ]; then
        echo "== pre-flight"
        c admin drill preflight "${storage[@]}" ${margin[@]+"${margin[@]}"}
    fi
    setup
    echo "== load for $load through $via"
    "$coffre" load --profile "$profile" --via "$via" --duration "$load" ${size:+--size "$size"} --out "$work/load.json" 2>"$work/load.log" &
    loader=$!
    sleep 5
    echo "== drill: $mode ${target[*]} for at most $ttl"
    c admin drill start "${drill_target[@]}" --mode "$drill_mode" --ttl "$ttl" ${extra[@]+"${extra[@]}"} ${margin[@]+"${margin[@]}"}
    faulted=true
    fault_on
    await "the drill's fault phase to end" $(($(seconds "$ttl") + 120)) phase_is_not faulted
    echo "== the fault is over: $(c admin drill status --json | json_field liftReason)"
    fault_off
    faulted=false
    wait "$loader" || echo "(the load generator exited with $?: see the report)"
    loader=""
    echo "== waiting for the drill to end (full redundancy)"
    await "the drill to end" 600 phase_is_not recovering || true
    echo "== report"
    local status=0
    c admin drill report --load "$work/load.json" || status=$?
    check
    if [ -n "$failed" ] && [ $status -eq 0 ]; then status=1; fi
    exit $status
}
