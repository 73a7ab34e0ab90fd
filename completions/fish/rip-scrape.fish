complete -c rip-scrape -l app -d 'Act on one app given by flags instead of reading specs on stdin' -r
complete -c rip-scrape -l port -d 'With --app: a port the app listens on (repeatable)' -r
complete -c rip-scrape -l metrics-port -d 'With --app: the app\'s metrics port' -r
complete -c rip-scrape -l runtime -d 'With --app: runtime of the binary (go, rust, c, node, jvm, python, other)' -r
complete -c rip-scrape -l home -d 'With --app: the app\'s home directory' -r
complete -c rip-scrape -l root -d 'Act on the system rooted at DIR instead of /' -r -F
complete -c rip-scrape -l out-dir -d 'Directory of prometheus.yml and rip.d/, a path of the target system' -r -F
complete -c rip-scrape -l jobs -d 'One scrape job for the whole fleet, or one job per app' -r -f -a "one\t'One job (--job-name) with every app as a target'
per-app\t'One job per app, named PREFIX + app name'"
complete -c rip-scrape -l job-name -d 'Name of the job with --jobs one' -r
complete -c rip-scrape -l job-prefix -d 'Prefix of every job name with --jobs per-app (job = PREFIX + app name)' -r
complete -c rip-scrape -l host-label -d 'When targets get a host label (the app\'s host, or --local-host)' -r -f -a "auto\t'Only in fleets where some app\'s host is not `local`'
always\t'Always'
never\t'Never'"
complete -c rip-scrape -l local-host -d 'Name of this machine, for host labels and SSH tunnels of local apps' -r
complete -c rip-scrape -l instance -d 'What the instance label holds' -r -f -a "address\t'The scraped address (Prometheus\' default)'
app\t'The app name'"
complete -c rip-scrape -l sd-format -d 'Format of the target files (Prometheus reads both)' -r -f -a "json\t'`rip.d/JOB.json`'
yaml\t'`rip.d/JOB.yml`'"
complete -c rip-scrape -l scrape-interval -d 'Scrape interval of a new prometheus.yml' -r
complete -c rip-scrape -l refresh-interval -d 'How often Prometheus re-reads the target files' -r
complete -c rip-scrape -l ssh-user -d 'User for the SSH tunnel commands of --explain (USER@HOST)' -r
complete -c rip-scrape -l backups -d 'With --app: enable backups in the default directory'
complete -c rip-scrape -l allow-empty -d 'Accept an input with no app at all'
complete -c rip-scrape -l dry-run -d 'Report what would change, and change nothing'
complete -c rip-scrape -l replace -d 'Write a fresh prometheus.yml instead of merging into an existing one'
complete -c rip-scrape -l no-config -d 'Write only the target files; leave prometheus.yml alone'
complete -c rip-scrape -l allow-reserved-ports -d 'Warn instead of failing when an app uses a port of Prometheus'
complete -c rip-scrape -l check -d 'Run `promtool check config` on the new files before writing them'
complete -c rip-scrape -l explain -d 'Print the SSH tunnel command for each app\'s metrics port on stderr'
complete -c rip-scrape -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rip-scrape -s V -l version -d 'Print version'
