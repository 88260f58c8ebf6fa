#!/usr/bin/env bash
# A real single-node Slurm on this machine, for the Slurm launcher's test (and for trying
# the launcher by hand): installs slurm-wlm and munge if missing, writes a minimal
# slurm.conf for this host, starts munged, slurmctld and slurmd, and waits until the node
# takes jobs. Idempotent; needs root. Stop it with: scripts/slurm-single-node.sh stop
set -euo pipefail

running() { ps -C "$1" -o stat= 2>/dev/null | grep -q '^[^Z]'; }   # zombies do not count

if [ "${1:-}" = stop ]; then
    pkill -x slurmd || true; pkill -x slurmctld || true; pkill -x munged || true
    for _ in $(seq 1 50); do running slurmd || running slurmctld || running munged || exit 0; sleep 0.2; done
    exit 0
fi

missing=$(for p in slurm-wlm munge; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

node=$(hostname -s)
cpus=$(nproc)
memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /var/lib/munge /var/log/munge
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=prunesweep
SlurmctldHost=$node
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
NodeName=$node CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
rm -f /etc/slurm/cgroup.conf   # autodetect: Slurm 22.05 has no way to run without a cgroup plugin

if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 400 /etc/munge/munge.key
# Ask the daemons rather than the process table: a dead one may linger there as a zombie.
munge -n >/dev/null 2>&1 || su -s /bin/sh munge -c munged 2>/dev/null || munged --force
scontrol ping 2>/dev/null | grep -q UP || slurmctld
running slurmd || slurmd

for _ in $(seq 1 60); do
    if sinfo -h -o '%T' 2>/dev/null | grep -qE 'idle|mixed|alloc'; then
        scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
        echo "slurm: node $node up with $cpus CPUs"
        exit 0
    fi
    scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
    sleep 1
done
echo "slurm did not come up; see /var/log/slurm/*.log" >&2
exit 1
