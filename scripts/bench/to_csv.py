"""The rows of a records file as CSV for psql's \\copy baseline, in the
column order of the cache's users table (untimed preparation).
usage: to_csv.py FILE OUT COLUMNS (comma-separated, the table's order)"""
import csv, json, sys, uuid

cols = sys.argv[3].split(",")
internal = {"_airbyte_raw_id": lambda: str(uuid.uuid4()),
            "_airbyte_extracted_at": lambda: "2022-11-29T00:35:07.441+00:00",
            "_airbyte_meta": lambda: "{}"}
with open(sys.argv[1]) as f, open(sys.argv[2], "w", newline="") as out:
    w = csv.writer(out)
    for line in f:
        d = json.loads(line)["record"]["data"]
        row = []
        for c in cols:
            if c in internal:
                row.append(internal[c]())
            else:
                v = d.get(c)
                row.append(json.dumps(v) if isinstance(v, (dict, list)) else v)
        w.writerow(row)
