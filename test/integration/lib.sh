# lib.sh: shared helpers for the cxfs integration tests (sourced, not run).
#
# Sections: environment and binaries; check counters and the summary line;
# the cleanup stack (always run on exit); tgtd with a file-backed LUN;
# cxfsd mounts; small utilities.
#
# Every test script does:
#
#   . "$(dirname "$0")/lib.sh"
#   it_init t_name            # temp dir $T_TMP, traps, requirements
#   ...  pass/fail/check ...
#   it_finish                 # prints "N passed, M failed", exit status
#
# Everything a test starts (cxfsd, tgtd, mounts, temp dirs) is registered on
# the cleanup stack and undone in reverse order on exit, whatever the exit
# path: mounts are unmounted (fusermount3 -u, then -uz), daemons killed by PID
# (never by name), tgtd killed with SIGKILL by PID, temp dirs removed.
#
# Functions that start processes keep their state in shell variables, so call
# them directly, never inside $(...): a subshell would own the children.

set -euo pipefail

# ---------------------------------------------------------------------------
# Environment and binaries.
# ---------------------------------------------------------------------------

IT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CXFS_SOURCE_DIR=${CXFS_SOURCE_DIR:-$(cd "$IT_DIR/../.." && pwd)}
CXFS_BIN_DIR=${CXFS_BIN_DIR:-$CXFS_SOURCE_DIR/build/bin}
CXFSD=$CXFS_BIN_DIR/cxfsd
MKFS=$CXFS_BIN_DIR/mkfs.cxfs
CHECK=$CXFS_BIN_DIR/cxfs-check
POSIX_CHECK=$CXFS_BIN_DIR/cxfs-posix-check

T_NAME=test   # the test's name, for messages
T_TMP=        # the test's temporary directory
T_PASS=0      # checks passed (skips count as passed)
T_FAIL=0      # checks failed
T_DONE=0      # it_finish was reached
_CLEANUP=()   # cleanup commands, run last-in first-out

# Time stamp for log lines.
ts() { date +%H:%M:%S; }
log() { echo "[$(ts)] $*"; }

# ---------------------------------------------------------------------------
# Check counters and the summary line.
# ---------------------------------------------------------------------------

pass() { T_PASS=$((T_PASS + 1)); echo "ok   $*"; }
fail() { T_FAIL=$((T_FAIL + 1)); echo "FAIL $*"; }
skip() { T_PASS=$((T_PASS + 1)); echo "skip $*"; }

# check "description" cmd args...: pass if the command succeeds.
check() {
	local what=$1
	shift
	if "$@"; then pass "$what"; else fail "$what (command: $*)"; fi
}

# check_fails "description" cmd args...: pass if the command fails.
check_fails() {
	local what=$1
	shift
	if "$@"; then fail "$what (unexpected success: $*)"; else pass "$what"; fi
}

# check_eq "description" EXPECTED GOT
check_eq() {
	if [[ "$2" == "$3" ]]; then pass "$1"; else fail "$1: expected '$2', got '$3'"; fi
}

# Skip the whole test (the environment lacks something): exits 0.
skip_all() {
	echo "skip $T_NAME: $*"
	T_DONE=1
	echo "0 passed, 0 failed"
	exit 0
}

# Print the summary line and exit non-zero on any failure.
it_finish() {
	# Checks a library adds for the end of every test (lib_cluster.sh: sanitizer reports).
	if declare -F _it_finish_checks >/dev/null; then _it_finish_checks; fi
	T_DONE=1
	echo "$T_PASS passed, $T_FAIL failed"
	if ((T_FAIL > 0)); then exit 1; fi
	exit 0
}

# ---------------------------------------------------------------------------
# The cleanup stack.
# ---------------------------------------------------------------------------

# defer CMD...: run CMD (eval'ed) at exit, after everything deferred later.
defer() { _CLEANUP+=("$*"); }

