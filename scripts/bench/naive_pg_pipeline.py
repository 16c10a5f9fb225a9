"""The naive Python pipeline the Postgres cache benchmark compares against:
subprocess + json.loads + psycopg2 executemany into a table laid out like
the cache's (created by the caller). Connects with the libpq environment.
usage: naive_pg_pipeline.py FILE TABLE  -> prints records and seconds"""
import json, subprocess, sys, time, uuid
import psycopg2

cols = ["id", "created_at", "updated_at", "name", "title", "age", "email", "telephone", "gender",
        "language", "academic_degree", "nationality", "occupation", "height", "blood_type", "weight",
        "address"]
t0 = time.time()
db = psycopg2.connect("")
cur = db.cursor()
sql = "INSERT INTO %s (%s, _airbyte_raw_id, _airbyte_extracted_at, _airbyte_meta) VALUES (%s)" % (
    sys.argv[2], ", ".join(cols), ", ".join(["%s"] * (len(cols) + 3)))
p = subprocess.Popen(["cat", sys.argv[1]], stdout=subprocess.PIPE)
batch, n = [], 0
for line in p.stdout:
    msg = json.loads(line)
    if msg.get("type") != "RECORD":
        continue
    d = msg["record"]["data"]
    row = [d.get(c) for c in cols]
    row[-1] = json.dumps(row[-1])
    batch.append(row + [str(uuid.uuid4()), "2022-11-29T00:35:07.441+00:00", "{}"])
    n += 1
    if len(batch) >= 10000:
        cur.executemany(sql, batch)
        batch = []
if batch:
    cur.executemany(sql, batch)
db.commit()
p.wait()
print(n, time.time() - t0)
