"""Writes the pages and the routes of the manifest benchmark: PAGES pages
of PER_PAGE small records each, page N answering GET /items?page=N, with a
cursor to the next page (none on the last).
usage: http_pages.py DIR PAGES PER_PAGE"""
import json
import os
import sys

out, pages, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
routes = []
for p in range(1, pages + 1):
    records = [{"id": (p - 1) * per + i, "name": "user %d" % ((p - 1) * per + i),
                "updated_at": "2024-01-01T00:00:00Z"} for i in range(per)]
    body = {"data": records, "next_page": p + 1 if p < pages else None}
    name = "page-%d.json" % p
    with open(os.path.join(out, name), "w") as f:
        json.dump(body, f)
    routes.append({"method": "GET", "path": "/items", "query": {"page": str(p)},
                   "responses": [{"body_file": name, "headers": {"Content-Type": "application/json"}}]})
with open(os.path.join(out, "routes.json"), "w") as f:
    json.dump(routes, f)
