# Shared by gluster.sh and ceph.sh (sourced, not run): waiting, the mount
# table, and the two checks that both client mounts show one volume and
# read each other's writes at once. The caller sets BASE (mounts at
# $BASE/mnt1, $BASE/mnt2) and NAME (for messages).

say() { echo "$NAME: $*" >&2; }
die() {
  say "$*"
  exit 1
}

wait_for() {
  local secs=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      say "timed out after ${secs}s waiting for $what"
      return 1
    fi
    sleep 0.2
  done
}

is_mounted() { awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo; }

our_mounts() { awk -v b="$BASE/" 'index($5, b) == 1 { print $5 }' /proc/self/mountinfo | sort -r; }

# Whether something listens on TCP port $1 (state 0A = LISTEN).
port_in_use() {
  awk -v port="$(printf '%04X' "$1")" \
    'NR > 1 { split($2, a, ":"); if (a[2] == port && $4 == "0A") found = 1 } END { exit !found }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

visible() {
  local probe=".tresor-backend-probe.$$.$RANDOM" ok=1
  is_mounted "$BASE/mnt1" && is_mounted "$BASE/mnt2" || return 1
  { echo probe >"$BASE/mnt1/$probe"; } 2>/dev/null || return 1
  [ "$(cat "$BASE/mnt2/$probe" 2>/dev/null)" = probe ] && ok=0
  rm -f "$BASE/mnt1/$probe" 2>/dev/null
  return $ok
}

# A rewrite in place through client 1 is read at once through client 2.
coherent() {
  local probe=".tresor-backend-probe.$$.$RANDOM" ok=1
  visible || return 1
  {
    printf 1111 >"$BASE/mnt1/$probe" && cat "$BASE/mnt2/$probe" >/dev/null &&
      printf 2222 | dd of="$BASE/mnt1/$probe" conv=notrunc status=none &&
      [ "$(cat "$BASE/mnt2/$probe")" = 2222 ] && ok=0
  } 2>/dev/null
  rm -f "$BASE/mnt1/$probe" 2>/dev/null
  return $ok
}

mode_ok() {
  case "$1" in
    strict) coherent ;;
    *) visible ;;
  esac
}
