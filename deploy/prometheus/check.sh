#!/usr/bin/env bash
# Check the alert rules (run by `make alerts-check`, hence `make test`):
#   1. install promtool if missing: Debian's `prometheus` package ships it (installing the
#      package does not start a server here); apt-get only when root, else say what to run;
#   2. `promtool check rules alerts.yml` and `promtool test rules alerts_test.yml`.
# Idempotent: a second run finds promtool on PATH.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
say() { printf '[alerts-check] %s\n' "$*" >&2; }

if ! command -v promtool >/dev/null 2>&1; then
    if [[ "$(id -u)" != 0 ]]; then
        say "promtool is missing: sudo apt-get install -y --no-install-recommends prometheus"
        exit 2
    fi
    say "installing promtool (Debian package prometheus, first run only)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # policy-rc.d: the package's postinst must not start a Prometheus server on this machine
    policy=/usr/sbin/policy-rc.d
    restore_policy=false
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && restore_policy=true
    fi
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    if $restore_policy; then rm -f "$policy"; fi
fi
say "$(promtool --version 2>&1 | head -1)"
promtool check rules "$HERE/alerts.yml"
(cd "$HERE" && promtool test rules alerts_test.yml)
