"""The naive Python pipeline the cache benchmark compares against:
subprocess + json.loads + sqlite3 executemany into the same typed layout.
usage: naive_pipeline.py FILE DB  -> prints records and seconds"""
import sqlite3, sys, time
from naive_records import COLS, load

t0 = time.time()
db = sqlite3.connect(sys.argv[2])
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=NORMAL")
db.execute("CREATE TABLE IF NOT EXISTS users (%s, _airbyte_raw_id TEXT, _airbyte_extracted_at TEXT, "
           "_airbyte_meta TEXT)" % ", ".join(COLS))
sql = "INSERT INTO users VALUES (%s)" % ", ".join("?" * (len(COLS) + 3))
n = load(sys.argv[1], lambda batch: db.executemany(sql, batch))
db.commit()
print(n, time.time() - t0)
