#!/usr/bin/env bash
# Builds the Go interop programs (gonode, ringvectors) into test/interop/bin/,
# offline, in GOPATH mode against Debian's golang-github-golang-groupcache-dev.
# Exit codes: 0 = built, 3 = skipped (go or the groupcache sources missing),
# anything else = build failure.
set -euo pipefail

src="${BASH_SOURCE[0]}"
case "$src" in */*) dir="${src%/*}" ;; *) dir=. ;; esac
here="$(cd "$dir" && pwd)"
gopath="${INTEROP_GOPATH:-/usr/share/gocode}"

if ! command -v go >/dev/null 2>&1; then
  echo "go not found; skipping" >&2
  exit 3
fi
if [ ! -f "$gopath/src/github.com/golang/groupcache/http.go" ] ||
   [ ! -d "$gopath/src/github.com/golang/protobuf/proto" ]; then
  echo "groupcache sources not found under $gopath/src; skipping" >&2
  exit 3
fi

mkdir -p "$here/bin"
export GO111MODULE=off GOPATH="$gopath" GOPROXY=off GOFLAGS=
export GOCACHE="${TMPDIR:-/tmp}/groupcache-interop-gocache"

for prog in gonode ringvectors; do
  (cd "$here/$prog" && go build -o "$here/bin/$prog" .)
done
echo "built: $here/bin/gonode $here/bin/ringvectors"
