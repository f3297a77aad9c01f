#!/usr/bin/env bash
# The real systemd test: installs Barista as a package would (DESTDIR), boots systemd as PID 1 of
# private PID, mount and UTS namespaces, and runs the installed baristad.service under it:
# start (Type=notify), a batch, the watchdog, `systemctl reload` (good and bad config), a crash
# (SIGKILL) and its restart, and `systemctl stop`.
#
# Usage: run_systemd_test.sh BUILD_DIR WORK_DIR [CMAKE]
#   BUILD_DIR  a built tree (`cmake --install` runs on it)
#   WORK_DIR   scratch folder for everything the test makes (emptied first)
# Exit: 0 passed, 1 failed, 77 skipped (not root, no systemd, no namespaces, PID 1 is systemd).
#
# The real machine is not touched: the test's systemd runs no boot service (the test target has
# no dependencies, the unit gets DefaultDependencies=no, and every unit the machine's targets
# want is masked), /run, /tmp and /var/tmp are private tmpfs, /var/lib is the test's folder, and
# /etc/passwd and /etc/group are copies with the `barista` user added by systemd-sysusers.
# shellcheck disable=SC2317  # functions run through wait_for and the traps
set -uo pipefail

BUILD_DIR=${1:?usage: run_systemd_test.sh BUILD_DIR WORK_DIR [CMAKE]}
WORK=${2:?usage: run_systemd_test.sh BUILD_DIR WORK_DIR [CMAKE]}
CMAKE=${3:-cmake}
SYSTEMD=/lib/systemd/systemd
WATCHDOG_SEC=4        # the test's WatchdogSec=: short, so that a daemon that never pings is caught
STEP_TIMEOUT=60       # for each systemctl call
MAX_EXPOSURE=1.4      # `systemd-analyze security` of the shipped unit (docs/systemd.md): any loss fails

SD_PID=""       # the test's systemd, as seen from here
NEW_CGROUPS=()  # cgroup folders its systemd will make, for the clean-up
UNSHARE_PID=""
PASSED=0

log() { printf '[systemd-test] %s\n' "$*"; }
ok() { log "ok: $*"; }
skip() {
  log "SKIPPED: $*"
  exit 77
}
show_logs() {
  if [ -n "$SD_PID" ] && kill -0 "$SD_PID" 2>/dev/null; then
    log "---- systemctl status baristad.service"
    timeout 10 nsenter -t "$SD_PID" -m -p -- env SYSTEMD_COLORS=0 systemctl --no-pager status baristad.service 2>&1 | head -n 20
    timeout 10 nsenter -t "$SD_PID" -m -p -- systemctl show -p ActiveState,SubState,Result,MainPID,NRestarts,ExecMainCode,ExecMainStatus baristad.service 2>&1
  fi
  for f in "$WORK/log/baristad.log" "$WORK/log/systemd.log"; do
    if [ -s "$f" ]; then
      log "---- last lines of $f"
      tail -n 40 "$f"
    fi
  done
}
fail() {
  log "FAILED: $*"
  show_logs
  exit 1
}

