#!/usr/bin/env bash
# scripts/bench.sh manifest [RECORDS]: a declarative (manifest) stream of
# small records over pages from the local test server (tests/fixtures/http/
# server.py), read by `luabyte connector --manifest`, in records/s (target
# >= 20,000/s), beside a plain curl loop over the same pages (the ceiling).
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-100000}
PAGE=${PAGE:-2000}
RUNS=${RUNS:-3}
LB=build/luabyte
tmp=$(mktemp -d)
srv=
cleanup() { [ -n "$srv" ] && kill "$srv" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }

pages=$(( (N + PAGE - 1) / PAGE ))
# pages as files, routes by page number; the manifest asks for ?page=N&per_page=PAGE
python3 - "$tmp" "$N" "$PAGE" <<'PY'
import json, sys
d, n, page = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
routes, i, p = [], 0, 1
while i < n:
    recs = [{"id": j, "name": "user%d" % j, "score": j % 97, "active": j % 2 == 0}
            for j in range(i, min(n, i + page))]
    with open("%s/page%d.json" % (d, p), "w") as f:
        json.dump({"data": recs}, f)
    routes.append({"path": "/items", "query": {"page": str(p)}, "responses": [{"body_file": "page%d.json" % p}]})
    i += page; p += 1
routes.append({"path": "/items", "responses": [{"json": {"data": []}}]})
json.dump(routes, open(d + "/routes.json", "w"))
PY
python3 tests/fixtures/http/server.py "$tmp/routes.json" /dev/null > "$tmp/port" &
srv=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.05; done
port=$(head -n 1 "$tmp/port")
base="http://127.0.0.1:$port"

cat > "$tmp/manifest.yaml" <<YAML
version: 6.0.0
type: DeclarativeSource
check: { type: CheckStream, stream_names: [items] }
spec:
  connection_specification: { type: object, properties: {} }
streams:
  - type: DeclarativeStream
    name: items
    primary_key: id
    schema_loader:
      type: InlineSchemaLoader
      schema:
        type: object
        properties:
          id: { type: integer }
          name: { type: string }
          score: { type: integer }
          active: { type: boolean }
    retriever:
      type: SimpleRetriever
      requester: { type: HttpRequester, url_base: "$base", path: /items }
      record_selector: { type: RecordSelector, extractor: { type: DpathExtractor, field_path: [data] } }
      paginator:
        type: DefaultPaginator
        page_token_option: { type: RequestOption, inject_into: request_parameter, field_name: page }
        page_size_option: { type: RequestOption, inject_into: request_parameter, field_name: per_page }
        pagination_strategy: { type: PageIncrement, page_size: $PAGE, start_from_page: 1, inject_on_first_request: true }
YAML
echo '{}' > "$tmp/config.json"
echo '{"streams":[{"stream":{"name":"items","json_schema":{},"supported_sync_modes":["full_refresh"]},"sync_mode":"full_refresh","destination_sync_mode":"overwrite"}]}' > "$tmp/catalog.json"

got=$($LB connector --manifest "$tmp/manifest.yaml" read --config "$tmp/config.json" --catalog "$tmp/catalog.json" | grep -c '"type":"RECORD"')
[ "$got" = "$N" ] || { echo "manifest: read $got records, expected $N" >&2; exit 1; }
secs=$(for _ in $(seq "$RUNS"); do s=$(now); $LB connector --manifest "$tmp/manifest.yaml" read --config "$tmp/config.json" --catalog "$tmp/catalog.json" >/dev/null; e=$(now); awk -v e="$e" -v s="$s" 'BEGIN {print e - s}'; done | median)
rate=$(awk -v n="$N" -v s="$secs" 'BEGIN {print n/s}')
# the ceiling: one curl process fetching the same pages over one connection
urls=$(for p in $(seq "$pages"); do printf '%s/items?page=%d&per_page=%d ' "$base" "$p" "$PAGE"; done)
got_bytes=$(curl -s $urls | wc -c)
[ "$got_bytes" -gt $(( N * 20 )) ] || { echo "curl loop: only $got_bytes bytes" >&2; exit 1; }
csecs=$(for _ in $(seq "$RUNS"); do s=$(now); curl -s $urls >/dev/null; e=$(now); awk -v e="$e" -v s="$s" 'BEGIN {print e - s}'; done | median)
crate=$(awk -v n="$N" -v s="$csecs" 'BEGIN {print n/s}')
verdict=$(awk -v v="$rate" 'BEGIN {print (v >= 20000) ? "PASS" : "FAIL"}')
printf "manifest:    %10.0f records/s over %d pages of %d  >= 20,000/s: %s\n" "$rate" "$pages" "$PAGE" "$verdict"
printf "  curl loop over the same pages (ceiling): %10.0f records/s (ratio %.2f)\n" "$crate" \
  "$(awk -v a="$rate" -v b="$crate" 'BEGIN {print a/b}')"
[ "$verdict" = PASS ]
