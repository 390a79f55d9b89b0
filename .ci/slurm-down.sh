#!/usr/bin/env bash
# Stop the local test cluster started by .ci/slurm-up.sh.
#
# Only the daemons whose PIDs slurm-up.sh recorded are stopped (slurmd, slurmctld, munged, in
# that order), and only while each PID still names the program it was recorded for. Jobs still
# queued or running on the test cluster are cancelled through SLURM first; the slurm.conf that
# slurm-up.sh wrote is removed last. Safe to run twice.
#
# Environment: SPECTSYNTH_SLURM_STATE (default /tmp/spectsynth-slurm), as for slurm-up.sh.
set -uo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

STATE=${SPECTSYNTH_SLURM_STATE:-/tmp/spectsynth-slurm}

log() { printf '[slurm-down] %s\n' "$*" >&2; }

# Print the PID recorded in PIDFILE if it still belongs to PROGRAM.
recorded_pid() { # recorded_pid PIDFILE PROGRAM
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/comm && $(</proc/"$pid"/comm) == "$2" ]] || return 1
    printf '%s\n' "$pid"
}

if [[ ! -d $STATE ]]; then
    log "nothing to stop: $STATE does not exist"
    exit 0
fi

# Cancel this cluster's jobs while slurmctld still answers, so no job step outlives its daemons.
if recorded_pid "$STATE"/slurmctld.pid slurmctld >/dev/null; then
    jobs=$(squeue --noheader --format=%i 2>/dev/null | tr '\n' ' ')
    if [[ -n ${jobs// /} ]]; then
        log "cancelling jobs $jobs"
        # shellcheck disable=SC2086  # one argument per job id
        scancel $jobs 2>/dev/null || true
        for _ in $(seq 30); do
            [[ -z $(squeue --noheader --states=PENDING,RUNNING,COMPLETING --format=%i 2>/dev/null) ]] && break
            sleep 1
        done
    fi
fi

status=0
for d in slurmd slurmctld munged; do
    pidfile=$STATE/$d.pid
    if ! pid=$(recorded_pid "$pidfile" "$d"); then
        [[ -e $pidfile ]] && log "$d: recorded PID is no longer running"
        rm -f "$pidfile"
        continue
    fi
    log "stopping $d (PID $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        recorded_pid "$pidfile" "$d" >/dev/null || break
        sleep 0.1
    done
    if recorded_pid "$pidfile" "$d" >/dev/null; then
        log "$d (PID $pid) ignored SIGTERM for 10 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    if recorded_pid "$pidfile" "$d" >/dev/null; then
        log "ERROR: $d (PID $pid) is still running"
        status=1
    else
        rm -f "$pidfile"
    fi
done
# The configuration goes with the daemons (slurm-up.sh writes it again). Left behind, it points
# every SLURM command at a controller that no longer answers: the Snakemake SLURM plugin runs
# `scontrol show config` whenever Snakemake starts (any executor) and waits its 10 s timeout.
# shellcheck source=slurm-conf.sh
source "$(dirname "${BASH_SOURCE[0]}")/slurm-conf.sh"
if ((status == 0)) && [[ -f $CONF ]] && grep -qF "$MARKER" "$CONF"; then
    rm -f "$CONF" && log "removed $CONF (written by slurm-up.sh)"
fi
((status == 0)) && log "all daemons started by slurm-up.sh are stopped (logs kept in $STATE)"
exit "$status"
