# shellcheck shell=bash
# lib_hsm.sh: helpers for tests and benchmarks of the HSM (cxfs-hsmd and
# cxfs-hsm) on a cluster started by lib_cluster.sh's cluster_up with
# --dmapi (sourced, not run; source lib_cluster.sh first).
#
#   hsm I ARGS...        cxfs-hsm through node I's DMAPI socket
#   hsm_state PATH       the state ls gives PATH (resident, dual-state, ...)
#   hsm_resident PATH    the resident bytes ls gives PATH
#   hsm_stat EXPR        a value of the daemon's counters (cxfs-hsm status
#                        --json through node 1): EXPR is a Python expression
#                        over s, e.g. 's["recalls"]'
#   hsmd_pid I, hsmd_log I, node_dm_sock I
#   hsmd_restart I [local-cluster options]   (hsmd-restart; must not run in $(...))
#   hsmd_stop I
#   tier_copy PATH       the tier copy of PATH (empty if there is none)
#   vol_free MNT         free bytes of the filesystem mounted at MNT
#   vol_used_pct MNT     its use in percent (integer)
#   start_readers NAME   sha256sum of hsm/NAME on every node at once
#   check_readers NAME WHAT   each of them ends right (READER_WAIT s, default 60)

HSM=$CXFS_BIN_DIR/cxfs-hsm
HSMD=$CXFS_BIN_DIR/cxfs-hsmd

node_dm_sock() { echo "$CL_DIR/node$1/dm.sock"; }
hsmd_pid() { cat "$CL_DIR/node$1/hsmd.pid" 2>/dev/null || true; }
hsmd_log() { echo "$CL_DIR/node$1/hsmd.log"; }

hsm() {
	local i=$1
	shift
	"$HSM" --socket "$(node_dm_sock "$i")" "$@"
}

hsm_state() { hsm 1 ls "$1" 2>/dev/null | awk '{print $1}'; }
hsm_resident() { hsm 1 ls "$1" 2>/dev/null | awk '{print $3}'; }

hsm_stat() {
	hsm 1 status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(eval(sys.argv[1]))' "$1"
}

hsmd_restart() {
	local i=$1
	shift
	CXFS_BIN_DIR=$CXFS_BIN_DIR "$LOCAL_CLUSTER" hsmd-restart --dir "$CL_DIR" -i "$i" "$@" \
		>>"$T_TMP/hsmd-restart.log" 2>&1
}

hsmd_stop() {
	CXFS_BIN_DIR=$CXFS_BIN_DIR "$LOCAL_CLUSTER" hsmd-stop --dir "$CL_DIR" -i "$1" \
		>>"$T_TMP/hsmd-restart.log" 2>&1
}

# The copy of a file lives at TIER/<fs>/<ino>-<gen>; the inode number is
# the same through every mount.
tier_copy() {
	local ino f
	ino=$(stat -c %i "$1") || return 0
	for f in "$CL_DIR"/tier/*/"$ino"-*; do
		[[ -f "$f" && "$f" != *.sum ]] && echo "$f"
	done
	return 0
}

vol_free() { stat -f -c '%a %S' "$1" | awk '{print $1 * $2}'; }
vol_used_pct() { stat -f -c '%a %b' "$1" | awk '{printf "%d\n", 100 * ($2 - $1) / $2}'; }

# start_readers NAME: sha256sum of hsm/NAME on every node at once, in the
# background (PIDs in READERS, outputs in $T_TMP/NAME.<node>).
READERS=()
start_readers() {
	local i
	READERS=()
	for i in 1 2 3; do
		sha256sum "$(node_mnt "$i")/hsm/$1" >"$T_TMP/$1.$i" 2>&1 &
		READERS+=($!)
	done
}

# check_readers NAME WHAT: every reader of start_readers ends (READER_WAIT s,
# default 60) with exit 0 and the bytes of $SRC/NAME.
check_readers() {
	local i p rc
	for i in 1 2 3; do
		p=${READERS[$((i - 1))]}
		rc=0
		if wait_until "${READER_WAIT:-60}" eval "! kill -0 $p 2>/dev/null"; then
			wait "$p" || rc=$?
		else
			rc=timeout
		fi
		check_eq "node$i's reader of $1 $2" "0 $(sum_of "$SRC/$1")" "$rc $(cut -d' ' -f1 "$T_TMP/$1.$i")"
	done
}

