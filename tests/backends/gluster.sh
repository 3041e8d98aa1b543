#!/usr/bin/env bash
# A one-machine GlusterFS volume mounted twice through the FUSE client: two
# "compute nodes" over one shared volume, for crates/tresor-cli/tests/shared_storage.rs.
# Debian packages only, no systemd, all traffic on loopback. Needs root.
#
#   tests/backends/gluster.sh up [strict]   # idempotent; cleans leftovers of an earlier run
#   tests/backends/gluster.sh down
#   tests/backends/gluster.sh status        # exit 0 when both mounts are live and coherent
#
# strict: every GlusterFS cache off (client xlators and the kernel's attribute,
# entry and page caches): coherent like Lustre or NFS with actimeo=0. The
# tests need it: without it a node can read stale ciphertext.
#
# Env: TRESOR_GLUSTER_BASE (default /tmp/tresor-gluster; mounts at $BASE/mnt1, $BASE/mnt2),
#      TRESOR_GLUSTER_VOL (default tresor), TRESOR_GLUSTER_BRICKS (default 1; more = distributed),
#      TRESOR_GLUSTER_TIMEOUT (seconds per wait, default 60), GLUSTER_HOST (default: hostname).
set -euo pipefail

BASE=${TRESOR_GLUSTER_BASE:-/tmp/tresor-gluster}
VOL=${TRESOR_GLUSTER_VOL:-tresor}
BRICKS=${TRESOR_GLUSTER_BRICKS:-1}
TIMEOUT=${TRESOR_GLUSTER_TIMEOUT:-60}
WD=$BASE/wd RUN=$BASE/run LOGS=$BASE/logs
SOCK=$RUN/glusterd.socket
# The gluster CLI refuses "localhost" and 127.x literally, but accepts a name
# that resolves to 127.x: the hostname if it does, else a private alias.
HOST=${GLUSTER_HOST:-$(hostname)}
ALIAS=tresor-gluster
GLUSTERD_PORT=24007
NAME=gluster.sh
# shellcheck source=tests/backends/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

g() { timeout 60 gluster --mode=script --glusterd-sock="$SOCK" "$@"; }

