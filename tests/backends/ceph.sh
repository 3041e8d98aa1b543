#!/usr/bin/env bash
# A one-machine CephFS mounted twice through ceph-fuse: two "compute nodes"
# over one shared volume with a separate metadata server (the closest thing
# to Lustre or GPFS that Debian packages), for crates/tresor-cli/tests/
# shared_storage.rs and `cargo xtask bench --backend ceph`.
# Debian packages only (Ceph 16), no systemd, cephx off, 127.0.0.1 only. Needs root.
#
#   tests/backends/ceph.sh up [strict]   # idempotent; cleans leftovers of an earlier run
#   tests/backends/ceph.sh down
#   tests/backends/ceph.sh status        # exit 0 when both mounts are live (and coherent in strict mode)
#
# strict: ceph-fuse's page cache off (--fuse_disable_pagecache). With it on,
# one client keeps reading data the other rewrote in place: not coherent, and
# `tresor mount` warns about it. ceph-fuse 16 is built on libfuse2, which
# rejects -o attr_timeout=0, so the kernel's attribute cache stays at its
# default (1 s) either way.
#
# Env: TRESOR_CEPH_BASE (default /tmp/tresor-ceph; mounts at $BASE/mnt1, $BASE/mnt2),
#      TRESOR_CEPH_OSD_SIZE (default 20G, a sparse file), TRESOR_CEPH_TIMEOUT (seconds per wait, default 120).
set -euo pipefail

BASE=${TRESOR_CEPH_BASE:-/tmp/tresor-ceph}
OSD_SIZE=${TRESOR_CEPH_OSD_SIZE:-20G}
TIMEOUT=${TRESOR_CEPH_TIMEOUT:-120}
CONF=$BASE/ceph.conf
MON_PORT=3300
NAME=ceph.sh
# shellcheck source=tests/backends/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

c() { timeout 30 ceph -c "$CONF" --connect-timeout 10 "$@"; }

