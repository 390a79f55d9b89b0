#!/usr/bin/env bash
# Start a single-node SLURM cluster on localhost from Debian's packages, for tests and CI.
#
#   bash .ci/slurm-up.sh        # install (if needed), configure, start, wait until the node is idle
#   bash .ci/slurm-down.sh      # stop every daemon this script started (by the PIDs it recorded)
#
# Idempotent: a second call with the daemons still running only checks that the node is idle.
# Needs root (it installs packages and writes /etc/slurm/slurm.conf, the path every SLURM
# command and every job reads: the Snakemake SLURM plugin strips SLURM_* variables, so
# SLURM_CONF cannot be used).
#
# Environment:
#   SPECTSYNTH_SLURM_STATE   state/log/PID folder          (default /tmp/spectsynth-slurm)
#   SPECTSYNTH_SLURM_TIMEOUT seconds to wait for the node  (default 90)
#   SPECTSYNTH_SLURM_FORCE   1 = overwrite a slurm.conf this script did not write
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

STATE=${SPECTSYNTH_SLURM_STATE:-/tmp/spectsynth-slurm}
TIMEOUT=${SPECTSYNTH_SLURM_TIMEOUT:-90}
# shellcheck source=slurm-conf.sh
source "$(dirname "${BASH_SOURCE[0]}")/slurm-conf.sh"
PARTITION=debug
# Finished jobs stay visible to squeue this long. The Snakemake SLURM plugin asks squeue for job
# states; it needs MinJobAge of at least 3x its first status delay (40 s by default), otherwise it
# falls back to sacct, which answers "accounting storage is disabled" without slurmdbd and then
# waits forever. An hour keeps every job of a whole test run visible until the test checks it.
PLUGIN_INITIAL_STATUS_DELAY=40
MIN_JOB_AGE=3600
((MIN_JOB_AGE >= 3 * PLUGIN_INITIAL_STATUS_DELAY)) || { echo "MinJobAge too short" >&2; exit 1; }

log() { printf '[slurm-up] %s\n' "$*" >&2; }

die() {
    log "ERROR: $*"
    for f in /var/log/munge/munged.log "$STATE"/slurmctld.log "$STATE"/slurmd.log; do
        if [[ -s $f ]]; then
            printf '\n----- last lines of %s -----\n' "$f" >&2
            tail -n 40 "$f" >&2
        fi
    done
    exit 1
}

if [[ $(id -u) -ne 0 ]]; then
    die "run as root: it installs Debian packages and writes $CONF (use sudo bash .ci/slurm-up.sh)."
fi

# A PID file names a live process of the expected program.
alive() { # alive PIDFILE PROGRAM
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/comm ]] || return 1
    [[ $(</proc/"$pid"/comm) == "$2" ]]
}

# ---------------------------------------------------------------- packages
need=()
for prog in slurmctld:slurmctld slurmd:slurmd sinfo:slurm-client munged:munge; do
    command -v "${prog%%:*}" >/dev/null 2>&1 || need+=("${prog#*:}")
