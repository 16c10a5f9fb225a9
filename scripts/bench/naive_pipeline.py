"""The naive Python pipeline the cache benchmark compares against:
subprocess + json.loads + sqlite3 executemany into the same typed layout.
usage: naive_pipeline.py FILE DB  -> prints records and seconds"""
import json, sqlite3, subprocess, sys, time, uuid

cols = ["id", "created_at", "updated_at", "name", "title", "age", "email", "telephone", "gender",
        "language", "academic_degree", "nationality", "occupation", "height", "blood_type", "weight",
        "address"]
t0 = time.time()
db = sqlite3.connect(sys.argv[2])
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=NORMAL")
db.execute("CREATE TABLE IF NOT EXISTS users (%s, _airbyte_raw_id TEXT, _airbyte_extracted_at TEXT, "
           "_airbyte_meta TEXT)" % ", ".join(cols))
sql = "INSERT INTO users VALUES (%s)" % ", ".join("?" * (len(cols) + 3))
p = subprocess.Popen(["cat", sys.argv[1]], stdout=subprocess.PIPE)
batch, n = [], 0
for line in p.stdout:
    msg = json.loads(line)
    if msg.get("type") != "RECORD":
        continue
    d = msg["record"]["data"]
    row = [d.get(c) for c in cols]
    row[-1] = json.dumps(row[-1])
    batch.append(row + [str(uuid.uuid4()), msg["record"]["emitted_at"], "{}"])
    n += 1
    if len(batch) >= 10000:
        db.executemany(sql, batch)
        batch = []
if batch:
    db.executemany(sql, batch)
db.commit()
p.wait()
print(n, time.time() - t0)
