#!/usr/bin/env bash
# A real single-node Slurm on this (Debian) machine, for the Slurm tests and for trying the grid path:
# installs munge, slurmctld, slurmd and the client tools, writes a munge key and a slurm.conf for this
# host, starts the daemons directly (no systemd here) and waits until the node is idle.
#
#   scripts/slurm-single-node.sh [--gpus N]     N placeholder GPUs (gres.conf on /dev/null-like character
#                                               devices): lets a GPU submission be checked without a GPU
#
# Partitions: `debug` (the default, CPU jobs) and `gpu` (the same node; with --gpus, its placeholder GPUs).
# No accounting database (slurmdbd): the suite asks squeue whether a job is queued, as small clusters need.
# Fails with the reason when the packages cannot be installed; it never skips.
set -euo pipefail
gpus=0
if [ "${1:-}" = "--gpus" ]; then gpus="${2:?--gpus needs a number}"; fi
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  $SUDO apt-get update -qq || { echo "slurm-single-node: apt-get update failed" >&2; exit 1; }
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq munge slurmctld slurmd slurm-client >/dev/null \
    || { echo "slurm-single-node: could not install munge slurmctld slurmd slurm-client" >&2; exit 1; }
fi

host="$(hostname -s)"
cpus="$(nproc)"
mem_mb="$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))"

# munge: one key, its own user, its socket folder
if [ ! -s /etc/munge/munge.key ]; then
  $SUDO dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
$SUDO chown munge:munge /etc/munge/munge.key && $SUDO chmod 400 /etc/munge/munge.key
$SUDO mkdir -p /run/munge /var/log/munge /var/lib/munge && $SUDO chown munge:munge /run/munge /var/log/munge /var/lib/munge
pgrep -x munged >/dev/null || $SUDO runuser -u munge -- /usr/sbin/munged

gres_node=""
gres_types=""
if [ "$gpus" -gt 0 ]; then
  gres_types="GresTypes=gpu"
  gres_node="Gres=gpu:$gpus"
  files=""
  for i in $(seq 0 $((gpus - 1))); do
    [ -e "/dev/hyperbench-gpu$i" ] || $SUDO mknod "/dev/hyperbench-gpu$i" c 1 3  # a placeholder device, like /dev/null
    files="${files:+$files,}/dev/hyperbench-gpu$i"
  done
  echo "NodeName=$host Name=gpu File=${files}" | $SUDO tee /etc/slurm/gres.conf >/dev/null
else
  $SUDO rm -f /etc/slurm/gres.conf
fi

$SUDO mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
$SUDO tee /etc/slurm/slurm.conf >/dev/null <<EOF
ClusterName=hyperbench
SlurmctldHost=$host
AuthType=auth/munge
SlurmUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=300
$gres_types
NodeName=$host CPUs=$cpus RealMemory=$mem_mb $gres_node State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host MaxTime=INFINITE State=UP
EOF

# (re)start the daemons with this configuration
$SUDO pkill -x slurmctld 2>/dev/null || true
$SUDO pkill -x slurmd 2>/dev/null || true
sleep 1
$SUDO /usr/sbin/slurmctld
$SUDO /usr/sbin/slurmd
for _ in $(seq 1 60); do
  state="$(sinfo -h -n "$host" -o %t 2>/dev/null | head -1 || true)"
  if [ "$state" = "idle" ]; then
    echo "slurm-single-node: $host idle, $cpus CPUs, ${mem_mb} MB, $gpus placeholder GPU(s); partitions debug (default), gpu"
    exit 0
  fi
  sleep 1
done
echo "slurm-single-node: the node did not become idle (state '${state:-none}'); see /var/log/slurm/" >&2
exit 1
