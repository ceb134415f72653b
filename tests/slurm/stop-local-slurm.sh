#!/usr/bin/env bash
# Stop the local test cluster started by start-local-slurm.sh (only the daemons whose pids it
# recorded in $PCCD_SLURM_DIR/run, default /tmp/pccd-slurm/run).
#
#   tests/slurm/stop-local-slurm.sh            # stop; state, accounting db and logs are kept
#   tests/slurm/stop-local-slurm.sh --purge    # stop and delete the whole state folder
#   options: --dir DIR (state folder), --quiet
set -euo pipefail

STATE="${PCCD_SLURM_DIR:-/tmp/pccd-slurm}"
PURGE=0
QUIET=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dir) STATE="$2"; shift 2 ;;
        --dir=*) STATE="${1#*=}"; shift ;;
        --purge) PURGE=1; shift ;;
        --quiet) QUIET=1; shift ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "stop-local-slurm: unknown argument $1" >&2; exit 2 ;;
    esac
done
RUN="$STATE/run"

log() { [[ $QUIET == 1 ]] || echo "[stop-local-slurm] $*" >&2; }

running() {
    # A zombie (exited, not yet reaped by its parent) counts as stopped.
    [[ -e "/proc/$1" ]] && [[ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ]]
}

stop_pidfile() {
    # stop_pidfile FILE PROGRAM: TERM the recorded pid if it still runs PROGRAM, KILL after 10 s.
    local f=$1 prog=$2 pid t
    [[ -s "$f" ]] || { rm -f "$f"; return 0; }
    pid="$(cat "$f")"
    if [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$prog"; then
        log "stopping $prog (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((t = 0; t < 100; t++)); do
            running "$pid" || break
            sleep 0.1
        done
        if running "$pid"; then
            log "$prog (pid $pid) ignored TERM for 10 s; killing"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$f"
}

if [[ -d "$RUN" ]]; then
    for f in "$RUN"/slurmd-*.pid; do
        [[ -e "$f" && "$f" != *.self.pid ]] || continue
        stop_pidfile "$f" slurmd
    done
    stop_pidfile "$RUN/slurmctld.pid" slurmctld
    stop_pidfile "$RUN/slurmdbd.pid" slurmdbd
    stop_pidfile "$RUN/mariadbd.pid" mariadbd
    stop_pidfile "$RUN/munged.pid" munged
    rm -f "$RUN"/*.self.pid
fi

if [[ $PURGE == 1 && -d "$STATE" ]]; then
    log "removing $STATE"
    rm -rf "$STATE"
fi
