"""What the two naive Python baselines (naive_pipeline.py into SQLite,
naive_pg_pipeline.py into PostgreSQL) share: the users columns and the
loop a Python user would write -- a subprocess, json.loads per line, one
row list per record, executemany every 10,000 rows."""
import json, subprocess, uuid

COLS = ["id", "created_at", "updated_at", "name", "title", "age", "email", "telephone", "gender",
        "language", "academic_degree", "nationality", "occupation", "height", "blood_type", "weight",
        "address"]


def load(path, executemany, extracted_at=None):
    """Rows of the RECORD lines of path into executemany(batch); returns
    how many. extracted_at: a fixed _airbyte_extracted_at, else emitted_at."""
    p = subprocess.Popen(["cat", path], stdout=subprocess.PIPE)
    batch, n = [], 0
    for line in p.stdout:
        msg = json.loads(line)
        if msg.get("type") != "RECORD":
            continue
        d = msg["record"]["data"]
        row = [d.get(c) for c in COLS]
        row[-1] = json.dumps(row[-1])
        at = extracted_at if extracted_at is not None else msg["record"]["emitted_at"]
        batch.append(row + [str(uuid.uuid4()), at, "{}"])
        n += 1
        if len(batch) >= 10000:
            executemany(batch)
            batch = []
    if batch:
        executemany(batch)
    p.wait()
    return n