show_logs() {
  local f bricklogs=${BASE#/}
  # glusterd names each brick's log after its path, under /var/log/glusterfs/bricks.
  for f in "$LOGS"/*.log /var/log/glusterfs/bricks/"${bricklogs//\//-}"-brick*.log; do
    [ -f "$f" ] || continue
    say "---- last lines of $f"
    tail -n 15 "$f" >&2 || true
  done
}

install() {
  command -v glusterd >/dev/null && command -v glusterfs >/dev/null && command -v gluster >/dev/null && return
  [ "$(id -u)" = 0 ] || die "glusterfs-server is not installed and installing it needs root"
  say "installing glusterfs-server glusterfs-client (Debian)"
  local apt=(apt-get -y -q -o DPkg::Lock::Timeout=300)
  if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" install glusterfs-server glusterfs-client >/dev/null; then
    apt-get update -qq -o DPkg::Lock::Timeout=300
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install glusterfs-server glusterfs-client >/dev/null
  fi
}

# Our processes: every gluster daemon whose command line names $BASE (our
# glusterd, its brick processes, our two clients). Listed by pid.
our_pids() {
  local p cmd
  for p in /proc/[0-9]*; do
    [ -r "$p/cmdline" ] || continue
    case "$(cat "$p/comm" 2>/dev/null)" in glusterd | glusterfsd | glusterfs) ;; *) continue ;; esac
    cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
    case "$cmd" in *"$BASE/"*) echo "${p#/proc/}" ;; esac
  done
}

bricks_online() {
  local xml online
  xml=$(g volume status "$VOL" --xml 2>/dev/null) || return 1
  online=$(printf '%s\n' "$xml" | tr -d ' \n' | grep -o '<path>[^<]*</path><peerid>[^<]*</peerid><status>1</status>' | grep -c "$BASE/brick" || true)
  [ "$online" -ge "$BRICKS" ]
}

status() {
  local mode
  mode=$(cat "$BASE/mode" 2>/dev/null || echo unknown)
  if visible; then
    echo "GlusterFS up ($mode mode): $BASE/mnt1 $BASE/mnt2; data coherent across clients: $(coherent && echo yes || echo no)"
    mode_ok "$mode"
    return
  fi
  echo "GlusterFS not up at $BASE (live mounts:$(is_mounted "$BASE/mnt1" && echo -n " mnt1")$(is_mounted "$BASE/mnt2" && echo -n " mnt2"))"
  return 1
}

down() {
  local m pids
  for m in $(our_mounts); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || say "could not unmount $m"
  done
  if [ -S "$SOCK" ] && [ -f "$BASE/glusterd.pid" ] && kill -0 "$(cat "$BASE/glusterd.pid")" 2>/dev/null; then
    g volume stop "$VOL" force >/dev/null 2>&1 || true
    g volume delete "$VOL" >/dev/null 2>&1 || true
  fi
  pids=$(our_pids)
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill $pids 2>/dev/null || true
    for _ in $(seq 50); do
      pids=$(our_pids)
      [ -z "$pids" ] && break
      sleep 0.1
    done
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
  fi
  # Never rm -rf through a live mount: that would empty the volume.
  [ -z "$(our_mounts)" ] || die "still mounted under $BASE: $(our_mounts | tr '\n' ' ')- not removing it"
  rm -rf "$BASE"
  if grep -q " $ALIAS\$" /etc/hosts 2>/dev/null; then
    sed -i "/ $ALIAS\$/d" /etc/hosts 2>/dev/null || true
  fi
  say "down"
}

up() {
  local mode=${1:-default}
  case "$mode" in default | strict) ;; *) die "usage: $0 up [strict]" ;; esac
  [ "$(id -u)" = 0 ] || die "up needs root (glusterd, FUSE mounts)"
  if [ "$(cat "$BASE/mode" 2>/dev/null)" = "$mode" ] && mode_ok "$mode"; then
    say "already up ($mode): $BASE/mnt1 $BASE/mnt2"
    return 0
  fi
  # Whatever an earlier run left: stale mounts, daemons, bricks with volume xattrs.
  if [ -e "$BASE" ] || [ -n "$(our_pids)" ]; then
    say "cleaning up an earlier run in $BASE"
    down
  fi
  install
  [ -e /dev/fuse ] || die "/dev/fuse is missing"
  port_in_use "$GLUSTERD_PORT" && die "TCP port $GLUSTERD_PORT is taken (another glusterd?): stop it first"

  case "$(getent ahostsv4 "$HOST" | awk 'NR==1{print $1}')" in
    127.*) ;;
    *)
      grep -q " $ALIAS\$" /etc/hosts || echo "127.0.0.1 $ALIAS" >>/etc/hosts
      HOST=$ALIAS
      ;;
  esac

  mkdir -p "$BASE/mnt1" "$BASE/mnt2" "$WD" "$RUN" "$LOGS"
  local bricks=() b
  for b in $(seq "$BRICKS"); do
    mkdir -p "$BASE/brick$b"
    bricks+=("$HOST:$BASE/brick$b")
  done
  # A private state dir and socket: nothing in /var/lib/glusterd is touched.
  glusterd -p "$BASE/glusterd.pid" -l "$LOGS/glusterd.log" \
    --xlator-option "management.working-directory=$WD" \
    --xlator-option "management.run-directory=$RUN" \
    --xlator-option "management.glusterd-sockfile=$SOCK"
  wait_for "$TIMEOUT" "glusterd" g volume list || {
    show_logs
    exit 1
  }
  # "force": the bricks are on the root file system (it needs trusted.* xattrs: ext4/xfs are fine).
  g volume create "$VOL" "${bricks[@]}" force >/dev/null
  local mopts=()
  if [ "$mode" = strict ]; then
    local o
    for o in stat-prefetch quick-read open-behind write-behind io-cache read-ahead readdir-ahead; do
      g volume set "$VOL" "performance.$o" off >/dev/null
    done
    # No kernel attribute, entry or page cache on the clients: reads reach the bricks.
    mopts=(--attribute-timeout=0 --entry-timeout=0 --negative-timeout=0 --direct-io-mode=enable --fopen-keep-cache=off)
  fi
  g volume start "$VOL" >/dev/null
  wait_for "$TIMEOUT" "the bricks of $VOL to come online" bricks_online || {
    g volume status "$VOL" >&2 || true
    show_logs
    exit 1
  }
  local i
  for i in 1 2; do
    glusterfs --volfile-server="$HOST" --volfile-id="$VOL" "${mopts[@]}" \
      --log-file="$LOGS/mnt$i.log" "$BASE/mnt$i"
  done
  wait_for "$TIMEOUT" "both client mounts to see each other's files" mode_ok "$mode" || {
    show_logs
    exit 1
  }
  echo "$mode" >"$BASE/mode"
  echo "GlusterFS up ($mode mode): $BASE/mnt1 $BASE/mnt2"
}

case "${1:-}" in
  up) up "${@:2}" ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 up [strict] | down | status" ;;
esac
