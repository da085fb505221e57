#!/usr/bin/env bash
# Start a real SLURM cluster on this machine: munged, MariaDB + slurmdbd (so sacct works),
# slurmctld and one slurmd (node = short hostname) or, with --nodes 2, two slurmd on
# one host (nodes n1, n2; distinct ports). Run as root after install.sh.
#
#   slurm/local/start.sh [--nodes 1|2] [--base DIR] [--port P] [--max-array-size N] [--no-accounting]
#
# --base: default /var/lib/cwn-slurm. --port: slurmctld's port (default 6817); the
# slurmd take P+1 (and P+3), slurmdbd P+2. --max-array-size: the cluster's MaxArraySize
# (tasks per job array; SLURM's default 1001). --no-accounting: no MariaDB/slurmdbd
# (sacct then fails, as on clusters without accounting).
# A second cluster can run beside the default one: another --base, another --port and
# --no-accounting (MariaDB's socket is the default one's); it reuses the running munged
# (same key) and leaves /etc/slurm/slurm.conf alone; its clients need its SLURM_CONF.
# Every daemon runs in the foreground under setsid, in the background of this script;
# its pid goes to <base>/pids/NN-name.pid so that stop.sh ends exactly those processes.
# Idempotent: a cluster this script started with the same options is reused; one with
# other options is stopped and restarted. Prints `export SLURM_CONF=...` last; the
# default base's config is also linked at /etc/slurm/slurm.conf unless another one
# already sits there.
# Settings: ../../../shared/notes/local-slurm.md (AuthInfo cred_expire=30: a requeued
# job waits ~30 s before it runs again).
set -euo pipefail

nodes=1
default_base=/var/lib/cwn-slurm
base=${CWN_SLURM_BASE:-$default_base}
port=6817
max_array_size=
accounting=1
while (($#)); do
    case $1 in
        --nodes) nodes=$2; shift 2 ;;
        --base) base=$2; shift 2 ;;
        --port) port=$2; shift 2 ;;
        --max-array-size) max_array_size=$2; shift 2 ;;
        --no-accounting) accounting=0; shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "start.sh: unknown argument '$1' (expected --nodes 1|2, --base DIR, --port P," \
                "--max-array-size N, --no-accounting)" >&2; exit 2 ;;
    esac
done
[[ $nodes == 1 || $nodes == 2 ]] || { echo "start.sh: --nodes must be 1 or 2, got '$nodes'" >&2; exit 2; }
[[ $port =~ ^[0-9]+$ ]] && ((port >= 1024 && port <= 65530)) \
    || { echo "start.sh: --port must be a number in 1024-65530, got '$port'" >&2; exit 2; }
[[ -z $max_array_size || $max_array_size =~ ^[1-9][0-9]*$ ]] \
    || { echo "start.sh: --max-array-size must be a positive number, got '$max_array_size'" >&2; exit 2; }
base=$(realpath -m "$base")
[[ $(id -u) == 0 ]] || { echo "start.sh: must run as root (daemons, /etc/hosts, munge key)" >&2; exit 1; }
for prog in munged mariadbd slurmdbd slurmctld slurmd sinfo sacctmgr; do
    command -v "$prog" >/dev/null || [[ -x /usr/sbin/$prog ]] \
        || { echo "start.sh: $prog not found; run slurm/local/install.sh first" >&2; exit 1; }
done
export PATH=$PATH:/usr/sbin
here=$(cd "$(dirname "$0")" && pwd)
conf=$base/etc/slurm.conf
export SLURM_CONF=$conf
pids=$base/pids
log=$base/log

