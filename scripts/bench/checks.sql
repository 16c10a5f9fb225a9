-- The issue 10 example suite written by hand, one query per check, for the
-- sqlite3 CLI: the baseline of `scripts/bench.sh checks`.
SELECT count(*) FROM users WHERE id IS NULL;
SELECT count(*) FROM (SELECT id FROM users WHERE id IS NOT NULL GROUP BY id HAVING count(*) > 1);
SELECT count(*) FROM users WHERE age < 0 OR age > 130;
SELECT count(*) FROM users WHERE email IS NOT NULL AND NOT email REGEXP '^[^@]+@[^@]+$';
SELECT count(*) FROM users WHERE gender NOT IN ('Male', 'Female', 'Fluid', 'Other');
SELECT count(*) FROM users;
SELECT (julianday('now') - julianday(max(_airbyte_extracted_at))) * 86400.0 FROM users;
SELECT count(*) FROM purchases WHERE user_id IS NOT NULL AND user_id NOT IN (SELECT id FROM users WHERE id IS NOT NULL);
