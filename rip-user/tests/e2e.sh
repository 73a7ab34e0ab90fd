#!/usr/bin/env bash
# rip-user on a real system (issue #4): in a booted systemd container,
# getent sees the accounts, the backup user reads a snapshot but not a live
# database, rrsync refuses anything but a read-only rsync, a running backup
# process is reported for restart, and removing a running app's user is
# refused. Run as root from the repository root:
#
#   bash rip-user/tests/e2e.sh [PATH/TO/rip-user]
#
# SANDBOX names the harness script (default tests/e2e/sandbox, commands
# up|down|env|exec); its image needs the rsync package (for rrsync). With
# the shared recipe: SANDBOX=.../systemd-sandbox/sandbox SDSB_EXTRA_PACKAGES=rsync.
set -euo pipefail

BIN=${1:-target/debug/rip-user}
SANDBOX=${SANDBOX:-tests/e2e/sandbox}
export RIP_SB_NAME=${RIP_SB_NAME:-rip-user-e2e} SDSB_NAME=${SDSB_NAME:-rip-user-e2e}
[[ -x $BIN ]] || { echo "e2e: no rip-user binary at $BIN (cargo build -p rip-user)" >&2; exit 2; }
[[ -f $SANDBOX ]] || { echo "e2e: no sandbox harness at $SANDBOX" >&2; exit 2; }

pass=0 fail=0
check() { # check NAME CMD...: CMD must succeed
  local name=$1; shift
  if "$@" >/tmp/rip-user-e2e.out 2>&1; then pass=$((pass + 1)); echo "ok   $name"
  else fail=$((fail + 1)); echo "FAIL $name"; sed 's/^/     /' /tmp/rip-user-e2e.out; fi
}
refuse() { # refuse NAME CMD...: CMD must fail
  local name=$1; shift
  if "$@" >/tmp/rip-user-e2e.out 2>&1; then fail=$((fail + 1)); echo "FAIL $name (succeeded)"; sed 's/^/     /' /tmp/rip-user-e2e.out
  else pass=$((pass + 1)); echo "ok   $name"; fi
}
in_ct() { bash "$SANDBOX" exec "$@"; }

bash "$SANDBOX" up >/dev/null
trap 'bash "$SANDBOX" down >/dev/null 2>&1 || true' EXIT
eval "$(bash "$SANDBOX" env)"
ROOTFS=${RIP_SB_ROOTFS:-${SDSB_ROOTFS:-}}
[[ -d $ROOTFS ]] || { echo "e2e: the harness gave no rootfs" >&2; exit 2; }
install -m 0755 "$BIN" "$ROOTFS/usr/local/bin/rip-user"
key=$(mktemp -d)/k
ssh-keygen -q -t ed25519 -N '' -C e2e -f "$key"
cp "$key.pub" "$ROOTFS/root/backup.pub"

# A running backup process, before rip-user touches its groups.
in_ct systemd-run --unit=backup-pull -p User=backup sleep 600 >/dev/null
out=$(in_ct sh -c 'rip-user --backup-key /root/backup.pub' <examples/apps.json)
check "first run changed every app" test "$(jq -s 'map(.rip_user.changed) | all' <<<"$out")" = true
check "running backup process reported for restart" \
  test "$(jq -s -r '.[0].rip_user.restart_needed.units | join(",")' <<<"$out")" = backup-pull.service
out2=$(in_ct sh -c 'rip-user --backup-key /root/backup.pub' <examples/apps.json)
check "second run changed nothing" test "$(jq -s 'map(.rip_user.changed) | any' <<<"$out2")" = false
check "getent sees the users" in_ct getent passwd app1 app2 app3 backup
check "backup is in app1 and app2 only" \
  test "$(in_ct id -nG backup)" = "backup app1 app2"
check "pwck clean" in_ct pwck -r -q
check "grpck clean" in_ct grpck -r

# The layout rip-perms makes, then what the backup user can read.
in_ct sh -c 'install -d -m 0710 -o app1 -g app1 /home/app1/data &&
  install -d -m 2750 -o app1 -g app1 /home/app1/data/backups &&
  echo snap >/home/app1/data/backups/snap.db && chown app1:app1 /home/app1/data/backups/snap.db &&
  chmod 0640 /home/app1/data/backups/snap.db &&
  echo live >/home/app1/data/app.db && chown app1:app1 /home/app1/data/app.db && chmod 0600 /home/app1/data/app.db'
check "backup reads a snapshot" in_ct su -s /bin/sh backup -c 'cat /home/app1/data/backups/snap.db'
refuse "backup cannot read a live database" in_ct su -s /bin/sh backup -c 'cat /home/app1/data/app.db'
refuse "backup cannot list an app home" in_ct su -s /bin/sh backup -c 'ls /home/app3'
forced=$(sed -n 's/^restrict,command="\([^"]*\)".*/\1/p' "$ROOTFS/home/backup/.ssh/authorized_keys")
check "the key is forced to rrsync -ro" test "$forced" = "/usr/bin/rrsync -ro /home"
refuse "rrsync refuses a shell" in_ct env SSH_ORIGINAL_COMMAND='sh -c id' su -s /bin/sh backup -c "$forced"
push=$(in_ct env SSH_ORIGINAL_COMMAND='rsync --server -logDtpre.iLsfxCIvu . app1/data/backups/' \
  su -s /bin/sh backup -c "$forced" </dev/null 2>&1 || true)
check "rrsync refuses a push (read-only)" grep -qi 'read-only' <<<"$push"

# Removing the account of a running app is refused.
in_ct systemd-run --unit=app3-svc -p User=app3 sleep 600 >/dev/null
refuse "removing a running app's user" in_ct rip-user --remove --app app3
check "app3 still exists" in_ct getent passwd app3

echo "$pass passed, $fail failed"
((fail == 0))
