complete -c rip-perms -l app -d 'Act on one app given by flags instead of reading specs on stdin' -r
complete -c rip-perms -l port -d 'With --app: a port the app listens on (repeatable)' -r
complete -c rip-perms -l metrics-port -d 'With --app: the app\'s metrics port' -r
complete -c rip-perms -l runtime -d 'With --app: runtime of the binary (go, rust, c, node, jvm, python, other)' -r
complete -c rip-perms -l home -d 'With --app: the app\'s home directory' -r
complete -c rip-perms -l root -d 'Act on the system rooted at DIR instead of /' -r -F
complete -c rip-perms -l jobs -d 'Walker threads (default: the number of CPUs)' -r
complete -c rip-perms -l max-entries -d 'List at most N changed and N refused entries per app (counts stay exact)' -r
complete -c rip-perms -l backups -d 'With --app: enable backups in the default directory'
complete -c rip-perms -l allow-empty -d 'Accept an input with no app at all'
complete -c rip-perms -l dry-run -d 'Report what would change, and change nothing'
complete -c rip-perms -l show-policy -d 'Print the layout policy as JSON and exit'
complete -c rip-perms -s v -l verbose -d 'List every changed and refused entry (no cap)'
complete -c rip-perms -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rip-perms -s V -l version -d 'Print version'
