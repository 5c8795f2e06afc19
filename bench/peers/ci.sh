#!/usr/bin/env bash
# bench/peers, its own module: formatting, vet, build, and a smoke run at tiny sizes in which every
# engine's result must agree with the others' (the binary exits 1 when one differs or fails, or
# leaves files behind). Cold (empty module and build caches) this downloads DuckDB's static
# library and links it: see README.md for how long that takes.
set -euo pipefail
cd "$(dirname "$0")"

unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt would change these files:"
	echo "$unformatted"
	exit 1
fi
go vet ./...
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/peers" .
"$tmp/peers" -h 2>/dev/null
"$tmp/peers" -runs 1 -records 100000 -keys 10000 -budget 8MiB -mem-budget 256MiB -dir "$tmp" 2>"$tmp/progress.log" || {
	cat "$tmp/progress.log"
	exit 1
}
