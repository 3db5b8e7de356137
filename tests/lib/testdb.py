"""tests/lib/testdb.py — a test's direct look into a primary's database, whichever store it runs on.

connect(data_dir) returns an object with query(sql, params) -> list of row tuples (text values) and
execute(sql, params) (a write, committed). On SQLite it opens <data_dir>/outpost.db; when the test runs in
tests/run.sh's "pg" layer (PG_SOCKET_DIR and PG_PORT set, as tests/lib/pg_outpost.sh uses them), it runs psql
on the database that stand-in gave the server of that data directory. Parameters are `?` in both; on
PostgreSQL they are inlined as quoted literals (psql has no binding)."""
import hashlib
import os
import sqlite3
import subprocess


def _literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, int):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


class _Pg:
    def __init__(self, data_dir):
        self.db = "op_" + hashlib.md5(data_dir.encode()).hexdigest()[:16]
        self.cmd = [os.environ["PG_BIN"] + "/psql", "-X", "-q", "-tA", "-F", "\x1f", "-v", "ON_ERROR_STOP=1",
                    "-h", os.environ["PG_SOCKET_DIR"], "-p", os.environ["PG_PORT"], "-U", "pgadmin", "-d", self.db]

    def _sql(self, sql, params):
        parts = sql.split("?")
        if len(parts) - 1 != len(params):
            raise ValueError("parameter count")
        return parts[0] + "".join(_literal(p) + rest for p, rest in zip(params, parts[1:]))

    def query(self, sql, params=()):
        out = subprocess.run(self.cmd + ["-c", self._sql(sql, params)], check=True, capture_output=True,
                             text=True, timeout=30).stdout
        return [tuple(line.split("\x1f")) for line in out.splitlines() if line]

    def execute(self, sql, params=()):
        self.query(sql, params)


class _Sqlite:
    def __init__(self, data_dir):
        self.db = sqlite3.connect(os.path.join(data_dir, "outpost.db"), timeout=10)

    def query(self, sql, params=()):
        return [tuple(str(c) for c in row) for row in self.db.execute(sql, params).fetchall()]

    def execute(self, sql, params=()):
        with self.db:
            self.db.execute(sql, params)


def connect(data_dir):
    data_dir = os.path.abspath(data_dir)
    if os.environ.get("PG_SOCKET_DIR") and os.environ.get("OUTPOST_REAL_BIN"):
        return _Pg(data_dir)
    return _Sqlite(data_dir)
