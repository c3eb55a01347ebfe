#!/bin/sh
# Runs the service named by the first argument in place of this shell (it gets the signals as PID 1).
set -eu
# The image folder (/app): two levels above this script, found without any tool beyond the shell.
root="${0%/*}/.."
case "${1:-}" in
  api | spawner | poller | watchdog | gateway)
    exec node "$root/services/$1/dist/main.js"
    ;;
  provision-feed)
    exec node "$root/deploy/provision-feed.mjs"
    ;;
  *)
    echo "usage: <image> api|spawner|poller|watchdog|gateway|provision-feed (got: '${1:-}')" >&2
    exit 64
    ;;
esac
