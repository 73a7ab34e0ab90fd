# Deploy one app with the rip tools. A template: copy it next to your app's
# source as Makefile (or keep it and use make -f), set the variables at the top
# or on the command line, and run as root on the machine that hosts the app:
#
#   make -f Makefile.app build                   build the binary ($(BIN))
#   make -f Makefile.app spec                    print the app spec rip reads
#   make -f Makefile.app deploy                  install, set up, (re)start
#   make -f Makefile.app audit                   check the deployed app
#   make -f Makefile.app status                  systemctl status
#   make -f Makefile.app undeploy                stop and remove the unit only
#
# deploy = the binary into /home/APP/bin, then one pipeline
# (rip-user | rip-perms | rip-unit), then systemctl daemon-reload, enable
# --now, and a restart when the unit or binary changed. Run it again after
# every build: what is already right is left alone.
#
# The app is started as
#   /home/APP/bin/APP ARGS
# where ARGS follows the demo apps' flags; change it for your app. Arguments
# are split on spaces, so for arguments with spaces (or any field this
# template does not cover, see rip(7)) write the spec in a file and pass
# SPEC_FILE=app.json instead.

# --- the app -----------------------------------------------------------------
APP          ?= app1
RUNTIME      ?= go
# The port the app serves on, and the address it binds (empty: every address).
PORT         ?= 8080
ADDR         ?=
# The metrics port Prometheus scrapes on 127.0.0.1 (empty: no metrics).
METRICS_PORT ?= 9101
# 1: the app writes backup snapshots to /home/APP/data/backups and the backup
# user may read them; empty: no backups.
BACKUPS      ?= 1
# Environment of the app, as JSON object members ("KEY":"value",...).
ENV_JSON     ?= "APP_MODE":"prod"

HOME_DIR     := /home/$(APP)
ARGS         ?= -listen $(ADDR):$(PORT) \
                $(if $(METRICS_PORT),-metrics 127.0.0.1:$(METRICS_PORT)) \
                -dbpath $(HOME_DIR)/data/app.db \
                $(if $(BACKUPS),-backups $(HOME_DIR)/data/backups)

# --- building ----------------------------------------------------------------
OUT          ?= build
BIN          ?= $(OUT)/$(APP)
# How to build $(BIN) from the source in this directory.
BUILD_CMD    ?= CGO_ENABLED=0 go build -trimpath -o $(BIN) .

# --- where things are --------------------------------------------------------
# The target system's root (a scratch directory for a dry try: ROOT=/tmp/r
# SYSTEMCTL=:), where the rip tools are, and the command that drives systemd.
ROOT         ?= /
RIP          ?= /usr/local/bin
SYSTEMCTL    ?= systemctl
# Extra arguments of rip-user, e.g. --backup-key /root/backup_key.pub
USER_ARGS    ?=
# A spec file to use instead of the one built from the variables above.
SPEC_FILE    ?=

# -----------------------------------------------------------------------------
SHELL        := /bin/bash
.SHELLFLAGS  := -euo pipefail -c
comma        := ,
empty        :=
space        := $(empty) $(empty)
root_dir     := $(patsubst %/,%,$(ROOT))
exec_json    := "$(HOME_DIR)/bin/$(APP)"$(subst $(space)$(comma),$(comma),$(foreach a,$(strip $(ARGS)),$(comma)"$(a)"))
listen_json  := {$(if $(ADDR),"addr":"$(ADDR)"$(comma))"port":$(PORT)}
SPEC         := {"name":"$(APP)","runtime":"$(RUNTIME)","exec":[$(exec_json)],"listen":[$(listen_json)]$(if $(METRICS_PORT),$(comma)"metrics":{"port":$(METRICS_PORT)})$(if $(BACKUPS),$(comma)"backups":{"enabled":true})$(if $(ENV_JSON),$(comma)"env":{$(ENV_JSON)})}
RIPFLAGS     := --root $(ROOT)

.PHONY: build spec deploy audit status undeploy

build:
	mkdir -p $(dir $(BIN))
	$(BUILD_CMD)

$(OUT)/$(APP).json: FORCE
	@mkdir -p $(OUT)
	@$(if $(SPEC_FILE),cp $(SPEC_FILE) $@.new,printf '%s\n' '$(SPEC)' >$@.new)
	@if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi

spec: $(OUT)/$(APP).json
	@cat $<

deploy: $(OUT)/$(APP).json
	@test -f $(BIN) || { echo "no binary $(BIN): run make build first, or set BIN" >&2; exit 2; }
	@# The binary goes in first: rip-perms then gives it to the app user.
	unit=$(root_dir)/etc/systemd/system/$(APP).service; \
	before=$$(cat $(root_dir)$(HOME_DIR)/bin/$(APP) $$unit 2>/dev/null | md5sum || true); \
	cmp -s $(BIN) $(root_dir)$(HOME_DIR)/bin/$(APP) || \
	  install -Dm0700 $(BIN) $(root_dir)$(HOME_DIR)/bin/$(APP); \
	$(RIP)/rip-user $(RIPFLAGS) $(USER_ARGS) <$< | \
	  $(RIP)/rip-perms $(RIPFLAGS) | \
	  $(RIP)/rip-unit $(RIPFLAGS) >$(OUT)/$(APP).deployed.json; \
	$(SYSTEMCTL) daemon-reload; \
	$(SYSTEMCTL) enable --now $(APP).service; \
	after=$$(cat $(root_dir)$(HOME_DIR)/bin/$(APP) $$unit 2>/dev/null | md5sum || true); \
	if [ "$$before" != "$$after" ]; then $(SYSTEMCTL) restart $(APP).service; fi
	@echo "deployed $(APP); the tools' report is in $(OUT)/$(APP).deployed.json"

audit: $(OUT)/$(APP).json
	$(RIP)/rip-audit $(RIPFLAGS) <$<

status:
	$(SYSTEMCTL) status --no-pager $(APP).service

# Stops and disables the app and removes its unit (rip-unit --remove). The
# user, its home and the data stay; once the backups are safe, remove them
# with: rip-user --remove --archive --purge --app $(APP)   (see rip(7))
undeploy: $(OUT)/$(APP).json
	$(RIP)/rip-unit $(RIPFLAGS) --remove $(if $(filter /,$(ROOT)),--reload) <$< >$(OUT)/$(APP).removed.json
	@echo "removed the unit of $(APP); the tool's report is in $(OUT)/$(APP).removed.json"

FORCE:
