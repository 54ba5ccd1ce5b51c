#!/usr/bin/env bash
# A real single-node SLURM on localhost for the SLURM tests (tests/test_slurm.py).
#
# Idempotent and fast when SLURM is already up. Installs Debian's slurmctld, slurmd, slurm-client
# and munge when missing (root + apt only), writes a minimal /etc/slurm/slurm.conf for this host
# (no cgroups, no accounting, one partition "debug"), starts munged, slurmctld and slurmd directly
# (no systemd needed), and waits until the node is idle and `srun -N1 true` works.
#
# Exit 0: SLURM works. Exit non-zero: the last line on stderr says why (the test fixture shows it
# as the skip reason). The same reason is written to $EFFDATA_SLURM_STATUS (default
# /tmp/effdata-slurm-up.status): "ok" or "failed: <reason>".
#
# It never touches a slurm.conf it did not write: on a machine with a real SLURM it only checks
# that `srun -N1 true` works.
set -u
export LC_ALL=C
STATUS_FILE="${EFFDATA_SLURM_STATUS:-/tmp/effdata-slurm-up.status}"
CONF=/etc/slurm/slurm.conf
MARKER="# written by effdata .ci/slurm-up.sh"
LOGDIR=/var/log/slurm
WAIT_S="${EFFDATA_SLURM_WAIT:-60}"

say() { echo "slurm-up: $*"; }
fail() {
  echo "slurm-up: FAILED: $*" >&2
  echo "failed: $*" > "$STATUS_FILE" 2>/dev/null || true
  exit 1
}
ok() {
  say "$*"
  echo "ok" > "$STATUS_FILE" 2>/dev/null || true
  exit 0
}
# true if `srun -N1 true` runs within 20 s
srun_works() { timeout 20 srun -N1 -t 1 true >/dev/null 2>&1; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null; }

host="$(hostname -s)"
[ -n "$host" ] || fail "hostname -s printed nothing"

# A SLURM this script did not configure: use it as it is, or give up without touching it.
if [ -f "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
  if command -v srun >/dev/null 2>&1 && srun_works; then
    ok "using the existing SLURM configured in $CONF (not written by this script)"
  fi
  fail "$CONF exists, was not written by this script, and 'srun -N1 true' does not work; not touching it"
fi

# --- install --------------------------------------------------------------------------------
need=()
for cmd in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
  command -v "${cmd%%:*}" >/dev/null 2>&1 || need+=("${cmd##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || fail "SLURM is not installed (${need[*]}) and installing it needs root: sudo $0"
  command -v apt-get >/dev/null 2>&1 || fail "SLURM is not installed (${need[*]}) and there is no apt-get to install it"
  say "installing ${need[*]} (apt)"
  t0=$(date +%s)
  if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${need[@]}" </dev/null) >/tmp/effdata-slurm-apt.log 2>&1; then
    fail "apt-get install ${need[*]} failed: $(tail -n 3 /tmp/effdata-slurm-apt.log | tr '\n' ' ')"
  fi
  say "installed in $(( $(date +%s) - t0 )) s"
fi
[ "$(id -u)" = 0 ] || {
  srun_works && ok "SLURM is up"
  fail "SLURM is installed but not running, and starting its daemons needs root: sudo $0"
}

# --- configuration --------------------------------------------------------------------------
cpus="$(nproc)"
mem_total="$(free -m | awk '/^Mem:/ {print $2}')"
mem=$(( mem_total * 9 / 10 ))
[ "$mem" -gt 0 ] || mem=1000
mkdir -p /etc/slurm /var/spool/slurmd /var/spool/slurmctld "$LOGDIR"
new="$(mktemp)"
cat > "$new" <<EOF
$MARKER
# A single-node SLURM for tests: no cgroups, no accounting. Regenerated when the host changes.
ClusterName=effdata
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
# finished jobs stay visible to squeue for 10 minutes (there is no sacct without accounting)
MinJobAge=600
KillWait=5
InactiveLimit=0
SlurmctldPort=6817
SlurmdPort=6818
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
changed=0
if ! cmp -s "$new" "$CONF"; then
  install -m 644 "$new" "$CONF"
  changed=1
  say "wrote $CONF for $host ($cpus CPUs, RealMemory=$mem MB)"
fi
rm -f "$new"

# --- munge ------------------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
  say "creating a munge key"
  mkdir -p /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown -R munge:munge /etc/munge 2>/dev/null; chmod 700 /etc/munge; chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "starting munged"
  runuser -u munge -- /usr/sbin/munged >/dev/null 2>&1 || /usr/sbin/munged --force >/dev/null 2>&1
  for _ in $(seq 1 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n 2>/dev/null | unmunge >/dev/null 2>&1 || fail "munged does not work (see /var/log/munge/munged.log)"
fi

# --- slurm daemons ------------------------------------------------------------------------------
if [ "$changed" = 1 ]; then
  # a new configuration: restart whatever runs with the old one
  old=()
  for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
    if alive "$pidfile"; then old+=("$(cat "$pidfile")"); fi
  done
  if [ ${#old[@]} -gt 0 ]; then
    say "stopping the SLURM daemons running with the old configuration (${old[*]})"
    kill "${old[@]}" 2>/dev/null
    for _ in $(seq 1 150); do kill -0 "${old[@]}" 2>/dev/null || break; sleep 0.1; done
    kill -9 "${old[@]}" 2>/dev/null
    sleep 0.2
    rm -f /run/slurmd.pid /run/slurmctld.pid
  fi
fi
if ! alive /run/slurmctld.pid; then
  say "starting slurmctld"
  /usr/sbin/slurmctld || fail "slurmctld did not start: $(tail -n 3 $LOGDIR/slurmctld.log 2>/dev/null | tr '\n' ' ')"
fi
if ! alive /run/slurmd.pid; then
  say "starting slurmd"
  /usr/sbin/slurmd || fail "slurmd did not start: $(tail -n 3 $LOGDIR/slurmd.log 2>/dev/null | tr '\n' ' ')"
fi

# --- wait until the node takes jobs ---------------------------------------------------------------
deadline=$(( $(date +%s) + WAIT_S ))
state=""
while [ "$(date +%s)" -lt "$deadline" ]; do
  state="$(sinfo -h -n "$host" -o %T 2>/dev/null | head -n 1)"
  case "$state" in
    idle|mixed|allocated|completing) break ;;
    drained|draining|down|down\*|drained\*)
      scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 ;;
  esac
  sleep 1
done
case "$state" in
  idle|mixed|allocated|completing) ;;
  *) fail "node $host is '${state:-not known to slurmctld}' after ${WAIT_S} s ($(scontrol show node "$host" 2>/dev/null | grep -o 'Reason=.*' | head -n 1); logs in $LOGDIR)" ;;
esac
# Retried: right after a restart on a loaded machine the first srun can fail although the node is idle (seen once
# in `make test`, 5 December: the controller-down test's restart, both cores busy; srun worked a minute later).
srun_deadline=$(( $(date +%s) + 60 ))
until srun_works; do
  [ "$(date +%s)" -lt "$srun_deadline" ] || fail "node $host is $state but 'srun -N1 true' failed for 60 s (logs in $LOGDIR)"
  sleep 2
done
ok "SLURM is up: node $host $state, partition debug"
