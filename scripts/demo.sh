#!/usr/bin/env bash
# The whole pipeline on the bundled fixture builds, into the default local repository
# (./depot-repo), update plans for every pair; then a player's install, a delta update to
# the stable channel, and a full verify.
set -euo pipefail
cd "$(dirname "$0")/.."

product=starfall
depot configure --product "$product" --chunk-min 16KiB --chunk-avg 64KiB --chunk-max 256KiB
for build in fixtures/builds/$product/*.tar; do
    depot run "$build" --product "$product" --version "$(basename "$build" .tar)"
done
depot diff --product "$product" --all-pairs
depot promote --product "$product" --version 1.3.0 --channel stable
depot ls --product "$product"

rm -rf demo-install
depot install --origin ./depot-repo --product "$product" --version 1.0.0 --dest demo-install
depot update --origin ./depot-repo --channel stable --dest demo-install
depot verify --dest demo-install
