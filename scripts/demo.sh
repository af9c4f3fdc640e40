#!/usr/bin/env bash
# The whole pipeline on the bundled fixture builds, into the default local repository
# (./depot-repo), then every file of every version rebuilt from the store and compared.
set -euo pipefail
cd "$(dirname "$0")/.."

product=starfall
depot configure --product "$product" --chunk-min 16KiB --chunk-avg 64KiB --chunk-max 256KiB
for build in fixtures/builds/$product/*.tar; do
    version=$(basename "$build" .tar)
    depot run "$build" --product "$product" --version "$version"
done
depot ls --product "$product"
python3 scripts/check_repo.py "$product" fixtures/builds/$product/*.tar