alive() {  # every pid file names a live process
    local f n=0
    for f in "$pids"/*.pid; do
        [[ -e $f ]] || return 1
        kill -0 "$(cat "$f")" 2>/dev/null || return 1
        n=$((n + 1))
    done
    ((n > 0))
}

wait_for() {  # wait_for SECONDS WHAT COMMAND...: poll every 0.5 s
    local limit=$1 what=$2 i
    shift 2
    for ((i = 0; i < limit * 2; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    echo "start.sh: $what not ready after ${limit}s; logs in $log" >&2
    tail -n 20 "$log"/*.log >&2 || true
    return 1
}

nodes_idle() {  # every node of the partition is idle (or mixed/allocated)
    local states
    states=$(sinfo -h -N -o '%T' 2>/dev/null) || return 1
    [[ -n $states ]] && ! grep -qvE '^(idle|mixed|allocated)$' <<<"$states"
}

# Options besides the node count (kept in <base>/nodes, as before): a base started
# before this file existed ran with the defaults.
options="port=$port max_array_size=$max_array_size accounting=$accounting"
started_with() { [[ $(cat "$base/options" 2>/dev/null || echo "port=6817 max_array_size= accounting=1") == "$options" ]]; }
if alive && [[ $(cat "$base/nodes" 2>/dev/null) == "$nodes" ]] && started_with && nodes_idle; then
    echo "start.sh: cluster already running ($nodes node(s), base $base)"
    echo "export SLURM_CONF=$conf"
    exit 0
fi
[[ -d $pids ]] && "$here/stop.sh" --base "$base"
mariadb_socket=/run/mysqld/mysqld.sock
if ((accounting)) && [[ $base != "$default_base" && -S $mariadb_socket ]] \
        && mariadb --socket=$mariadb_socket -e 'select 1' >/dev/null 2>&1; then
    echo "start.sh: MariaDB already serves $mariadb_socket (another cluster's accounting);" \
         "start this one with --no-accounting" >&2
    exit 1
fi

host=$(hostname -s)
cpus=$(nproc)
# Half of the free memory, split over the nodes, in MB (RealMemory must not exceed it).
mem=$(( $(awk '/MemAvailable/ {print int($2 / 1024)}' /proc/meminfo) / 2 / nodes ))
mkdir -p "$base"/{etc,state,spool,mysql,run} "$pids" "$log"
echo "$nodes" >"$base/nodes"
echo "$options" >"$base/options"

# ---- config files
if ((nodes == 1)); then
    node_lines="NodeName=$host NodeAddr=127.0.0.1 Port=$((port + 1)) CPUs=$cpus RealMemory=$mem State=UNKNOWN"
    node_names=("$host")
else
    node_lines="NodeName=n1 NodeHostname=$host NodeAddr=127.0.0.1 Port=$((port + 1)) CPUs=$cpus RealMemory=$mem State=UNKNOWN
NodeName=n2 NodeHostname=$host NodeAddr=127.0.0.1 Port=$((port + 3)) CPUs=$cpus RealMemory=$mem State=UNKNOWN"
    node_names=(n1 n2)
    # MASTER_ADDR=n1 must resolve inside jobs.
    grep -qE '^127\.0\.0\.1\s+n1 n2(\s|$)' /etc/hosts || echo "127.0.0.1 n1 n2" >>/etc/hosts
fi
if ((accounting)); then
    accounting_lines="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$((port + 2))"
else
    accounting_lines="AccountingStorageType=accounting_storage/none"
fi
cat >"$conf" <<EOF
# written by cwn-bench slurm/local/start.sh ($nodes node(s), $options)
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=30
StateSaveLocation=$base/state
SlurmdSpoolDir=$base/spool/slurmd-%n
SlurmctldPidFile=$base/run/slurmctld.pid
SlurmdPidFile=$base/run/slurmd-%n.pid
SlurmctldLogFile=$log/slurmctld.log
SlurmdLogFile=$log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
$accounting_lines
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SchedulerParameters=sched_interval=2,bf_interval=5
JobRequeue=1
MinJobAge=600
KillWait=10
${max_array_size:+MaxArraySize=$max_array_size}
$node_lines
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
cat >"$base/etc/slurmdbd.conf" <<EOF
DbdHost=$host
DbdAddr=127.0.0.1
DbdPort=$((port + 2))
SlurmUser=root
PidFile=$base/run/slurmdbd.pid
LogFile=$log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
EOF
chmod 600 "$base/etc/slurmdbd.conf"
# Clients (sbatch, sacct, submitit) read /etc/slurm/slurm.conf unless SLURM_CONF is set.
mkdir -p /etc/slurm
if [[ $base == "$default_base" ]] && [[ ! -e /etc/slurm/slurm.conf || -L /etc/slurm/slurm.conf ]]; then
    ln -sfn "$conf" /etc/slurm/slurm.conf
elif [[ $base == "$default_base" ]]; then
    echo "start.sh: /etc/slurm/slurm.conf is not ours; clients need: export SLURM_CONF=$conf" >&2
fi

launch() {  # launch NAME COMMAND...: run in the background in its own session
    local name=$1
    shift
    setsid "$@" >>"$log/$name.out" 2>&1 </dev/null &
    echo $! >"$pids/$name.pid"
}

# ---- munge: one daemon per host; a cluster beside another uses the running one
munge_up() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
if munge_up; then
    echo "start.sh: using the munged already running (socket /run/munge/munge.socket.2)"
else
    mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
    [[ -s /etc/munge/munge.key ]] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=128 status=none
    chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
    chmod 0700 /etc/munge && chmod 0400 /etc/munge/munge.key && chmod 0755 /run/munge
    launch 10-munged setpriv --reuid=munge --regid=munge --init-groups munged -F --force
    wait_for 10 munged munge_up
fi

# ---- MariaDB (own data dir, socket only) + slurmdbd
if ((accounting)); then
    if [[ ! -d $base/mysql/mysql ]]; then
        mariadb-install-db --user=root --datadir="$base/mysql" --auth-root-authentication-method=socket \
            >>"$log/mariadb-install.out" 2>&1
    fi
    mkdir -p /run/mysqld
    launch 20-mariadbd mariadbd --user=root --datadir="$base/mysql" --skip-networking \
        --socket=$mariadb_socket --pid-file="$base/run/mariadbd.pid" --log-error="$log/mariadbd.log"
    wait_for 30 mariadbd mariadb --socket=$mariadb_socket -e 'select 1'
    launch 30-slurmdbd slurmdbd -D  # reads slurmdbd.conf beside $SLURM_CONF
    wait_for 30 slurmdbd sacctmgr -n list cluster
    sacctmgr -i -n list cluster format=cluster | grep -qw local || sacctmgr -i add cluster local >/dev/null
fi

# ---- controller and node daemons
launch 40-slurmctld slurmctld -D -i -f "$conf"
wait_for 30 slurmctld scontrol ping
if ((nodes == 1)); then
    launch 50-slurmd slurmd -D -f "$conf"
else
    launch 50-slurmd-n1 slurmd -D -N n1 -f "$conf"
    launch 51-slurmd-n2 slurmd -D -N n2 -f "$conf"
fi
wait_for 60 "nodes ${node_names[*]}" nodes_idle
echo "start.sh: cluster up: $nodes node(s) (${node_names[*]}), base $base"
echo "export SLURM_CONF=$conf"
