# Sourced by scripts/test.sh (under `set -euo pipefail`): start a throw-away single-node SLURM
# cluster for tests/slurm and export NOISECORR_TEST_SLURM=1 and SLURM_CONF.
#
# - installs slurm-wlm and munge with apt-get when slurmctld/munged are missing (root only);
# - everything lives in a fresh folder under /tmp (never inside the checkout): a munge key,
#   munged's socket, slurm.conf, slurmctld state, slurmd spool, pid and log files; the system's
#   own munge/slurm configuration is never read or changed (AuthInfo points at our socket);
# - one node, NodeName = `hostname -s`, NodeAddr 127.0.0.1, CPUs and RealMemory from `slurmd -C`;
#   proctrack/linuxproc, task/none, select/cons_tres (CR_CPU_Memory), MpiDefault=none (jobs ask
#   for --mpi=pmi2), SlurmUser=root, slurmctld and slurmd ports chosen free now;
# - waits (bounded, NOISECORR_SLURM_START_TIMEOUT seconds, default 60) until `sinfo` shows the
#   node idle;
# - stops the daemons and deletes the folder on exit, through the same chained EXIT hook list
#   as postgres.sh (noisecorr_on_exit FUNCTION), and a watchdog stops them too if this shell
#   dies without running its trap.
# Tests read NOISECORR_TEST_SLURM and SLURM_CONF (the slurm commands use SLURM_CONF).

# shellcheck source=../lib/exit_hooks.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/exit_hooks.sh"

_noisecorr_slurm_stop() {
    local dir="${_NOISECORR_SLURM_DIR:-}" name pid i
    [ -n "$dir" ] && [ -d "$dir" ] || return 0
    for name in slurmd slurmctld munged; do
        pid="$(cat "$dir/$name.pid" 2>/dev/null || true)"
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$dir"
}

_noisecorr_slurm_start() {
    local dir host cpus mem python ports ctl_port d_port i state
    # sourced twice in one shell: keep the cluster that is already answering
    if [ -n "${NOISECORR_TEST_SLURM:-}" ] && [ -n "${_NOISECORR_SLURM_DIR:-}" ] && [ -f "${SLURM_CONF:-}" ] \
        && timeout 10 sinfo -h >/dev/null 2>&1; then
        echo "slurm.sh: reusing the running test cluster (SLURM_CONF=$SLURM_CONF)" >&2
        return 0
    fi
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
        if [ "$(id -u)" != 0 ]; then
            echo "slurm.sh: slurm-wlm/munge are not installed and installing them needs root" >&2
            return 1
        fi
        echo "slurm.sh: installing slurm-wlm and munge (apt-get)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Options::=--force-confold \
            slurm-wlm munge >/dev/null
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "slurm.sh: the test cluster runs its daemons as root (SlurmUser=root); run as root" >&2
        return 1
    fi
    dir="$(mktemp -d /tmp/noisecorr-slurm.XXXXXX)"
    chmod 755 "$dir"
    _NOISECORR_SLURM_DIR="$dir"
    noisecorr_on_exit _noisecorr_slurm_stop
    mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
    chmod 700 "$dir/munge"

    # munge: our own key and socket, so the system's munged (if any) is left alone
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$dir/munge/munge.key"
    munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/socket" \
        --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/seed" \
        >/dev/null 2>&1 || { echo "slurm.sh: munged did not start:" >&2; cat "$dir/munged.log" >&2; return 1; }

    host="$(hostname -s)"
    # CPUs= and RealMemory= exactly as slurmd sees this machine (never more, or the node is drained)
    cpus="$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' | head -n 1)"
    mem="$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -n 1)"
    python="${VENV:+$VENV/bin/}python3"
    command -v "$python" >/dev/null || python=python3
    ports="$("$python" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')"
    ctl_port="${ports% *}"
    d_port="${ports#* }"
    cat >"$dir/slurm.conf" <<EOF
# written by scripts/services/slurm.sh for the noisecorr tests; removed on exit
ClusterName=noisecorr-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctl_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=86400
KillWait=5
DisableRootJobs=NO
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF="$dir/slurm.conf"
    slurmctld -f "$SLURM_CONF" >"$dir/slurmctld.stdout" 2>&1 \
        || { echo "slurm.sh: slurmctld did not start:" >&2; cat "$dir/slurmctld.stdout" "$dir/slurmctld.log" >&2 2>/dev/null; return 1; }
    slurmd -f "$SLURM_CONF" >"$dir/slurmd.stdout" 2>&1 \
        || { echo "slurm.sh: slurmd did not start:" >&2; cat "$dir/slurmd.stdout" "$dir/slurmd.log" >&2 2>/dev/null; return 1; }
    state=""
    for i in $(seq "$((${NOISECORR_SLURM_START_TIMEOUT:-60} * 2))"); do
        state="$(sinfo -h -n "$host" -o %T 2>/dev/null || true)"
        [ "$state" = idle ] && break
        sleep 0.5
    done
    if [ "$state" != idle ]; then
        echo "slurm.sh: node $host is '${state:-unknown}', not idle, after ${NOISECORR_SLURM_START_TIMEOUT:-60} s:" >&2
        tail -n 30 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 2>/dev/null || true
        return 1
    fi
    # watchdog: stop the daemons if this shell goes away without running its EXIT trap
    (
        trap - EXIT
        while kill -0 "$$" 2>/dev/null; do sleep 2; done
        _noisecorr_slurm_stop
    ) </dev/null >/dev/null 2>&1 &
    disown $! 2>/dev/null || true
    export NOISECORR_TEST_SLURM=1
    echo "slurm.sh: SLURM $(sinfo -V | awk '{print $2}') node $host ($cpus CPUs, $mem MB) idle," \
        "SLURM_CONF=$SLURM_CONF" >&2
}

_noisecorr_slurm_start