_run_cleanup() {
	local status=$? i
	set +e
	trap - EXIT INT TERM
	if ((T_DONE == 0)); then
		T_FAIL=$((T_FAIL + 1))
		echo "FAIL $T_NAME aborted (exit status $status, line ${_IT_LINE:-?})"
	fi
	for ((i = ${#_CLEANUP[@]} - 1; i >= 0; i--)); do
		eval "${_CLEANUP[$i]}" || true
	done
	_CLEANUP=()
	if ((T_DONE == 0)); then
		echo "$T_PASS passed, $T_FAIL failed"
		exit 1
	fi
	exit "$status"
}

# Kill a process we started: SIGTERM, up to $2 seconds (default 5), SIGKILL.
kill_pid() {
	local pid=$1 grace=${2:-5} i
	[[ -n "$pid" ]] || return 0
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < grace * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

# Unmount a FUSE mount point: a normal unmount, then a lazy one.
force_umount() {
	local mnt=$1 i
	for ((i = 0; i < 3; i++)); do
		# mountinfo, not stat: a cluster node cut off makes stat wait.
		awk -v m="$mnt" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo || return 0
		fusermount3 -u "$mnt" 2>/dev/null && return 0
		sleep 0.3
	done
	fusermount3 -uz "$mnt" 2>/dev/null || true
}

# it_init NAME [--need-tgtd]: common setup and requirement checks.
it_init() {
	T_NAME=$1
	shift
	set -E
	trap '_IT_LINE=$LINENO' ERR
	trap _run_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	[[ $(id -u) == 0 ]] || skip_all "needs root (allow_other mounts, tgtd)"
	[[ -c /dev/fuse ]] || skip_all "needs /dev/fuse"
	command -v fusermount3 >/dev/null || skip_all "needs fusermount3"
	local b
	for b in "$CXFSD" "$MKFS" "$CHECK"; do
		# Missing binaries are a build failure, not a skip.
		[[ -x "$b" ]] || { fail "binary $b is missing (build first)"; it_finish; }
	done
	if [[ "${1:-}" == --need-tgtd ]]; then
		command -v tgtd >/dev/null && command -v tgtadm >/dev/null ||
			skip_all "needs tgtd and tgtadm"
	fi
	T_TMP=$(mktemp -d "/tmp/cxfs-$T_NAME.XXXXXX")
	chmod 755 "$T_TMP"
	# CXFS_IT_KEEP=1 keeps the temp dir (logs, volumes) for a post-mortem.
	if [[ "${CXFS_IT_KEEP:-0}" == 1 ]]; then
		defer "echo 'kept $T_TMP'"
	else
		defer "rm -rf '$T_TMP'"
	fi
	log "$T_NAME: temp dir $T_TMP, binaries from $CXFS_BIN_DIR"
}

# ---------------------------------------------------------------------------
# tgtd with one file-backed LUN.
# ---------------------------------------------------------------------------

TGT_PID=       # PID of the running tgtd
TGT_CTL=       # its control port (the N of /var/run/tgtd/socket.N)
TGT_PORT=      # its iSCSI TCP port on 127.0.0.1
TGT_IQN=       # the target name
TGT_BACKING=   # the LUN's backing file
TGT_URI=       # iscsi://127.0.0.1:PORT/IQN/1
TGT_LOG=       # tgtd's log

_tcp_port_free() { [[ -z "$(ss -ltnH "sport = :$1" 2>/dev/null)" ]]; }
_ctl_port_free() {
	[[ ! -e /var/run/tgtd/socket.$1 ]] &&
		! ss -lxH 2>/dev/null | grep -q "/var/run/tgtd/socket\.$1\b"
}

# Start tgtd, create target 1 with LUN 1 on TGT_BACKING, bind it to all
# initiators; waits until the portal listens.
_tgtd_launch() {
	local i
	tgtd -f -C "$TGT_CTL" --iscsi "portal=127.0.0.1:$TGT_PORT" >>"$TGT_LOG" 2>&1 &
	TGT_PID=$!
	for ((i = 0; i < 100; i++)); do
		tgtadm -C "$TGT_CTL" --op show --mode sys >/dev/null 2>&1 && break
		kill -0 "$TGT_PID" 2>/dev/null || break
		sleep 0.1
	done
	tgtadm -C "$TGT_CTL" --lld iscsi --op new --mode target --tid 1 -T "$TGT_IQN" &&
		tgtadm -C "$TGT_CTL" --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 \
			-b "$TGT_BACKING" &&
		tgtadm -C "$TGT_CTL" --lld iscsi --op bind --mode target --tid 1 -I ALL || {
		echo "tgtd failed to start; its log:" >&2
		tail -n 30 "$TGT_LOG" >&2
		return 1
	}
	for ((i = 0; i < 100; i++)); do
		_tcp_port_free "$TGT_PORT" || return 0
		sleep 0.1
	done
	echo "tgtd does not listen on port $TGT_PORT" >&2
	return 1
}

# start_tgtd BACKING_FILE SIZE: create a sparse backing file of SIZE (if it
# does not exist), start tgtd on ports unique to this run, set TGT_URI and
# echo it.  Call directly, not in $(...).
start_tgtd() {
	local backing=$1 size=$2 k
	if [[ $BASHPID != $$ ]]; then
		echo "start_tgtd must not run in a subshell" >&2
		return 1
	fi
	[[ -e "$backing" ]] || truncate -s "$size" "$backing"
	for ((k = 0; k < 200; k++)); do
		TGT_CTL=$((1000 + ($$ * 7 + k * 13) % 30000))
		_ctl_port_free "$TGT_CTL" && break
	done
	for ((k = 0; k < 200; k++)); do
		TGT_PORT=$((32000 + ($$ * 11 + k * 17) % 28000))
		_tcp_port_free "$TGT_PORT" && break
	done
	TGT_IQN="iqn.2024-01.org.cxfs.test:${T_NAME//[^a-z0-9.-]/-}.$$"
	TGT_BACKING=$backing
	TGT_LOG=$T_TMP/tgtd.log
	TGT_URI="iscsi://127.0.0.1:$TGT_PORT/$TGT_IQN/1"
	defer "stop_tgtd"
	_tgtd_launch || return 1
	log "tgtd pid $TGT_PID control $TGT_CTL portal 127.0.0.1:$TGT_PORT" >&2
	echo "$TGT_URI"
}

# Kill tgtd (SIGKILL, by PID) and remove its control socket files.
stop_tgtd() {
	[[ -n "$TGT_PID" ]] || return 0
	kill -KILL "$TGT_PID" 2>/dev/null || true
	wait "$TGT_PID" 2>/dev/null || true
	TGT_PID=
	rm -f "/var/run/tgtd/socket.$TGT_CTL" "/var/run/tgtd/socket.$TGT_CTL.lock"
}

# restart_tgtd: kill -9 and start again with the same ports, target and LUN.
restart_tgtd() {
	local i
	stop_tgtd
	for ((i = 0; i < 50; i++)); do
		_tcp_port_free "$TGT_PORT" && break
		sleep 0.1
	done
	_tgtd_launch
	log "tgtd restarted, pid $TGT_PID"
}

# ---------------------------------------------------------------------------
# cxfsd mounts.
# ---------------------------------------------------------------------------

declare -A CXFSD_PID=()   # mount point -> daemon PID
declare -A CXFSD_LOG=()   # mount point -> daemon log file
CXFSD_STATUS=             # exit status of the last daemon umount_cxfs waited for
declare -A CXFSD_SOCK=()  # mount point -> its daemon's admin socket

# mount_cxfs VOLUME MNT [cxfsd options...]: start cxfsd in the background and
# wait (CXFS_MOUNT_TIMEOUT seconds, default 60) until MNT is mounted.  On
# failure prints the daemon log and returns 1.
mount_cxfs() {
	local vol=$1 mnt=$2 i timeout=${CXFS_MOUNT_TIMEOUT:-60} pid
	shift 2
	if [[ $BASHPID != $$ ]]; then
		echo "mount_cxfs must not run in a subshell" >&2
		return 1
	fi
	mkdir -p "$mnt"
	CXFSD_LOG[$mnt]=${CXFSD_LOG[$mnt]:-$T_TMP/cxfsd.$(basename "$mnt").log}
	echo "=== $(ts) cxfsd --volume $vol $* $mnt" >>"${CXFSD_LOG[$mnt]}"
	# Each mount has its own admin socket beside its log: runs never share one.
	CXFSD_SOCK[$mnt]=${CXFSD_LOG[$mnt]%.log}.sock
	"$CXFSD" --admin-socket "${CXFSD_SOCK[$mnt]}" --volume "$vol" "$@" "$mnt" \
		>>"${CXFSD_LOG[$mnt]}" 2>&1 &
	pid=$!
	CXFSD_PID[$mnt]=$pid
	defer "_cleanup_mount '$mnt' $pid"
	for ((i = 0; i < timeout * 10; i++)); do
		if mountpoint -q "$mnt"; then
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid" 2>/dev/null && CXFSD_STATUS=0 || CXFSD_STATUS=$?
			echo "cxfsd exited (status $CXFSD_STATUS) before mounting $mnt; log:" >&2
			tail -n 40 "${CXFSD_LOG[$mnt]}" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "cxfsd did not mount $mnt in ${timeout}s; log:" >&2
	tail -n 40 "${CXFSD_LOG[$mnt]}" >&2
	return 1
}

_cleanup_mount() {
	local mnt=$1 pid=$2
	force_umount "$mnt"
	kill_pid "$pid" 10
}

# umount_cxfs MNT: fusermount3 -u and wait (30 s) for the daemon to exit;
# its exit status is left in CXFSD_STATUS.  Returns 1 if the unmount failed
# or the daemon did not exit by itself.
umount_cxfs() {
	local mnt=$1 pid=${CXFSD_PID[$1]:-} i
	CXFSD_STATUS=
	if ! fusermount3 -u "$mnt"; then
		echo "fusermount3 -u $mnt failed" >&2
		return 1
	fi
	[[ -n "$pid" ]] || return 0
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "cxfsd (pid $pid) still running 30 s after unmount; log:" >&2
		tail -n 20 "${CXFSD_LOG[$mnt]}" >&2
		kill_pid "$pid"
		return 1
	fi
	wait "$pid" 2>/dev/null && CXFSD_STATUS=0 || CXFSD_STATUS=$?
	CXFSD_PID[$mnt]=
	return 0
}

# kill_cxfs MNT: SIGKILL the daemon and lazily detach the dead mount.
kill_cxfs() {
	local mnt=$1 pid=${CXFSD_PID[$1]:-}
	if [[ -n "$pid" ]]; then
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	CXFSD_PID[$mnt]=
	fusermount3 -uz "$mnt" 2>/dev/null || true
}

# Show the end of a mount's daemon log (for failure reports).
show_log() {
	local f=${CXFSD_LOG[$1]:-}
	[[ -n "$f" && -f "$f" ]] || return 0
	echo "--- last lines of $f:"
	tail -n "${2:-20}" "$f"
}

# ---------------------------------------------------------------------------
# Small utilities.
# ---------------------------------------------------------------------------

# wait_until SECONDS CMD...: poll CMD every 0.1 s.
wait_until() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 10; i++)); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

# rand_file OUT BYTES: a file of random bytes.
rand_file() { head -c "$2" /dev/urandom >"$1"; }

sum_of() { sha256sum "$1" | cut -d' ' -f1; }

# Run cxfs-check on a volume; passes on exit 0, prints its output otherwise.
check_volume() {
	local vol=$1 what=${2:-cxfs-check passes} out rc=0 t0=$SECONDS
	out=$(timeout -k 5 "${CHECK_TIMEOUT:-300}" "$CHECK" "$vol" 2>&1) || rc=$?
	if ((rc == 0)); then
		pass "$what ($((SECONDS - t0)) s)"
	elif ((rc == 124 || rc == 137)); then
		fail "$what: cxfs-check did not finish in ${CHECK_TIMEOUT:-300} s"
	else
		fail "$what: cxfs-check exit $rc"
		echo "$out" | tail -n 20
	fi
}

FSOPS="python3 $IT_DIR/fsops.py"

# run_model TOOL OPS LABEL SEED ARGS...: a tool of this directory that checks
# against a model and takes --ops and --seed (fsx.py, lockmodel.py): it
# prints a summary and exits 0, or the mismatch.
run_model() {
	local tool=$1 ops=$2 label=$3 seed=$4 out
	shift 4
	if out=$(timeout 600 python3 "$IT_DIR/$tool" --ops "$ops" --seed "$seed" "$@" 2>&1); then
		pass "$label seed $seed: $out"
	else
		fail "$label seed $seed:"$'\n'"$out"
	fi
}

# file_volume NAME: VOL, a 1 GiB file volume formatted as NAME, and MNT, where to mount it.
file_volume() {
	VOL=$T_TMP/vol.img MNT=$T_TMP/mnt
	truncate -s 1G "$VOL"
	check "mkfs.cxfs formats a file volume" "$MKFS" --name "$1" "$VOL"
}

# run_posix_check DIR: run cxfs-posix-check in DIR (with a timeout), show its
# failures, and add its counts to this test's counts.
run_posix_check() {
	local dir=$1 out=$T_TMP/posix_check.out rc=0 line np nf
	if [[ ! -x "$POSIX_CHECK" ]]; then
		fail "cxfs-posix-check is missing ($POSIX_CHECK)"
		return 0
	fi
	timeout -k 10 "${POSIX_CHECK_TIMEOUT:-600}" "$POSIX_CHECK" "$dir" >"$out" 2>&1 || rc=$?
	grep -E '^(FAIL|skip)' "$out" || true
	line=$(tail -n 1 "$out")
	if [[ "$line" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
		np=${BASH_REMATCH[1]}
		nf=${BASH_REMATCH[2]}
		T_PASS=$((T_PASS + np))
		T_FAIL=$((T_FAIL + nf))
		log "cxfs-posix-check: $np passed, $nf failed (exit $rc)"
	else
		fail "cxfs-posix-check did not finish (exit $rc); last output:"
		tail -n 15 "$out"
	fi
}
