#!/bin/bash
# Regenerate the data tables rip-audit scores and lints with, from the
# installed systemd (252 on Debian 12) and libseccomp (2.5.4):
#   syscall-groups.txt      verbatim `systemd-analyze syscall-filter` output
#   syscall-unresolved.txt  group members that seccomp_syscall_resolve_name()
#                           does not resolve to a native (x86-64) number; the
#                           exposure check skips them (see AUDIT-SCORING.md)
# Needs gcc and libseccomp.so.2 (no headers). Run from anywhere.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
systemd-analyze syscall-filter 2>/dev/null > "$here/syscall-groups.txt"
cat > "$tmp/r.c" <<'C'
#include <stdio.h>
#include <string.h>
int seccomp_syscall_resolve_name(const char *name);
int main(void) {
    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        if (!line[0]) continue;
        if (seccomp_syscall_resolve_name(line) < 0) printf("%s\n", line);
    }
    return 0;
}
C
lib=$(ls /usr/lib/*-linux-gnu/libseccomp.so.2 | head -1)
gcc -o "$tmp/r" "$tmp/r.c" "$lib"
{
  echo "# Names listed by systemd-analyze syscall-filter that libseccomp"
  echo "# $(basename "$(readlink -f "$lib")" | sed 's/libseccomp.so.//') cannot resolve on the native architecture ($(uname -m))."
  grep -E '^    [a-z0-9_]+$' "$here/syscall-groups.txt" | sed 's/^ *//' | sort -u | "$tmp/r"
} > "$here/syscall-unresolved.txt"
# Every directive systemd 252 knows in [Unit], [Service] and [Install], for
# the unknown-directive lint (UNIT_UNKNOWN_DIRECTIVE).
/usr/lib/systemd/systemd --dump-configuration-items 2>/dev/null |
  awk '/^\[/{s=$0; next} /=/{split($0,a,"="); if (s=="[Unit]"||s=="[Service]"||s=="[Install]") print substr(s,2,length(s)-2), a[1]}' |
  sort -u > "$here/directives.txt"
