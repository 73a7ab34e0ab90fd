complete -c rip-audit -l app -d 'Act on one app given by flags instead of reading specs on stdin' -r
complete -c rip-audit -l port -d 'With --app: a port the app listens on (repeatable)' -r
complete -c rip-audit -l metrics-port -d 'With --app: the app\'s metrics port' -r
complete -c rip-audit -l runtime -d 'With --app: runtime of the binary (go, rust, c, node, jvm, python, other)' -r
complete -c rip-audit -l home -d 'With --app: the app\'s home directory' -r
complete -c rip-audit -l root -d 'Act on the system rooted at DIR instead of /' -r -F
complete -c rip-audit -l unit -d 'Audit these unit files instead of reading app specs' -r -F
complete -c rip-audit -l threshold -d 'Exit 1 when a unit\'s exposure is above this value' -r
complete -c rip-audit -l fail-on -d 'Exit 1 when any finding has at least this severity' -r -f -a "info\t'Worth knowing; nothing to fix'
low\t'Minor hardening gap'
medium\t'Weakens isolation'
high\t'Breaks isolation or the app'
critical\t'Another principal can take over the app or the host'"
complete -c rip-audit -l format -d 'Output format: NDJSON records, a human summary, or compact scores' -r -f -a "json\t'NDJSON, one record per app or unit'
text\t'A human-readable summary'
scores\t'One compact line per unit: score and label (no checks, no findings)'"
complete -c rip-audit -l observe -d 'Compare running services with their units (default: only when --root is /)' -r -f -a "auto\t'Only when --root is / (or --proc-dir is given)'
yes\t'Always (a missing cgroup is reported)'
no\t'Never'"
complete -c rip-audit -l proc-dir -d 'Where /proc is (for observation; default `<root>/proc`)' -r -F
complete -c rip-audit -l cgroup-dir -d 'Where the cgroup file system is (default `<root>/sys/fs/cgroup`)' -r -F
complete -c rip-audit -l unit-dir -d 'Directory of the app units, under --root' -r -F
complete -c rip-audit -l backup-user -d 'Name of the backup user' -r
complete -c rip-audit -l backups -d 'With --app: enable backups in the default directory'
complete -c rip-audit -l allow-empty -d 'Accept an input with no app at all'
complete -c rip-audit -l dry-run -d 'Report what would change, and change nothing'
complete -c rip-audit -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rip-audit -s V -l version -d 'Print version'
