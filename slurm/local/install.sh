#!/usr/bin/env bash
# Install what the local SLURM cluster needs (Debian/Ubuntu, as root): slurm-wlm, munge,
# slurmdbd + MariaDB (so sacct works). Idempotent: apt runs only when a
# program is missing, and then once (update + install, ~10-25 s). No daemon is started
# here (the image's policy-rc.d blocks that anyway): start.sh starts them itself.
set -euo pipefail

need=()
for pair in slurmctld:slurm-wlm slurmd:slurm-wlm sbatch:slurm-client munged:munge \
            slurmdbd:slurmdbd mariadbd:mariadb-server; do
    prog=${pair%%:*}
    command -v "$prog" >/dev/null 2>&1 || [[ -x /usr/sbin/$prog ]] || need+=("${pair#*:}")
done
if ((${#need[@]} == 0)); then
    echo "slurm/local/install.sh: everything present"
    exit 0
fi
if [[ $(id -u) != 0 ]]; then
    echo "slurm/local/install.sh: missing ${need[*]}; run as root (apt-get install)" >&2
    exit 1
fi
# slurm-wlm pulls slurmctld, slurmd and the client (sbatch, sacct, scontrol).
echo "slurm/local/install.sh: missing $(printf '%s\n' "${need[@]}" | sort -u | xargs); installing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends slurm-wlm munge slurmdbd mariadb-server >/dev/null
echo "slurm/local/install.sh: done"
