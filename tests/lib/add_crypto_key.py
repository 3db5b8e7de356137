#!/usr/bin/env python3
"""tests/lib/add_crypto_key.py DATA_DIR FEATURE...: inserts a new crypto key for each feature into a stopped or
running primary's database (tests/lib/testdb.py) (sequence = the newest + 1, starting a second ago), as the primary's own
rotation would (primary/keys.c), so that the primary signs with a key no proxy has fetched yet. Prints the
new sequences."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testdb  # noqa: E402

LENGTHS = {"workspace_apps_token": 64, "workspace_apps_api_key": 32}
db = testdb.connect(sys.argv[1])
now = int(time.time() * 1000)
out = []
for feature in sys.argv[2:]:
    (seq,) = db.query("SELECT COALESCE(MAX(sequence), 0) FROM crypto_keys WHERE feature = ?", (feature,))[0]
    seq = int(seq)
    db.execute("INSERT INTO crypto_keys (feature, sequence, secret, starts_at) VALUES (?, ?, ?, ?)",
               (feature, seq + 1, os.urandom(LENGTHS[feature]).hex(), now - 1000))
    out.append(str(seq + 1))
print(" ".join(out))
