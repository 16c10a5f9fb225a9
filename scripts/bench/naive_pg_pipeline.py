"""The naive Python pipeline the Postgres cache benchmark compares against:
subprocess + json.loads + psycopg2 executemany into a table laid out like
the cache's (created by the caller). Connects with the libpq environment.
usage: naive_pg_pipeline.py FILE TABLE  -> prints records and seconds"""
import sys, time
import psycopg2
from naive_records import COLS, load

t0 = time.time()
db = psycopg2.connect("")
cur = db.cursor()
sql = "INSERT INTO %s (%s, _airbyte_raw_id, _airbyte_extracted_at, _airbyte_meta) VALUES (%s)" % (
    sys.argv[2], ", ".join(COLS), ", ".join(["%s"] * (len(COLS) + 3)))
n = load(sys.argv[1], lambda batch: cur.executemany(sql, batch), "2022-11-29T00:35:07.441+00:00")
db.commit()
print(n, time.time() - t0)
