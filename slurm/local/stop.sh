#!/usr/bin/env bash
# Stop the local SLURM cluster that start.sh started, and only that: each pid file in
# <base>/pids names one daemon start.sh launched; they are ended in reverse start order
# (slurmd, slurmctld, slurmdbd, MariaDB, munged) with SIGTERM, then SIGKILL after 10 s.
# A pid whose process is gone (or is now another program) is skipped. Safe to run twice.
#
#   slurm/local/stop.sh [--base DIR]        (base default /var/lib/cwn-slurm)
set -euo pipefail

base=${CWN_SLURM_BASE:-/var/lib/cwn-slurm}
while (($#)); do
    case $1 in
        --base) base=$2; shift 2 ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "stop.sh: unknown argument '$1' (expected --base DIR)" >&2; exit 2 ;;
    esac
done
pids=$base/pids
[[ -d $pids ]] || { echo "stop.sh: nothing to stop (no $pids)"; exit 0; }

ours() {  # ours PIDFILE: the pid is alive and still runs the program the file is named after
    local pid name
    pid=$(cat "$1" 2>/dev/null) || return 1
    name=$(basename "$1" .pid)
    name=${name#*-}
    name=${name%%-*}  # 50-slurmd-n1 -> slurmd
    [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$name"
}

mapfile -t files < <(ls -1 "$pids"/*.pid 2>/dev/null | sort -r)
for f in "${files[@]}"; do
    if ours "$f"; then
        pid=$(cat "$f")
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
        echo "stop.sh: stopped $(basename "$f" .pid) (pid $pid)"
    fi
    rm -f "$f"
done
