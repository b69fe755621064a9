#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for bnx's tests and CI.
#
#   scripts/slurm-cluster.sh up DIR      install Slurm + MUNGE if missing (apt-get), start munged,
#                                        write DIR/slurm.conf, start slurmctld and slurmd, wait
#                                        until the node is idle; prints one line on stdout:
#                                          SLURM_CONF=DIR/slurm.conf
#                                        so a caller can `export "$(scripts/slurm-cluster.sh up DIR)"`.
#   scripts/slurm-cluster.sh down DIR    cancel leftover jobs, stop the daemons started for DIR
#                                        (SIGTERM, then SIGKILL after 10 s) and any job process
#                                        left behind, and munged if `up DIR` started it and no
#                                        other Slurm daemon is left. Idempotent.
#   scripts/slurm-cluster.sh status DIR  says whether the daemons are up and the node's state;
#                                        exit 0 when both daemons run, 3 otherwise.
#
# Everything the cluster writes is in DIR: slurm.conf, the state and spool directories, pid files,
# slurmctld.log, slurmd.log and jobcomp.log (jobcomp/filetxt: one line per finished job or array
# task). There is no slurmdbd, so `sacct` does not work: read DIR/jobcomp.log instead.
#
# Needs root (SlurmUser=root; munged and slurmd run as root) and, when Slurm is not installed yet,
# apt-get with Debian's mirror (Debian 12 gives Slurm 22.05).
#
# Several clusters can run on one machine, one per port pair: slurmctld listens on BNX_SLURM_PORT
# (default 6917) and slurmd on the next port. Tests on a shared machine pick their own ports. Each
# cluster numbers its jobs from PORT * 1000 + 1, so that their cgroups stay apart (FIRST_JOB_ID).
# Each cluster's directory holds an identity marker, .bnx-slurm-cluster (.bnx-slurm-cluster-PORT
# for a port other than 6917; BNX_SLURM_MARKER names another), that records the port and the pid of
# the process that owns the cluster (BNX_SLURM_OWNER_PID, e.g. a test process; default: the
# caller of this script). `up` never stops or reuses a cluster of another directory that is in
# use: when a bnx cluster of another directory holds one of its ports, `up` stops it only if it is
# abandoned (its owner process is gone, or its directory was deleted), and otherwise fails saying
# which directory holds the port. A Slurm daemon that is not bnx's is never touched. `up` runs
# under a machine-wide flock (/run/lock/bnx-slurm-cluster.lock), so that concurrent calls do not
# run apt-get or start munged twice.
#
# munged: `up` starts it only when `munge -n | unmunge` fails, and then notes its pid in
# DIR/munged.pid; `down DIR` stops it only in that case (a munged that was already running, e.g.
# the system's, is left alone). An `up` that stops a stale cluster takes over its munged.pid.
#
# slurm.conf is the minimal one-node set-up (task/none, no accounting), plus
# SchedulerParameters=batch_sched_delay=0 so that jobs start within about a second, and
# proctrack/cgroup (cgroup v1 freezer) where the machine has it, else proctrack/linuxproc (see
# proctrack() below; BNX_SLURM_PROCTRACK=cgroup|linuxproc chooses).
#
# Exit codes: 0 ok; 2 cannot run here at all (not root, or Slurm missing and no apt-get): callers
# such as test/slurm-cluster.ts treat that as "skip"; 1 any other failure (install failed, daemons
# did not come up: the tails of their logs are printed on stderr).
set -euo pipefail

CTLD_PORT="${BNX_SLURM_PORT:-6917}"
[[ "$CTLD_PORT" =~ ^[0-9]+$ ]] && ((CTLD_PORT >= 1024 && CTLD_PORT < 65535)) ||
  { echo "slurm-cluster: BNX_SLURM_PORT must be a port from 1024 to 65534, not $CTLD_PORT" >&2; exit 1; }