show_logs() {
  local f
  for f in "$BASE"/log/*.log "$BASE"/log/*.err; do
    [ -s "$f" ] || continue
    say "---- last lines of $f"
    tail -n 15 "$f" >&2 || true
  done
}

install() {
  local b missing=0
  for b in ceph-mon ceph-osd ceph-mds ceph-mgr ceph-fuse ceph monmaptool; do
    command -v "$b" >/dev/null || missing=1
  done
  [ $missing = 0 ] && return
  [ "$(id -u)" = 0 ] || die "Ceph is not installed and installing it needs root"
  say "installing ceph-mon ceph-osd ceph-mds ceph-mgr ceph-fuse ceph-common (Debian)"
  local apt=(apt-get -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends)
  local pkgs=(ceph-mon ceph-osd ceph-mds ceph-mgr ceph-fuse ceph-common)
  if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "${pkgs[@]}" >/dev/null; then
    apt-get update -qq -o DPkg::Lock::Timeout=300
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "${pkgs[@]}" >/dev/null
  fi
}

# Our processes: every Ceph daemon or client whose command line names our config.
our_pids() {
  local p cmd
  for p in /proc/[0-9]*; do
    case "$(cat "$p/comm" 2>/dev/null)" in ceph-mon | ceph-mgr | ceph-osd | ceph-mds | ceph-fuse) ;; *) continue ;; esac
    cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
    case "$cmd" in *"$CONF"*) echo "${p#/proc/}" ;; esac
  done
}

cluster_ready() {
  local mds pgs
  mds=$(c mds stat 2>/dev/null) || return 1
  pgs=$(c pg stat 2>/dev/null) || return 1
  [[ $mds == *up:active* && $pgs =~ ^([0-9]+)\ pgs:\ ([0-9]+)\ active\+clean\; && ${BASH_REMATCH[1]} == "${BASH_REMATCH[2]}" ]]
}

status() {
  local mode
  mode=$(cat "$BASE/mode" 2>/dev/null || echo unknown)
  if visible; then
    echo "CephFS up ($mode mode): $BASE/mnt1 $BASE/mnt2; data coherent across clients: $(coherent && echo yes || echo no)"
    mode_ok "$mode"
    return
  fi
  echo "CephFS not up at $BASE"
  return 1
}

down() {
  local m pids t0=$SECONDS
  for m in $(our_mounts); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || say "could not unmount $m"
  done
  # The data is thrown away: TERM every daemon at once (an MDS alone takes
  # ~10 s for a clean shutdown), KILL what is left after 3 s.
  pids=$(our_pids)
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill $pids 2>/dev/null || true
    for _ in $(seq 30); do
      pids=$(our_pids)
      [ -z "$pids" ] && break
      sleep 0.1
    done
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
  fi
  [ -z "$(our_mounts)" ] || die "still mounted under $BASE: $(our_mounts | tr '\n' ' ')- not removing it"
  rm -rf "$BASE"
  say "down ($((SECONDS - t0)) s)"
}

up() {
  local mode=${1:-default}
  case "$mode" in default | strict) ;; *) die "usage: $0 up [strict]" ;; esac
  [ "$(id -u)" = 0 ] || die "up needs root (Ceph daemons, FUSE mounts)"
  if [ "$(cat "$BASE/mode" 2>/dev/null)" = "$mode" ] && mode_ok "$mode"; then
    say "already up ($mode): $BASE/mnt1 $BASE/mnt2"
    return 0
  fi
  if [ -e "$BASE" ] || [ -n "$(our_pids)" ]; then
    say "cleaning up an earlier run in $BASE"
    down
  fi
  install
  [ -e /dev/fuse ] || die "/dev/fuse is missing"
  port_in_use "$MON_PORT" && die "TCP port $MON_PORT is taken (another ceph-mon?): stop it first"

  mkdir -p "$BASE"/{mon.a,mgr.x,osd.0,mds.a,run,log,mnt1,mnt2}
  local fsid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon_host = v2:127.0.0.1:$MON_PORT
public_addr = 127.0.0.1
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
ms_bind_msgr1 = false
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_autoscale_mode = off
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
mon_warn_on_insecure_global_id_reclaim_allowed = false
# A test cluster on a shared disk: never stop for a nearly full root file system.
mon_data_avail_crit = 1
mon_data_avail_warn = 2
osd_crush_chooseleaf_type = 0
run_dir = $BASE/run
admin_socket = $BASE/run/\$name.\$pid.asok
log_file = $BASE/log/\$name.log
pid_file = $BASE/run/\$name.pid
[mon]
mon_data = $BASE/mon.\$id
[mgr]
mgr_data = $BASE/mgr.\$id
[osd]
osd_data = $BASE/osd.\$id
osd_objectstore = bluestore
bluestore_block_path = $BASE/osd.\$id.block
bluestore_block_size = $(numfmt --from=iec "$OSD_SIZE")
bluestore_block_create = true
osd_memory_target = 2147483648
[mds]
mds_data = $BASE/mds.\$id
[client]
log_file = $BASE/log/\$name.\$pid.log
pid_file = $BASE/run/\$name.\$pid.pid
EOF
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT]" "$BASE/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$BASE/monmap"
  # The daemons chatter on stderr as they start: into the log directory.
  local err=$BASE/log/start.err
  ceph-mon -c "$CONF" -i a 2>>"$err"
  ceph-mgr -c "$CONF" -i x 2>>"$err"
  local uuid id
  uuid=$(cat /proc/sys/kernel/random/uuid)
  id=$(c osd new "$uuid") || {
    show_logs
    die "the monitor did not answer"
  }
  ceph-osd -c "$CONF" -i "$id" --mkfs --osd-uuid "$uuid" 2>"$BASE/log/osd-mkfs.err"
  ceph-osd -c "$CONF" -i "$id" 2>>"$err"
  c osd pool create cephfs_meta 16 >/dev/null 2>>"$err"
  c osd pool create cephfs_data 32 >/dev/null 2>>"$err"
  c fs new cephfs cephfs_meta cephfs_data >/dev/null 2>>"$err"
  ceph-mds -c "$CONF" -i a >/dev/null 2>>"$err"
  wait_for "$TIMEOUT" "an active MDS and every placement group active+clean" cluster_ready || {
    show_logs
    exit 1
  }
  local mopts=()
  if [ "$mode" = strict ]; then
    mopts=(--fuse-default-permissions=false --fuse_disable_pagecache=true)
  fi
  local i
  for i in 1 2; do
    timeout 60 ceph-fuse -c "$CONF" "${mopts[@]}" "$BASE/mnt$i" >/dev/null 2>>"$err"
  done
  wait_for "$TIMEOUT" "both client mounts to see each other's files" mode_ok "$mode" || {
    show_logs
    exit 1
  }
  echo "$mode" >"$BASE/mode"
  echo "CephFS up ($mode mode): $BASE/mnt1 $BASE/mnt2"
}

case "${1:-}" in
  up) up "${@:2}" ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 up [strict] | down | status" ;;
esac
