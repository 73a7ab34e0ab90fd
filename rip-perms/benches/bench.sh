#!/usr/bin/env bash
# Benchmark of rip-perms against the tools it replaces (issue #8).
#
# Builds a tree of about N entries (default 1,000,000) in a temp dir and
# reports, side by side in one run:
#   no-op pass (all correct): rip-perms | find -printf '%U%m\n' | chown -R
#   fix pass   (all wrong)  : rip-perms | chown -R then chmod -R
# Run as root (the fix pass changes owners). Not a timed test: it prints
# figures and the ratios against the targets, and always exits 0 unless a
# step fails. Usage: benches/bench.sh [N]   (RIP_PERMS=path to the binary,
# default: the release build under $CARGO_TARGET_DIR or ./target)
set -euo pipefail

n=${1:-1000000}
bin=${RIP_PERMS:-${CARGO_TARGET_DIR:-$(dirname "$0")/../../target}/release/rip-perms}
[ -x "$bin" ] || { echo "bench: no binary at $bin (cargo build --release -p rip-perms)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "bench: run as root" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/var/tmp}/rip-perms-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
home=$root/home/bench
uid=60010
mkdir -p "$root/etc" "$home"
printf 'root:x:0:0::/root:/bin/sh\nbench:x:%s:%s::/home/bench:/bin/sh\n' $uid $uid >"$root/etc/passwd"
printf 'root:x:0:\nbench:x:%s:\n' $uid >"$root/etc/group"

# Tree: data/dA/dB/ with 99 files each; every 10th file is a database.
echo "bench: building a tree of about $n entries in $work" >&2
python3 - "$home" "$n" <<'PY'
import os, stat, sys
home, n = sys.argv[1], int(sys.argv[2])
per_dir = 99
leaf_dirs = max(1, n // (per_dir + 1))
top = max(1, int(leaf_dirs ** 0.5))
made = 0
os.makedirs(os.path.join(home, "data"), exist_ok=True)
os.makedirs(os.path.join(home, "bin"), exist_ok=True)
for a in range(top):
    da = os.path.join(home, "data", "d%03d" % a)
    os.mkdir(da)
    made += 1
    for b in range((leaf_dirs + top - 1) // top):
        if made >= n:
            break
        db = os.path.join(da, "d%03d" % b)
        os.mkdir(db)
        made += 1
        for f in range(per_dir):
            name = "f%02d.db" % f if f % 10 == 0 else "f%02d" % f
            os.mknod(os.path.join(db, name), 0o644 | stat.S_IFREG)
            made += 1
print(made, file=sys.stderr)
PY
entries=$(find "$home" | wc -l)
echo "bench: $entries entries" >&2

ms() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $(((e - s) / 1000000)); }
rp() { "$bin" --root "$root" --app bench "$@"; }
all_wrong() { chown -R 0:0 "$home"; chmod -R 0755 "$home"; }

best() { local a b; a=$(ms "$@"); b=$(ms "$@"); echo $((a < b ? a : b)); }

# Bring everything right once (and warm the caches), then the no-op pass:
# each command twice, interleaved, best time kept (the machine is shared).
rp >/dev/null
find "$home" -printf '%U%m\n' >/dev/null
noop_rp=$(best rp); noop_find=$(best find "$home" -printf '%U%m\n'); noop_chown=$(best chown -R $uid:$uid "$home")
second=$(rp | python3 -c 'import json,sys; r=json.load(sys.stdin)["rip_perms"]; print(r["changed"], r["counts"])')

# Fix pass: everything wrong (root-owned, 0755), then fixed.
all_wrong
fix_rp=$(ms rp)
check=$(rp | python3 -c 'import json,sys; r=json.load(sys.stdin)["rip_perms"]; print(r["changed"], r["counts"]["seen"])')
all_wrong
fix_chown=$(ms chown -R $uid:$uid "$home")
fix_chmod=$(ms chmod -R 0700 "$home")
fix_both=$((fix_chown + fix_chmod))

# Harder variant: directories already the app's (so the app could race
# renames in them) and every file root-owned 0644: each file is opened
# O_PATH|O_NOFOLLOW and checked before it is changed.
all_wrong
find "$home" -type d -exec chown $uid:$uid {} +
find "$home" -type f -exec chmod 0644 {} +
fix_app_rp=$(ms rp)

ratio() { python3 -c "print(f'{$1/$2:.2f}x')"; }
cat <<OUT
rip-perms benchmark: $entries entries, $(nproc) CPUs, $(uname -r)
no-op pass (all correct)
  rip-perms            ${noop_rp} ms
  find -printf %U%m    ${noop_find} ms   rip-perms/find    = $(ratio "$noop_rp" "$noop_find") (target <= 1.2x)
  chown -R             ${noop_chown} ms   rip-perms/chown-R = $(ratio "$noop_rp" "$noop_chown") (target <= 0.8x)
  second run after fix: changed, counts = $second
fix pass (all wrong: root:root 0755)
  rip-perms            ${fix_rp} ms
  chown -R + chmod -R  ${fix_both} ms (${fix_chown} + ${fix_chmod})   ratio = $(ratio "$fix_rp" "$fix_both") (target <= 0.8x)
  run after fix: changed, seen = $check
fix pass, app-owned directories, root-owned 0644 files (open + verify per file)
  rip-perms            ${fix_app_rp} ms   ratio to chown -R + chmod -R = $(ratio "$fix_app_rp" "$fix_both")
OUT