SLURMD_PORT=$((CTLD_PORT + 1))
# Job ids start at PORT * 1000 + 1 (6917001 by default), so that clusters on different ports do not
# share one: clusters are at least 2 ports apart, so a cluster can run 2,000 jobs before its ids
# reach the next one's (a test run submits a few dozen). With proctrack/cgroup, Slurm 22.05 names a
# job's freezer cgroup by node name and job id only
# (/sys/fs/cgroup/freezer/slurm_<node>/uid_<uid>/job_<id>), and every cluster here runs on the same
# node: two clusters' job 1 would share a cgroup, and the end of one would SIGKILL the other's
# processes (seen: the tasks of one test suite's array job killed, exit 0:9, while another suite ran
# beside it).
FIRST_JOB_ID=$((CTLD_PORT * 1000 + 1))
UP_TIMEOUT="${BNX_SLURM_UP_TIMEOUT:-30}"   # seconds to wait for the node to be idle
STOP_TIMEOUT=10                              # seconds between SIGTERM and SIGKILL
if [[ "$CTLD_PORT" == 6917 ]]; then MARKER=${BNX_SLURM_MARKER:-.bnx-slurm-cluster}; else MARKER=${BNX_SLURM_MARKER:-.bnx-slurm-cluster-$CTLD_PORT}; fi
[[ "$MARKER" =~ ^\.bnx-slurm-cluster[A-Za-z0-9_.-]*$ ]] ||
  { echo "slurm-cluster: BNX_SLURM_MARKER must start with .bnx-slurm-cluster, not $MARKER" >&2; exit 1; }
OWNER_PID="${BNX_SLURM_OWNER_PID:-$PPID}"
UP_LOCK=/run/lock/bnx-slurm-cluster.lock

log() { echo "slurm-cluster: $*" >&2; }
die() { log "$*"; exit 1; }
cannot() { log "$*"; exit 2; }

usage() {
  echo "usage: $0 up|down|status DIR" >&2
  exit 64
}

# ---- processes -----------------------------------------------------------------------------