done
if ((${#need[@]})); then
    log "installing ${need[*]} from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed; check the network or the apt sources."
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null ||
        die "apt-get install slurmctld slurmd slurm-client munge failed (see above)."
fi

mkdir -p "$STATE"/slurmctld "$STATE"/slurmd
chmod 755 "$STATE"

# ---------------------------------------------------------------- munge
install -d -m 700 /etc/munge
install -d -m 755 /run/munge
install -d -m 700 /var/lib/munge /var/log/munge
if getent passwd munge >/dev/null; then
    chown munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
fi
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
fi
chmod 400 /etc/munge/munge.key
if getent passwd munge >/dev/null; then
    chown munge:munge /etc/munge/munge.key
fi

if alive "$STATE"/munged.pid munged; then
    log "munged already running (PID $(<"$STATE"/munged.pid))"
else
    log "starting munged"
    # munged refuses a key or folders owned by another user; the Debian package creates the
    # 'munge' user and owns them by it, so run the daemon as that user.
    rm -f /run/munge/munged.pid
    as_munge=()
    getent passwd munge >/dev/null && as_munge=(runuser -u munge --)
    "${as_munge[@]}" munged --pid-file=/run/munge/munged.pid --log-file=/var/log/munge/munged.log ||
        die "munged did not start."
    for _ in $(seq 50); do
        [[ -s /run/munge/munged.pid ]] && break
        sleep 0.1
    done
    [[ -s /run/munge/munged.pid ]] || die "munged wrote no PID file (/run/munge/munged.pid)."
    cp /run/munge/munged.pid "$STATE"/munged.pid
    alive "$STATE"/munged.pid munged || die "munged exited right after starting."
fi
munge -n | unmunge >/dev/null 2>&1 || die "munge cannot encode/decode a credential (munged not answering)."

# ---------------------------------------------------------------- slurm.conf
host=$(hostname -s)
# What slurmd detects on this machine; never configure more than that (the node would be drained).
detected=$(slurmd -C 2>/dev/null | head -n 1) || true
det_cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$detected")
det_mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$detected")
cpus=$(nproc)
[[ -n $det_cpus && $det_cpus -lt $cpus ]] && cpus=$det_cpus
mem_total=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
[[ -n $det_mem && $det_mem -lt $mem_total ]] && mem_total=$det_mem
# Leave 5 % (at least 512 MB) for the daemons and the Snakemake process itself.
reserve=$((mem_total / 20 > 512 ? mem_total / 20 : 512))
real_mem=$((mem_total - reserve))
def_mem_per_cpu=$((real_mem / cpus))

if [[ -e $CONF ]] && ! grep -qF "$MARKER" "$CONF" && [[ ${SPECTSYNTH_SLURM_FORCE:-0} != 1 ]]; then
    die "$CONF exists and was not written by this script; this machine may belong to a real cluster. \
Set SPECTSYNTH_SLURM_FORCE=1 to overwrite it."
fi

new_conf=$(mktemp)
cat >"$new_conf" <<EOF
$MARKER
ClusterName=spectsynth
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# Every finished job is also written to a text file (state, exit code), which outlives MinJobAge.
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/jobcomp.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=$def_mem_per_cpu
ReturnToService=2
# Refuse at submission a job that asks more than the node has, instead of leaving it PENDING
# (reason PartitionConfig) forever while Snakemake waits for it.
EnforcePartLimits=ALL
MailProg=/bin/true
# Finished jobs stay visible to squeue this long (the Snakemake plugin's status command).
MinJobAge=$MIN_JOB_AGE
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
mkdir -p /etc/slurm
conf_changed=0
if ! cmp -s "$new_conf" "$CONF" 2>/dev/null; then
    install -m 644 "$new_conf" "$CONF"
    conf_changed=1
    log "wrote $CONF (node $host: $cpus CPUs, RealMemory=$real_mem MB, DefMemPerCPU=$def_mem_per_cpu MB)"
fi
rm -f "$new_conf"

# ---------------------------------------------------------------- slurmctld, slurmd
if ((conf_changed)); then
    # Daemons started with an older configuration must not keep running with it.
    for d in slurmd slurmctld; do
        if alive "$STATE/$d.pid" "$d"; then
            log "configuration changed: restarting $d"
            kill "$(<"$STATE/$d.pid")"
            for _ in $(seq 50); do
                alive "$STATE/$d.pid" "$d" || break
                sleep 0.2
            done
        fi
    done
fi

if alive "$STATE"/slurmctld.pid slurmctld; then
    log "slurmctld already running (PID $(<"$STATE"/slurmctld.pid))"
else
    log "starting slurmctld"
    rm -f "$STATE"/slurmctld.pid
    slurmctld -f "$CONF" || die "slurmctld did not start."
fi
if alive "$STATE"/slurmd.pid slurmd; then
    log "slurmd already running (PID $(<"$STATE"/slurmd.pid))"
else
    log "starting slurmd"
    rm -f "$STATE"/slurmd.pid
    slurmd -f "$CONF" -N "$host" || die "slurmd did not start."
fi
for d in slurmctld slurmd; do
    for _ in $(seq 50); do
        alive "$STATE/$d.pid" "$d" && break
        sleep 0.2
    done
    alive "$STATE/$d.pid" "$d" || die "$d is not running (no live PID in $STATE/$d.pid)."
done

# ---------------------------------------------------------------- wait for an idle node
log "waiting up to ${TIMEOUT}s for node $host to be idle"
deadline=$((SECONDS + TIMEOUT))
state=""
while ((SECONDS < deadline)); do
    state=$(sinfo --noheader --nodes="$host" --format=%T 2>/dev/null | head -n 1 || true)
    case $state in
    idle | mixed | allocated) break ;;
    drained* | draining* | down*)
        # A node marked down/drained by an earlier run with another configuration.
        scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true
        ;;
    esac
    sleep 1
done
case $state in
idle | mixed | allocated) ;;
*) die "node $host is '${state:-not listed}' after ${TIMEOUT}s (sinfo; reason: \
$(sinfo --noheader --nodes="$host" --format=%E 2>/dev/null || echo unknown))." ;;
esac
log "SLURM is up: partition '$PARTITION', node $host $state; PIDs in $STATE (stop with .ci/slurm-down.sh)"
sinfo
