#!/usr/bin/env bash
# Refreshes the dashboard's copy of Chart.js from the npm registry: the gateway serves it itself (no CDN, see
# index.html's Content-Security-Policy), beside its licence. Usage: scripts/vendor-chartjs.sh [VERSION]
set -euo pipefail
version="${1:-4.6.2}"
target="$(cd "$(dirname "$0")/.." && pwd)/services/gateway/wwwroot/vendor/chart.js"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "chart.js@$version" > /dev/null
# npm checks the tarball against the registry's integrity when it installs; pack does not, so check it here.
expected="$(npm view "chart.js@$version" dist.integrity)"
actual="sha512-$(openssl dgst -sha512 -binary "chart.js-$version.tgz" | base64 -w0)"
[ "$expected" = "$actual" ] || { echo "chart.js-$version.tgz: integrity $actual, the registry says $expected" >&2; exit 1; }
tar xzf "chart.js-$version.tgz"
mkdir -p "$target"
cp package/dist/chart.umd.min.js package/LICENSE.md "$target/"
printf 'chart.js %s\nintegrity %s\nsha256 %s  chart.umd.min.js\n' "$version" "$expected" \
  "$(sha256sum "$target/chart.umd.min.js" | cut -d' ' -f1)" > "$target/VERSION"
echo "Chart.js $version -> $target"
