"""The rows of a records file as CSV for psql's \\copy baseline, in the
column order of the cache's users table (untimed preparation).
usage: to_csv.py FILE OUT"""
import csv, json, sys, uuid

cols = ["id", "created_at", "updated_at", "name", "title", "age", "email", "telephone", "gender",
        "language", "academic_degree", "nationality", "occupation", "height", "blood_type", "weight",
        "address"]
with open(sys.argv[1]) as f, open(sys.argv[2], "w", newline="") as out:
    w = csv.writer(out)
    for line in f:
        d = json.loads(line)["record"]["data"]
        row = [d.get(c) for c in cols]
        row[-1] = json.dumps(row[-1])
        w.writerow(row + [str(uuid.uuid4()), "2022-11-29T00:35:07.441+00:00", "{}"])
