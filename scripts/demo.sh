#!/usr/bin/env bash
# The whole pipeline on the bundled fixture builds, into the default local repository
# (./depot-repo), signed with TUF: keys, the root of trust, a release key for the product,
# every build run and signed, update plans for every pair, the stable channel. Then a
# player's install with the trusted root, a delta update to the stable channel, a verify.
set -euo pipefail
cd "$(dirname "$0")/.."

product=starfall
rm -rf depot-repo demo-keys demo-install demo-data   # the demo's own outputs, made afresh
export DEPOT_DATA_DIR=demo-data                       # the player's trust, kept out of ~/.local

depot keys generate --out demo-keys root targets snapshot timestamp "$product"
depot trust init --root-key demo-keys/root.key --targets-key demo-keys/targets.key \
                 --snapshot-key demo-keys/snapshot.key --timestamp-key demo-keys/timestamp.key
export DEPOT_KEYS=demo-keys                           # the online keys the pipeline signs with
depot trust add-key --product "$product" --key "demo-keys/$product.pub"
depot trust root -o demo-keys/root.json               # what players are given

depot configure --product "$product" --chunk-min 16KiB --chunk-avg 64KiB --chunk-max 256KiB
for build in fixtures/builds/$product/*.tar; do
    depot run "$build" --product "$product" --version "$(basename "$build" .tar)"
done
depot diff --product "$product" --all-pairs
depot promote --product "$product" --version 1.3.0 --channel stable
depot ls --product "$product"
depot trust status

depot install --origin ./depot-repo --trust demo-keys/root.json --product "$product" --version 1.0.0 --dest demo-install
depot update --origin ./depot-repo --channel stable --dest demo-install
depot verify --dest demo-install