cleanup() {
  local rc=$?
  if [ -n "$SD_PID" ]; then
    kill -KILL "$SD_PID" 2>/dev/null  # PID 1 of the namespace: everything in it dies with it
  fi
  if [ -n "$UNSHARE_PID" ]; then
    kill -KILL "$UNSHARE_PID" 2>/dev/null
    wait "$UNSHARE_PID" 2>/dev/null
  fi
  # The test's systemd made its cgroups (init.scope, system.slice) at the top of the machine's
  # hierarchies; remove those that were not there before (empty now: their processes are dead).
  # A dying cgroup may refuse rmdir for a moment.
  if [ "${#NEW_CGROUPS[@]}" -gt 0 ]; then
    wait_for 5 remove_cgroups || log "note: could not remove ${NEW_CGROUPS[*]}"
  fi
  if [ "$PASSED" = 1 ]; then
    rm -rf "$WORK"
  elif [ "$rc" != 77 ] && [ -d "$WORK" ]; then
    log "kept for a look: $WORK"
  fi
}
remove_cgroups() {
  local dir left=0
  for dir in "${NEW_CGROUPS[@]}"; do
    if [ -d "$dir" ]; then
      find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || left=1
    fi
  done
  return "$left"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# wait_for SECONDS COMMAND...: polls COMMAND every 100 ms until it succeeds; fails after SECONDS.
wait_for() {
  local seconds=$1
  shift
  local end=$((SECONDS + seconds))
  until "$@"; do
    if [ "$SECONDS" -ge "$end" ]; then
      return 1
    fi
    sleep 0.1
  done
}

# ---------------------------------------------------------------------------------------------
# Can it run here?

[ "$(id -u)" = 0 ] || skip "needs root: it boots systemd in private namespaces"
[ -x "$SYSTEMD" ] || skip "no $SYSTEMD"
for tool in unshare nsenter setpriv systemctl systemd-analyze systemd-sysusers systemd-tmpfiles \
  flock timeout pgrep; do
  command -v "$tool" >/dev/null || skip "no $tool"
done
# A second systemd would share the cgroup tree with the machine's own: run only where PID 1 is
# something else (a container, a CI VM).
[ "$(cat /proc/1/comm 2>/dev/null)" != systemd ] ||
  skip "PID 1 of this machine is systemd; this test boots its own systemd and needs a machine whose PID 1 is not"
unshare --pid --fork --mount --uts --mount-proc true 2>/dev/null ||
  skip "unshare --pid --fork --mount --uts --mount-proc fails here (no namespaces)"
command -v "$CMAKE" >/dev/null || skip "no $CMAKE"

case "$WORK" in
  /*) ;;
  *) WORK="$PWD/$WORK" ;;
esac

# Two such systemds at once would both manage /sys/fs/cgroup/system.slice/baristad.service.
exec 9>/tmp/barista-systemd-test.lock
flock -w 900 9 || fail "another run of this test holds /tmp/barista-systemd-test.lock"

# Inside, a tmpfs on BASE holds the install prefix and a view of WORK (which may be under /tmp).
BASE=""
for dir in /opt /srv /mnt; do
  if [ -d "$dir" ] && [ "${WORK#"$dir"/}" = "$WORK" ]; then
    BASE=$dir
    break
  fi
done
[ -n "$BASE" ] || skip "needs one of /opt, /srv, /mnt (not holding $WORK) as a mount point"
PREFIX=$BASE/barista-test        # the install prefix, as the unit names it
NS_WORK=$BASE/barista-test-work  # WORK, as seen inside the namespace
CONFIG=$PREFIX/etc/barista/barista.yaml

rm -rf "$WORK"
mkdir -p "$WORK"/{root,varlib,sysroot/etc,units,log} || fail "cannot make $WORK"
STAGED=$WORK/root$PREFIX
SPOOL=$WORK/varlib/barista  # /var/lib/barista inside
log "work dir $WORK; install prefix $PREFIX (staged in $STAGED)"

# ---------------------------------------------------------------------------------------------
# Install, and check what was installed.

DESTDIR="$WORK/root" "$CMAKE" --install "$BUILD_DIR" --prefix "$PREFIX" >"$WORK/log/install.log" 2>&1 ||
  fail "cmake --install failed: $(tail -n 5 "$WORK/log/install.log")"
UNIT=$STAGED/lib/systemd/system/baristad.service
for f in "$UNIT" "$STAGED/lib/sysusers.d/barista.conf" "$STAGED/lib/tmpfiles.d/barista.conf" \
  "$STAGED/bin/baristad" "$STAGED/bin/barista" "$STAGED/lib/barista/plugins/echo.so" \
  "$STAGED/lib/barista/plugins/shell.so"; do
  [ -e "$f" ] || fail "not installed: ${f#"$WORK/root"}"
done
grep -qx "ExecStart=$PREFIX/bin/baristad --config $CONFIG" "$UNIT" ||
  fail "ExecStart= does not name the installed baristad and config: $(grep ^ExecStart= "$UNIT")"
grep -qx "ExecReload=$PREFIX/bin/barista reload --config $CONFIG" "$UNIT" ||
  fail "ExecReload= is not 'barista reload' with the same config: $(grep ^ExecReload= "$UNIT")"
grep -qx "Type=notify" "$UNIT" || fail "the unit is not Type=notify"
ok "installed unit, sysusers.d and tmpfiles.d files; ExecStart/ExecReload name $PREFIX"

exposure=$(systemd-analyze security --offline=true "$UNIT" 2>&1 |
  sed -n 's/.*Overall exposure level for baristad.service: \([0-9.]*\).*/\1/p')
[ -n "$exposure" ] || fail "systemd-analyze security --offline=true gave no exposure level"
awk -v e="$exposure" -v max="$MAX_EXPOSURE" 'BEGIN { exit !(e <= max) }' ||
  fail "exposure level $exposure is above $MAX_EXPOSURE: hardening was lost"
ok "systemd-analyze security --offline=true: exposure $exposure (at most $MAX_EXPOSURE)"

# verify wants the unit's programs at the paths it names: look at the install in a mount
# namespace of its own, with the staged prefix mounted where the unit expects it.
verify_out=$(unshare --mount sh -c '
  mount --make-rprivate / && mount -t tmpfs tmpfs "$1" && mkdir "$2" && mount --bind "$3" "$2" &&
  systemd-analyze verify "$2/lib/systemd/system/baristad.service" 2>&1' sh "$BASE" "$PREFIX" "$STAGED")
verify_rc=$?
[ "$verify_rc" = 0 ] && [ -z "$verify_out" ] ||
  fail "systemd-analyze verify (exit $verify_rc) reported: $verify_out"
ok "systemd-analyze verify reports nothing"

# The shipped sysusers.d and tmpfiles.d files, applied to copies of /etc/passwd and /etc/group.
cp /etc/passwd /etc/group "$WORK/sysroot/etc/"
systemd-sysusers --root="$WORK/sysroot" "$STAGED/lib/sysusers.d/barista.conf" >"$WORK/log/sysusers.log" 2>&1 ||
  fail "systemd-sysusers: $(cat "$WORK/log/sysusers.log")"
barista_uid=$(awk -F: '$1 == "barista" { print $3 }' "$WORK/sysroot/etc/passwd")
barista_gid=$(awk -F: '$1 == "barista" { print $3 }' "$WORK/sysroot/etc/group")
[ -n "$barista_uid" ] && [ -n "$barista_gid" ] || fail "systemd-sysusers made no barista user and group"
systemd-tmpfiles --root="$WORK/sysroot" --create "$STAGED/lib/tmpfiles.d/barista.conf" ||
  fail "systemd-tmpfiles --create failed"
[ "$(stat -c '%u:%g %a' "$WORK/sysroot/var/lib/barista")" = "$barista_uid:$barista_gid 750" ] ||
  fail "tmpfiles.d made /var/lib/barista as $(stat -c '%u:%g %a' "$WORK/sysroot/var/lib/barista")"
ok "sysusers.d makes user and group barista ($barista_uid:$barista_gid); tmpfiles.d makes /var/lib/barista 0750 barista:barista"

# ---------------------------------------------------------------------------------------------
# The test's config, units and boot script.

write_config() {  # write_config [EXTRA POOL TEXT]: the config file the unit names
  cat >"$STAGED/etc/barista/barista.yaml" <<EOF
spool: /var/lib/barista
control_socket: /run/barista/barista.sock
plugin_path: [$PREFIX/lib/barista/plugins]
log_level: info
shutdown_timeout: 3s
pools:
  echo:
    plugin: echo
    workers: 2
  sh:
    plugin: shell
    workers: 1
    config:
      command: [sleep, "{}"]
${1:-}
EOF
}
write_config

cat >"$WORK/units/barista-test.target" <<EOF
[Unit]
Description=Barista systemd test (starts nothing)
DefaultDependencies=no
EOF
# Every unit the machine's targets pull in, and the usual boot services, are masked: nothing of
# the machine's boot may run against the shared disk.
{
  for dir in /lib/systemd/system /usr/lib/systemd/system /etc/systemd/system; do
    for link in "$dir"/*.wants/* "$dir"/*.requires/*; do
      [ -e "$link" ] || [ -L "$link" ] && basename "$link"
    done
  done
  printf '%s\n' sysinit.target basic.target local-fs.target local-fs-pre.target swap.target \
    timers.target sockets.target paths.target getty.target multi-user.target graphical.target \
    default.target rescue.target emergency.target rescue.service emergency.service \
    network.target network-online.target network-pre.target remote-fs.target cryptsetup.target \
    systemd-tmpfiles-setup.service systemd-tmpfiles-setup-dev.service \
    systemd-tmpfiles-clean.service systemd-tmpfiles-clean.timer systemd-sysctl.service \
    systemd-binfmt.service systemd-modules-load.service systemd-remount-fs.service \
    systemd-sysusers.service systemd-journald.service systemd-journald.socket \
    systemd-journald-dev-log.socket systemd-journald-audit.socket systemd-journal-flush.service \
    systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
    systemd-udev-trigger.service systemd-networkd.service systemd-resolved.service \
    systemd-timesyncd.service systemd-logind.service systemd-random-seed.service \
    systemd-update-utmp.service systemd-machine-id-commit.service systemd-firstboot.service \
    systemd-fsck-root.service systemd-pstore.service systemd-hwdb-update.service \
    systemd-journal-catalog-update.service systemd-update-done.service ldconfig.service \
    dbus.service dbus.socket getty@.service serial-getty@.service console-getty.service \
    cron.service ssh.service postgresql.service e2scrub_reap.service
} | grep -v -e '\.mount$' -e '\.slice$' -e '\.scope$' -e '\.device$' -e '^baristad\.service$' |
  sort -u | while read -r name; do
  ln -sf /dev/null "$WORK/units/$name"
done
cp "$UNIT" "$WORK/units/baristad.service"  # the shipped unit, as installed
mkdir -p "$WORK/units/baristad.service.d"
cat >"$WORK/units/baristad.service.d/50-test.conf" <<EOF
# The test's changes to the shipped unit.
[Unit]
# sysinit.target and the rest of the machine's boot must not start here.
DefaultDependencies=no
[Service]
WatchdogSec=${WATCHDOG_SEC}s
# No journald here: the daemon's stderr goes to a file the test reads.
StandardOutput=append:$NS_WORK/log/baristad.log
StandardError=inherit
EOF

cat >"$WORK/boot.sh" <<EOF
#!/bin/bash
# Runs as PID 1 of the new namespaces, then becomes systemd.
set -e
mount --make-rprivate /
mount -t tmpfs -o mode=0755 tmpfs "$BASE"
mkdir "$PREFIX" "$NS_WORK"
mount --bind "$WORK" "$NS_WORK"
mount --bind "$NS_WORK/root$PREFIX" "$PREFIX"
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=1777 tmpfs /var/tmp
mount --bind "$NS_WORK/varlib" /var/lib
mount --bind "$NS_WORK/sysroot/etc/passwd" /etc/passwd
mount --bind "$NS_WORK/sysroot/etc/group" /etc/group
# system.control is searched before /etc/systemd/system: the machine's own units cannot win.
mkdir -p /run/systemd/system /run/systemd/system.control
cp -a "$NS_WORK/units/." /run/systemd/system.control/
# As in a container: no kernel modules, no hardware setup. (Its own log goes nowhere: stdio is
# /dev/null for PID 1; the test shows the unit's state on failure instead.)
export container=barista-test
exec $SYSTEMD --system --unit=barista-test.target --show-status=no
EOF

for hierarchy in /sys/fs/cgroup /sys/fs/cgroup/*; do
  for name in init.scope system.slice; do
    [ -e "$hierarchy/$name" ] || NEW_CGROUPS+=("$hierarchy/$name")
  done
done

# ---------------------------------------------------------------------------------------------
# Boot. setpriv: unshare dies with this script, and --kill-child takes systemd with it.

setpriv --pdeathsig KILL unshare --pid --fork --kill-child --mount --uts --mount-proc \
  bash "$WORK/boot.sh" >"$WORK/log/systemd.log" 2>&1 9>&- &
UNSHARE_PID=$!

find_systemd() {
  local child
  kill -0 "$UNSHARE_PID" 2>/dev/null || fail "the namespace did not come up: $(tail -n 5 "$WORK/log/systemd.log")"
  child=$(cat "/proc/$UNSHARE_PID/task/$UNSHARE_PID/children" 2>/dev/null | awk '{ print $1 }')
  [ -n "$child" ] && [ "$(cat "/proc/$child/comm" 2>/dev/null)" = systemd ] && SD_PID=$child
}
wait_for 30 find_systemd || fail "systemd did not start in the namespace"

in_ns() { timeout "$STEP_TIMEOUT" nsenter -t "$SD_PID" -m -p -- "$@"; }
sctl() { in_ns env SYSTEMD_PAGER= SYSTEMD_COLORS=0 systemctl --no-pager "$@"; }
prop() { sctl show -p "$1" --value baristad.service; }
booted() {
  local state
  state=$(sctl is-system-running 2>/dev/null)
  [ "$state" = running ] || [ "$state" = degraded ]
}
wait_for 60 booted || fail "the test's systemd did not finish booting: $(sctl is-system-running 2>&1)"
ok "systemd $(sctl --version | awk 'NR == 1 { print $2 }') booted as PID 1 of a private namespace (pid $SD_PID here): $(sctl is-system-running)"
running_services=$(sctl list-units --type=service --state=active --no-legend --plain | awk '{ print $1 }' | tr '\n' ' ')
[ -z "$running_services" ] || log "note: services active before the test: $running_services"

# ---------------------------------------------------------------------------------------------
# systemctl start returns once the daemon said READY=1, i.e. with every pool up.

sctl start baristad.service || fail "systemctl start baristad failed: $(sctl status baristad.service 2>&1)"
[ "$(prop ActiveState)" = active ] || fail "after start: ActiveState=$(prop ActiveState)"
for pool in echo sh; do
  [ -d "$SPOOL/$pool/inbox" ] || fail "systemctl start returned before pool $pool's inbox existed"
done
main_pid=$(prop MainPID)
[ "$(in_ns ps -o user= -p "$main_pid" | tr -d ' ')" = barista ] ||
  fail "baristad (pid $main_pid) does not run as user barista"
status_text=$(prop StatusText)
case "$status_text" in *"2 pools"*) ;; *) fail "STATUS= not reported: '$status_text'" ;; esac
ok "systemctl start returned with the unit active, both inboxes there, MainPID $main_pid as user barista, status '$status_text'"
started_at=$SECONDS

# A batch dropped into the inbox is processed by a plugin loaded under the hardened unit
# (MemoryDenyWriteExecute=, SystemCallFilter=, ...).
drop() {  # drop POOL NAME CONTENT
  printf '%s' "$3" >"$SPOOL/$1/inbox/.$2.tmp" && mv "$SPOOL/$1/inbox/.$2.tmp" "$SPOOL/$1/inbox/$2"
}
summary_of() { cat "$SPOOL/$1/done/$2/summary.json" 2>/dev/null; }
has_summary() { [ -s "$SPOOL/$1/done/$2/summary.json" ]; }
drop echo first.txt $'alpha\nbeta\ngamma\n'
wait_for 30 has_summary echo first || fail "batch 'first' did not finish: $(ls -R "$SPOOL/echo" 2>&1 | head -20)"
summary=$(summary_of echo first)
case "$summary" in *'"ok":3'*) ;; *) fail "batch 'first': $summary" ;; esac
grep -q '"output":"beta"' "$SPOOL/echo/done/first/results.jsonl" || fail "no output 'beta' in results"
ok "a batch dropped into echo/inbox was processed: $summary"

# The watchdog: the daemon pings (WatchdogTimestamp moves on), so systemd leaves it alone.
first_ping=$(prop WatchdogTimestampMonotonic)
[ "$(prop WatchdogUSec)" = "${WATCHDOG_SEC}s" ] || log "note: WatchdogUSec=$(prop WatchdogUSec)"
# (A restart would move it too: the same MainPID is part of the check.)
same_daemon() { [ "$(prop MainPID)" = "$main_pid" ] && [ "$(prop NRestarts)" = 0 ]; }
pinged() { same_daemon && [ "$(prop WatchdogTimestampMonotonic)" -gt "$first_ping" ]; }
wait_for $((2 * WATCHDOG_SEC)) pinged ||
  fail "no WATCHDOG=1 from baristad (pid $main_pid) within $((2 * WATCHDOG_SEC))s of WatchdogSec=${WATCHDOG_SEC}s: MainPID now $(prop MainPID), NRestarts=$(prop NRestarts)"
same_daemon || fail "baristad was restarted (NRestarts=$(prop NRestarts)) though it pinged"
ok "baristad sends WATCHDOG=1 (last keep-alive at monotonic $(prop WatchdogTimestampMonotonic)us)"

# ---------------------------------------------------------------------------------------------
# systemctl reload: synchronous; a good config is applied, a bad one fails the reload and the
# old config keeps running.

write_config $'  second:\n    plugin: echo\n'
sctl reload baristad.service || fail "systemctl reload with a good config failed: $(tail -n 5 "$WORK/log/baristad.log")"
[ -d "$SPOOL/second/inbox" ] || fail "systemctl reload returned before the new pool 'second' was up"
[ "$(prop ActiveState)" = active ] || fail "after reload: ActiveState=$(prop ActiveState)"
[ "$(prop MainPID)" = "$main_pid" ] || fail "reload restarted the daemon"
drop second after-reload.txt $'one\ntwo\n'
wait_for 30 has_summary second after-reload || fail "the new pool did not process a batch"
ok "systemctl reload (good config) returned with pool 'second' up; it processed a batch"

write_config $'  second:\n    plugin: echo\n    wokers: 3\n'
if sctl reload baristad.service 2>"$WORK/log/reload.err"; then
  fail "systemctl reload succeeded with a bad config"
fi
grep -q "unknown key 'wokers'" "$WORK/log/baristad.log" || fail "the rejected reload's error is not in the log"
[ "$(prop ActiveState)" = active ] || fail "after a rejected reload: ActiveState=$(prop ActiveState)"
[ "$(prop MainPID)" = "$main_pid" ] || fail "a rejected reload restarted the daemon"
drop second still-there.txt $'three\n'
wait_for 30 has_summary second still-there || fail "the old config (pool 'second') stopped working"
ok "systemctl reload (bad config) failed (exit non-zero, \"unknown key 'wokers'\" logged); still active on the old config"
write_config $'  second:\n    plugin: echo\n'

# Long enough under WatchdogSec that a daemon without keep-alives would have been killed.
while [ $((SECONDS - started_at)) -le $((2 * WATCHDOG_SEC + 1)) ]; do sleep 0.5; done
[ "$(prop MainPID)" = "$main_pid" ] && [ "$(prop NRestarts)" = 0 ] ||
  fail "baristad was restarted (NRestarts=$(prop NRestarts)): did the watchdog fire?"
ok "$((SECONDS - started_at))s after start, same MainPID, NRestarts=0 (WatchdogSec=${WATCHDOG_SEC}s)"

# ---------------------------------------------------------------------------------------------
# A crash (SIGKILL) is restarted by systemd, and the plugin's child process of the killed daemon
# does not outlive it (KillMode=mixed: what is left of the cgroup is killed).

drop sh sleeper.txt $'300\n'
sleeper_pid() { in_ns pgrep -x sleep | head -n 1; }
has_sleeper() { [ -n "$(sleeper_pid)" ]; }
wait_for 30 has_sleeper || fail "the shell plugin's 'sleep 300' did not start"
old_sleeper=$(sleeper_pid)
in_ns kill -KILL "$main_pid" || fail "cannot kill baristad"
restarted() {
  local pid
  pid=$(prop MainPID)
  [ "$pid" != 0 ] && [ "$pid" != "$main_pid" ] && [ "$(prop ActiveState)" = active ]
}
wait_for 30 restarted || fail "baristad was not restarted after SIGKILL (state $(prop ActiveState)/$(prop SubState))"
new_pid=$(prop MainPID)
[ "$(prop NRestarts)" -ge 1 ] || fail "NRestarts=$(prop NRestarts) after a restart"
sleeper_gone() { ! in_ns kill -0 "$old_sleeper" 2>/dev/null; }
wait_for 10 sleeper_gone || fail "the killed daemon's 'sleep 300' (pid $old_sleeper) outlived it"
ok "after SIGKILL of $main_pid: restarted as $new_pid (NRestarts=$(prop NRestarts)), its child $old_sleeper gone"

# ---------------------------------------------------------------------------------------------
# systemctl stop: graceful, with the recovered 'sleep 300' job still running (it is cancelled
# after shutdown_timeout: 3s), well within TimeoutStopSec.

wait_for 30 has_sleeper || fail "the recovered 'sleep 300' job did not run again after the restart"
stop_started=$SECONDS
sctl stop baristad.service || fail "systemctl stop failed"
[ "$(prop ActiveState)" = inactive ] || fail "after stop: ActiveState=$(prop ActiveState) (Result=$(prop Result))"
[ "$(prop Result)" = success ] || fail "after stop: Result=$(prop Result)"
[ "$(prop ExecMainStatus)" = 0 ] || fail "baristad exited with $(prop ExecMainStatus)"
grep -q "baristad stopped" "$WORK/log/baristad.log" || fail "the log does not show a clean stop"
in_ns pgrep -x sleep >/dev/null && fail "a 'sleep' of the shell plugin survived the stop"
ok "systemctl stop: inactive (Result=success, exit 0) after $((SECONDS - stop_started))s, 'baristad stopped' logged, no child left"

PASSED=1
log "PASSED"
exit 0