# Whether pid $1 runs. A zombie does not: an orphan that exited waits for init to reap it, and
# some inits (this machine's) reap only every second or two.
alive() {
  [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null || return 1
  local line='' f=()
  read -r line 2>/dev/null <"/proc/$1/stat" || return 1
  read -ra f <<<"${line##*) }"
  [[ "${f[0]:-}" != Z ]]
}

comm_of() {
  local c=''
  read -r c 2>/dev/null <"/proc/$1/comm" || true
  echo "$c"
}

# The pid in pid file $1 when that process is alive and its command is $2; empty otherwise.
pid_from_file() {
  local file=$1 name=$2 pid
  [[ -f "$file" ]] || return 0
  pid=$(tr -dc '0-9' <"$file" 2>/dev/null || true)
  if alive "$pid" && [[ "$(comm_of "$pid")" == "$name" ]]; then echo "$pid"; fi
}

# Pids of all live (not zombie) processes whose command is exactly $1.
pids_named() {
  local p line rest
  for p in /proc/[0-9]*; do
    line=''
    read -r line 2>/dev/null <"$p/stat" || continue
    rest=${line#*\(}
    [[ "${rest%\)*}" == "$1" && "${line##*) }" != Z* ]] && echo "${p#/proc/}"
  done
  return 0
}

# The Slurm config a running slurm daemon uses: its -f argument, else its SLURM_CONF.
conf_of() {
  local pid=$1 prev='' arg
  while IFS= read -r -d '' arg; do
    if [[ "$prev" == -f ]]; then echo "$arg"; return 0; fi
    prev=$arg
  done 2>/dev/null <"/proc/$pid/cmdline" || true
  tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | sed -n 's/^SLURM_CONF=//p' | head -n1
}

# All descendants of pid $1 (children first, recursively).
ppid_of() {
  local line='' f=()
  read -r line 2>/dev/null <"/proc/$1/stat" || true
  read -ra f <<<"${line##*) }"
  echo "${f[1]:-0}"
}

descendants() {
  local parent=$1 p
  for p in /proc/[0-9]*; do
    if [[ "$(ppid_of "${p#/proc/}")" == "$parent" ]]; then
      echo "${p#/proc/}"
      descendants "${p#/proc/}"
    fi
  done
  return 0
}

# Stops the given pids: SIGTERM, wait up to STOP_TIMEOUT s (or $STOP_WAIT), then SIGKILL and
# wait again.
stop_pids() {
  local pids=() left=() p i wait=${STOP_WAIT:-$STOP_TIMEOUT}
  for p in "$@"; do alive "$p" && pids+=("$p"); done
  ((${#pids[@]})) || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for ((i = 0; i < wait * 10; i++)); do
    local left=()
    for p in "${pids[@]}"; do alive "$p" && left+=("$p"); done
    ((${#left[@]})) || return 0
    sleep 0.1
  done
  ((wait < 5)) || log "still running after ${wait}s, sending SIGKILL: ${left[*]}"
  kill -KILL "${pids[@]}" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    local left=()
    for p in "${pids[@]}"; do alive "$p" && left+=("$p"); done
    ((${#left[@]})) || return 0
    sleep 0.1
  done
  log "could not stop: ${left[*]}"
  return 1
}

# Pids of slurmctld/slurmd/slurmstepd processes that belong to the cluster whose config is $1.
daemons_of_conf() {
  local conf=$1 name p
  for name in slurmctld slurmd slurmstepd; do
    for p in $(pids_named "$name"); do
      [[ "$(conf_of "$p")" == "$conf" ]] && echo "$p"
    done
  done
  return 0
}

# Pids of processes started by jobs of the cluster whose config is $1 (their environment has
# SLURM_CONF=$1 and a SLURM_JOB_ID), except this script and its ancestors.
job_processes() {
  local conf=$1 f pid keep=" $$ " a=$$
  while [[ "$a" -gt 1 ]]; do
    a=$(ppid_of "$a")
    keep+="$a "
  done
  grep -lzxF "SLURM_CONF=$conf" /proc/[0-9]*/environ 2>/dev/null |
    xargs -r grep -lz '^SLURM_JOB_ID=' 2>/dev/null |
    while IFS= read -r f; do
      pid=${f#/proc/}
      pid=${pid%/environ}
      [[ "$keep" == *" $pid "* ]] || echo "$pid"
    done || true
}

# Whether a process named $1 runs with the config $CONF.
running_for_conf() {
  local p
  for p in $(pids_named "$1"); do
    [[ "$(conf_of "$p")" == "$CONF" ]] && return 0
  done
  return 1
}

# Stops the daemons of the cluster whose config is $1, and the job steps (slurmstepd and what it
# runs) that the daemons left behind.
stop_cluster_processes() {
  local conf=$1 p steps=() procs=()
  for p in $(pids_named slurmstepd); do
    [[ "$(conf_of "$p")" == "$conf" ]] && steps+=("$p")
  done
  for p in $(daemons_of_conf "$conf"); do procs+=("$p"); done
  # The daemons first (together: slurmctld takes about 2 s to exit, slurmd about 1 s), then the
  # job steps and their processes: stopping slurmd leaves them running.
  local daemons=() jobs=() q
  for p in "${procs[@]}"; do
    case "$(comm_of "$p")" in
      slurmd | slurmctld) daemons+=("$p") ;;
    esac
  done
  ((${#daemons[@]} == 0)) || stop_pids "${daemons[@]}" || true
  # Job steps: slurmstepd ignores SIGTERM, so SIGKILL it; its processes get SIGTERM and 2 s.
  for p in "${steps[@]}"; do
    alive "$p" || continue
    for q in $(descendants "$p"); do jobs+=("$q"); done
    kill -KILL "$p" 2>/dev/null || true
  done
  # With proctrack/linuxproc, a job process whose parent died is re-parented to init and escapes
  # Slurm (seen: `scancel --signal=TERM --batch` kills the batch shell and leaves its `sleep`
  # running after the job has ended). Job processes carry SLURM_CONF and SLURM_JOB_ID.
  for p in $(job_processes "$conf"); do
    [[ " ${jobs[*]} " == *" $p "* ]] || jobs+=("$p")
  done
  if ((${#jobs[@]})); then
    log "stopping job processes left behind: ${jobs[*]}"
    STOP_WAIT=2 stop_pids "${jobs[@]}" || true
  fi
  return 0
}

# ---- the cluster ----------------------------------------------------------------------------

node_name() { hostname -s; }

node_state() {
  SLURM_CONF="$CONF" timeout 10 sinfo -h -n "$(node_name)" -o %T 2>/dev/null | head -n1 || true
}

log_tails() {
  local f
  for f in "$DIR/slurmctld.log" "$DIR/slurmd.log"; do
    if [[ -f "$f" ]]; then
      echo "---- last lines of $f ----" >&2
      tail -n 20 "$f" >&2
    else
      echo "---- $f: not written ----" >&2
    fi
  done
}

# proctrack/cgroup where the cgroup v1 freezer is mounted (this machine kind), else
# proctrack/linuxproc; BNX_SLURM_PROCTRACK=cgroup|linuxproc chooses. With linuxproc, a process
# that a job leaves in the background (`sleep 60 &`) outlives the job; with cgroup, Slurm kills it
# when the job ends, as on a real cluster.
proctrack() {
  case "${BNX_SLURM_PROCTRACK:-auto}" in
    cgroup | linuxproc) echo "$BNX_SLURM_PROCTRACK" ;;
    auto)
      if [[ "$(stat -f -c %T /sys/fs/cgroup/freezer 2>/dev/null)" == cgroupfs ]]; then echo cgroup; else echo linuxproc; fi
      ;;
    *) die "BNX_SLURM_PROCTRACK must be cgroup or linuxproc, not $BNX_SLURM_PROCTRACK" ;;
  esac
}

write_conf() {
  local host cpus mem_mb track
  host=$(node_name)
  cpus=$(nproc)
  track=$(proctrack)
  # slurmd refuses a node whose RealMemory is above what it has: 8000 MB, or less on a small machine.
  mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 }' /proc/meminfo)
  mem_mb=$((mem_mb - 500))
  ((mem_mb <= 8000)) || mem_mb=8000
  mkdir -p "$DIR/state" "$DIR/spool"
  cat >"$CONF.tmp" <<EOF
# One-node Slurm cluster for bnx's tests, written by scripts/slurm-cluster.sh.
ClusterName=bnx
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/$track
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
# Schedule batch jobs at once, not up to 3 s after a submission (the default): a 3-task array on
# 2 CPUs then takes about 1-2 s instead of about 6 s.
SchedulerParameters=batch_sched_delay=0
# One job id range per port: see FIRST_JOB_ID.
FirstJobId=$FIRST_JOB_ID
MailProg=/bin/true
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/jobcomp.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$CONF.tmp" "$CONF"
  rm -f "$DIR/cgroup.conf"
  if [[ "$track" == cgroup ]]; then
    # slurmd reads cgroup.conf from beside slurm.conf. Track processes only; constrain nothing.
    cat >"$DIR/cgroup.conf" <<EOF
CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainSwapSpace=no
ConstrainDevices=no
EOF
  fi
}

install_packages() {
  local missing=()
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null ||
    missing+=(slurm-wlm)
  command -v munged >/dev/null || missing+=(munge)
  ((${#missing[@]})) || return 0
  command -v apt-get >/dev/null || cannot "${missing[*]} not installed and there is no apt-get to install them"
  log "installing ${missing[*]} with apt-get (a minute or two)..."
  local out
  out=$(mktemp)
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"; } >"$out" 2>&1; then
    tail -n 20 "$out" >&2
    rm -f "$out"
    die "apt-get install ${missing[*]} failed"
  fi
  rm -f "$out"
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    die "apt-get installed ${missing[*]} but slurmctld/munged are still missing"
  fi
}

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munged() {
  munge_works && return 0
  mkdir -p /run/munge
  chown munge:munge /run/munge 2>/dev/null || true
  chmod 0755 /run/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null; then
      mungekey --create --keyfile=/etc/munge/munge.key >&2
    else
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key 2>/dev/null || true
    chmod 0400 /etc/munge/munge.key
  fi
  # As root, munged refuses to start without --force (it warns about the ownership of its log).
  local out
  # 9>&-: a daemon must not inherit (and so hold forever) the flock of `up`.
  out=$(munged --force 2>&1 9>&-) || die "munged did not start: $out"
  local i
  for ((i = 0; i < 50; i++)); do
    if munge_works; then
      local pid
      pid=$(tr -dc '0-9' </run/munge/munged.pid 2>/dev/null || true)
      [[ -n "$pid" ]] && echo "$pid" >"$DIR/munged.pid"
      log "started munged${pid:+ (pid $pid)}"
      return 0
    fi
    sleep 0.1
  done
  die "munged started but 'munge -n | unmunge' still fails"
}

# The ports a cluster's slurm.conf gives its daemons ("CTLD SLURMD"; empty if unreadable).
ports_of_conf() {
  awk -F= 'tolower($1) == "slurmctldport" { c = $2 } tolower($1) == "slurmdport" { d = $2 } END { if (c != "") print c, d }' "$1" 2>/dev/null || true
}

# The owner pid a cluster's marker records (empty when none: a cluster started by an older script).
owner_of_dir() {
  local m
  for m in "$1"/.bnx-slurm-cluster*; do
    [[ -f "$m" ]] && sed -n 's/^owner=//p' "$m" | head -n1 && return 0
  done
  return 0
}

is_bnx_dir() {
  local m
  for m in "$1"/.bnx-slurm-cluster*; do [[ -e "$m" ]] && return 0; done
  return 1
}

# Stops the daemons of another bnx cluster that holds one of this cluster's ports, if it is
# abandoned: its directory is gone, or its marker names an owner process that is gone. A cluster
# of another directory that is in use is never stopped: `up` fails and says where it is.
stop_abandoned_clusters() {
  local name p conf others=()
  for name in slurmctld slurmd; do
    for p in $(pids_named "$name"); do
      conf=$(conf_of "$p")
      [[ "$conf" == "$CONF" ]] && continue
      # No -f and no SLURM_CONF: a system daemon (/etc/slurm/slurm.conf), not bnx's.
      [[ -n "$conf" ]] || continue
      others+=("$conf")
    done
  done
  ((${#others[@]})) || return 0
  local c dir ports owner
  while IFS= read -r c; do
    dir=$(dirname "$c")
    if [[ -e "$c" ]]; then
      is_bnx_dir "$dir" || continue
      ports=" $(ports_of_conf "$c") "
      [[ "$ports" == *" $CTLD_PORT "* || "$ports" == *" $SLURMD_PORT "* ]] || continue
      owner=$(owner_of_dir "$dir")
      if [[ -z "$owner" ]] || alive "$owner"; then
        die "ports $CTLD_PORT/$SLURMD_PORT: the bnx Slurm cluster in $dir uses them${owner:+ (its owner, pid $owner, is running)}; stop it with '$0 down $dir' or choose other ports with BNX_SLURM_PORT"
      fi
      log "stopping an abandoned bnx Slurm cluster on port ${ports# } ($dir; its owner, pid $owner, is gone)"
    else
      # Its directory was deleted under it: nobody can use it. Stop it if it holds our ports.
      local holders
      holders=$(ss -Hltnp "( sport = :$CTLD_PORT or sport = :$SLURMD_PORT )" 2>/dev/null || true)
      [[ -n "$holders" ]] || continue
      log "stopping a bnx Slurm cluster whose directory is gone ($dir)"
    fi
    stop_cluster_processes "$c"
    # If that cluster's `up` started munged, this one takes over stopping it at `down`.
    if [[ -n "$(pid_from_file "$dir/munged.pid" munged)" ]]; then
      mv -f "$dir/munged.pid" "$DIR/munged.pid"
    fi
  done < <(printf '%s\n' "${others[@]}" | sort -u)
  return 0
}

check_ports_free() {
  local port holders
  for port in "$CTLD_PORT" "$SLURMD_PORT"; do
    holders=$(ss -Hltnp "sport = :$port" 2>/dev/null || true)
    [[ -z "$holders" ]] || die "port $port is in use by another program: $holders (choose other ports with BNX_SLURM_PORT)"
  done
}

cmd_up() {
  [[ "$(id -u)" == 0 ]] || cannot "needs root (SlurmUser=root; munged and slurmd run as root); running as $(id -un)"
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd -P)
  CONF=$DIR/slurm.conf
  # One `up` at a time on this machine: apt-get and munged must not be started twice.
  mkdir -p "$(dirname "$UP_LOCK")"
  exec 9>>"$UP_LOCK"
  flock 9
  install_packages

  # Already up for this DIR: nothing to do but report.
  local ctld slurmd
  ctld=$(pid_from_file "$DIR/slurmctld.pid" slurmctld)
  slurmd=$(pid_from_file "$DIR/slurmd.pid" slurmd)
  if [[ -n "$ctld" && -n "$slurmd" ]] && munge_works && [[ "$(node_state)" =~ ^(idle|mixed|allocated) ]]; then
    log "already up (slurmctld $ctld, slurmd $slurmd)"
    echo "SLURM_CONF=$CONF"
    return 0
  fi
  # Half up, or stale pid files: start this DIR's cluster afresh.
  stop_cluster_processes "$CONF"
  rm -f "$DIR/slurmctld.pid" "$DIR/slurmd.pid"
  stop_abandoned_clusters
  check_ports_free

  start_munged
  rm -f "$DIR"/.bnx-slurm-cluster*
  printf 'port=%s\nowner=%s\n' "$CTLD_PORT" "$OWNER_PID" >"$DIR/$MARKER"
  write_conf
  : >>"$DIR/jobcomp.log"

  export SLURM_CONF=$CONF
  # -c: a cold start, no jobs or node state from an earlier run in this DIR.
  # 9>&-: the daemons must not inherit (and so hold forever) the flock of `up`.
  slurmctld -c -f "$CONF" >>"$DIR/slurmctld.out" 2>&1 9>&- || { log_tails; die "slurmctld did not start"; }
  slurmd -f "$CONF" >>"$DIR/slurmd.out" 2>&1 9>&- || { log_tails; die "slurmd did not start"; }

  local started=$SECONDS deadline=$((SECONDS + UP_TIMEOUT)) state='' resumed=0 node
  node=$(node_name)
  while ((SECONDS < deadline)); do
    ctld=$(pid_from_file "$DIR/slurmctld.pid" slurmctld)
    slurmd=$(pid_from_file "$DIR/slurmd.pid" slurmd)
    state=$(node_state)
    if [[ -n "$ctld" && -n "$slurmd" && "$state" == idle ]]; then
      log "up in $DIR: slurmctld $ctld, slurmd $slurmd, node $node idle"
      echo "SLURM_CONF=$CONF"
      return 0
    fi
    # A daemon that has exited will not come up: fail now rather than at the deadline.
    if [[ -z "$ctld" || -z "$slurmd" ]] && ((SECONDS > started + 5)); then
      local name dead=''
      for name in slurmctld slurmd; do
        running_for_conf "$name" || dead+=" $name"
      done
      if [[ -n "$dead" ]]; then
        log_tails
        die "not running:$dead (see the logs above)"
      fi
    fi
    if [[ "$state" =~ ^(down|drain|drained|fail) ]] && ((resumed < 3)); then
      log "node $node is $state: scontrol update state=resume"
      timeout 10 scontrol update nodename="$node" state=resume >&2 2>&1 || true
      resumed=$((resumed + 1))
    fi
    sleep 0.5
  done
  log_tails
  die "the cluster did not come up within ${UP_TIMEOUT}s (slurmctld: ${ctld:-not running}, slurmd: ${slurmd:-not running}, node state: ${state:-none})"
}

cmd_down() {
  if ! DIR=$(cd "$DIR" 2>/dev/null && pwd -P); then
    # DIR was removed under a running cluster: its daemons can still be found by their config.
    stop_cluster_processes "$(realpath -m "$1")/slurm.conf"
    log "down: $1 (no such directory)"
    return 0
  fi
  CONF=$DIR/slurm.conf
  export SLURM_CONF=$CONF
  local ctld
  ctld=$(pid_from_file "$DIR/slurmctld.pid" slurmctld)
  if [[ -n "$ctld" ]]; then
    local jobs
    jobs=$(timeout 10 squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ' || true)
    if [[ -n "${jobs// /}" ]]; then
      log "cancelling leftover jobs: $jobs"
      # shellcheck disable=SC2086
      timeout 10 scancel $jobs >&2 2>&1 || true
      local i
      for ((i = 0; i < 50; i++)); do
        [[ -z "$(timeout 5 squeue -h -o %A 2>/dev/null || true)" ]] && break
        sleep 0.2
      done
    fi
  fi
  stop_cluster_processes "$CONF"
  # Daemons named only by pid file (a config path that changed, say).
  local p
  for p in "$(pid_from_file "$DIR/slurmd.pid" slurmd)" "$(pid_from_file "$DIR/slurmctld.pid" slurmctld)"; do
    [[ -n "$p" ]] && stop_pids "$p"
  done
  rm -f "$DIR/slurmctld.pid" "$DIR/slurmd.pid"

  # munged: stopped only if `up DIR` started it and no Slurm daemon of any cluster is left.
  if [[ -f "$DIR/munged.pid" ]]; then
    local mpid
    mpid=$(pid_from_file "$DIR/munged.pid" munged)
    if [[ -n "$mpid" ]]; then
      if [[ -z "$(pids_named slurmctld)$(pids_named slurmd)" ]]; then
        stop_pids "$mpid" && log "stopped munged (pid $mpid), which 'up' had started"
      else
        log "leaving munged (pid $mpid) running: other Slurm daemons still use it"
      fi
    fi
    rm -f "$DIR/munged.pid"
  fi
  log "down: $DIR"
}

cmd_status() {
  DIR=$(cd "$DIR" 2>/dev/null && pwd -P) || { echo "no such directory: $1"; return 3; }
  CONF=$DIR/slurm.conf
  local ctld slurmd
  ctld=$(pid_from_file "$DIR/slurmctld.pid" slurmctld)
  slurmd=$(pid_from_file "$DIR/slurmd.pid" slurmd)
  echo "slurmctld: $(if [[ -n "$ctld" ]]; then echo "up (pid $ctld)"; else echo down; fi)"
  echo "slurmd: $(if [[ -n "$slurmd" ]]; then echo "up (pid $slurmd)"; else echo down; fi)"
  if munge_works; then echo "munged: up"; else echo "munged: down"; fi
  if [[ -n "$ctld" ]]; then echo "node $(node_name): $(node_state)"; fi
  [[ -n "$ctld" && -n "$slurmd" ]] || return 3
}

[[ $# == 2 ]] || usage
DIR=$2
case "$1" in
  up) cmd_up ;;
  down) cmd_down "$2" ;;
  status) cmd_status "$2" ;;
  *) usage ;;
esac
