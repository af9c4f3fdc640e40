#!/usr/bin/env bash
# A release engineer's day, then a player's, on the bundled fixture builds; everything under
# this directory, nothing off the machine.
#
# Release: keys and the root of trust; each build run (ingested, chunked, planned, signed)
# into ./depot-repo; published to three regional origins (directories here; s3:// buckets
# in production); promoted there; a new version; a rollback; stats for analysts; gc.
# Player: an install with the trusted root, from a region that is down, failing over to
# the next; updates as the channel moves; a full verify; last, a new player's install and verify.
set -euo pipefail
cd "$(dirname "$0")/.."

# the depot command: on PATH, else the one README's first command installed in ./.venv
if ! command -v depot >/dev/null; then
    if [ ! -x .venv/bin/depot ]; then
        echo "scripts/demo.sh: no depot command: install it first (README.md: pip install -e . in .venv)" >&2
        exit 2
    fi
    PATH="$PWD/.venv/bin:$PATH"
fi

product=starfall
rm -rf depot-repo demo-keys demo-install demo-install-new demo-data demo-origins  # the demo's own outputs, made afresh
rm -rf demo-builds demo-games                                     # and those of README's examples after it
export DEPOT_DATA_DIR=demo-data                                   # the player's trust, kept out of ~/.local
mkdir demo-origins
cat > demo-origins/locations.toml <<TOML
[msk]
url = "$PWD/demo-origins/msk"
region = "ru-msk"
priority = 1
[spb]
url = "$PWD/demo-origins/spb"
region = "ru-spb"
priority = 2
[nsk]
url = "$PWD/demo-origins/nsk"
region = "ru-nsk"
priority = 3
[msk-cdn-down]
url = "http://127.0.0.1:9/depot"
timeout = 2
[events]
jsonl = "events.jsonl"
TOML
export DEPOT_LOCATIONS=demo-origins/locations.toml
origins=(--origin msk --origin spb --origin nsk)

echo "== keys and the root of trust"
depot keys generate --out demo-keys/offline root                 # the root key: offline, given by name
depot keys generate --out demo-keys/online targets snapshot timestamp "$product"
depot trust init --root-key demo-keys/offline/root.key --targets-key demo-keys/online/targets.key \
                 --snapshot-key demo-keys/online/snapshot.key --timestamp-key demo-keys/online/timestamp.key
export DEPOT_KEYS=demo-keys/online                                # the online keys the pipeline signs with
depot trust add-key --product "$product" --key "demo-keys/online/$product.pub"
depot trust root -o demo-keys/root.json                           # what players are given

echo "== builds, as upload hooks run them"
depot configure --product "$product" --chunk-min 16KiB --chunk-avg 64KiB --chunk-max 256KiB
for v in 1.0.0 1.1.0 1.2.0; do
    depot run "fixtures/builds/$product/$v.tar" --product "$product" --version "$v" --diff-last 2
done

echo "== publish to three regions, then go live"
depot publish --product "$product" --version 1.1.0 --version 1.2.0 "${origins[@]}"
depot promote --product "$product" --version 1.2.0 --channel stable "${origins[@]}"

echo "== a player installs: Moscow's CDN is down, St. Petersburg answers"
depot install --origin msk-cdn-down --origin spb --trust demo-keys/root.json --retries 1 \
              --product "$product" --channel stable --dest demo-install

echo "== a new version goes out with its hook, then live"
depot run "fixtures/builds/$product/1.3.0.tar" --product "$product" --version 1.3.0 --diff-last 3 "${origins[@]}"
depot promote --product "$product" --version 1.3.0 --channel stable "${origins[@]}"
depot update --origin nsk --channel stable --dest demo-install

echo "== trouble with 1.3.0: roll the channel back"
depot rollback --product "$product" --channel stable "${origins[@]}"
depot channels --product "$product"
depot update --origin msk --channel stable --dest demo-install
depot verify --dest demo-install

echo "== what the rest of the platform heard (CloudEvents, one line each)"
python3 -c 'import json, sys
for e in map(json.loads, open(sys.argv[1])):
    d = e["data"]
    print(e["type"], d["action"], d["productId"], d["versionId"], d.get("channel", "-"), d["origin"])' demo-origins/events.jsonl

echo "== for analysts: stats as parquet, queried with DuckDB, and a report"
depot stats export
depot stats query "SELECT version, files, bytes, new_bytes_vs_previous, dedup_ratio FROM versions ORDER BY created"
depot stats report --out depot-repo/report.html

echo "== reclaim space (a dry run: nothing is old enough to go yet)"
depot gc --keep-last 2 "${origins[@]}"
depot trust status

echo "== last, a new player: what is live now, installed from the nearest region and verified byte for byte"
depot install --origin msk --origin spb --trust demo-keys/root.json --product "$product" --channel stable \
              --dest demo-install-new
depot verify --dest demo-install-new
