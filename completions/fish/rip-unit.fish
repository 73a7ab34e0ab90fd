complete -c rip-unit -l app -d 'Act on one app given by flags instead of reading specs on stdin' -r
complete -c rip-unit -l port -d 'With --app: a port the app listens on (repeatable)' -r
complete -c rip-unit -l metrics-port -d 'With --app: the app\'s metrics port' -r
complete -c rip-unit -l runtime -d 'With --app: runtime of the binary (go, rust, c, node, jvm, python, other)' -r
complete -c rip-unit -l home -d 'With --app: the app\'s home directory' -r
complete -c rip-unit -l root -d 'Act on the system rooted at DIR instead of /' -r -F
complete -c rip-unit -l backups -d 'With --app: enable backups in the default directory'
complete -c rip-unit -l allow-empty -d 'Accept an input with no app at all'
complete -c rip-unit -l dry-run -d 'Report what would change, and change nothing'
complete -c rip-unit -l reload -d 'Run `systemctl daemon-reload` when a unit file changed (needs --root /)'
complete -c rip-unit -l enable -d 'Enable the units (with --root DIR, offline through `systemctl --root`)'
complete -c rip-unit -l now -d 'Start the units, or restart them when their file changed (needs --root /)'
complete -c rip-unit -l remove -d 'Stop, disable and remove each app\'s unit (and socket) instead'
complete -c rip-unit -l force -d 'Take over a unit name that is already in use'
complete -c rip-unit -l print -d 'Print the unit files on stdout instead of writing them or any JSON'
complete -c rip-unit -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rip-unit -s V -l version -d 'Print version'
