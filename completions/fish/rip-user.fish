complete -c rip-user -l app -d 'Act on one app given by flags instead of reading specs on stdin' -r
complete -c rip-user -l port -d 'With --app: a port the app listens on (repeatable)' -r
complete -c rip-user -l metrics-port -d 'With --app: the app\'s metrics port' -r
complete -c rip-user -l runtime -d 'With --app: runtime of the binary (go, rust, c, node, jvm, python, other)' -r
complete -c rip-user -l home -d 'With --app: the app\'s home directory' -r
complete -c rip-user -l root -d 'Act on the system rooted at DIR instead of /' -r -F
complete -c rip-user -l backup-user -d 'Name of the backup user' -r
complete -c rip-user -l backup-home -d 'Home of the backup user [default: /home/NAME]' -r
complete -c rip-user -l backup-key -d 'Install this SSH public key for the backup user, restricted to rrsync -ro' -r -F
complete -c rip-user -l backup-root -d 'Directory the backup key is confined to (rrsync\'s DIR)' -r
complete -c rip-user -l lock-timeout -d 'Seconds to wait for the account-file locks held by others' -r
complete -c rip-user -l backups -d 'With --app: enable backups in the default directory'
complete -c rip-user -l allow-empty -d 'Accept an input with no app at all'
complete -c rip-user -l dry-run -d 'Report what would change, and change nothing'
complete -c rip-user -l remove -d 'Remove the apps\' accounts instead of creating them'
complete -c rip-user -l archive -d 'With --remove: first archive each home to /var/backups/rip-user/ under the root'
complete -c rip-user -l purge -d 'With --remove: delete each home directory (after --archive, if given)'
complete -c rip-user -l adopt -d 'Take over existing system users that rip-user did not create'
complete -c rip-user -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rip-user -s V -l version -d 'Print version'
