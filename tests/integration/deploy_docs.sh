#!/usr/bin/env bash
# tests/integration/deploy_docs.sh — docs/deploy.md's troubleshooting table quotes what the programs
# print: for every row, the longest fixed part of the quoted message (between placeholders such as
# <url>, N and ...) must occur in the C sources' string literals (adjacent literals joined, as the
# compiler does), so a reworded message cannot leave the table behind.
. "$(dirname "$0")/../lib/common.sh"
python3 - "$ROOT" <<'PY' || fail "docs/deploy.md troubleshooting table"
import glob, re, sys
root = sys.argv[1]
src = ""
for f in glob.glob(root + "/*/*.c"):
    if "/tests/" in f or "/bench/" in f:
        continue
    text = open(f, encoding="utf-8").read()
    src += re.sub(r'"\s*\n\s*"', "", text) + "\n"
lits = "\n".join(m.group(1).replace('\\"', '"').replace("`", "")
                 for m in re.finditer(r'"((?:[^"\\\n]|\\.)*)"', src))
# the fixed pieces of every format string, between its conversions
pieces = [p for p in re.split(r"%[-0-9.]*(?:ll|l|z)?[sdufx]|\n", lits) if len(p) >= 12]
doc = open(root + "/docs/deploy.md", encoding="utf-8").read()
table = doc[doc.index("## Troubleshooting"):]
rows = [l for l in table.splitlines() if l.startswith("| `")]
assert len(rows) >= 20, len(rows)
# what a message carries at run time: placeholders, quoted values, strerror() texts, signal names
runtime = (r'<[^>]+>|\.\.\.|\bN\b|\bL\b|"[^"]*"|\(Interrupt.*|Terminated|Address already in use|Permission denied'
           r"|Operation not permitted|Function not implemented|Cannot allocate memory")
bad = []
for row in rows:
    for msg in re.findall(r"`([^`]+)`", row.split(" | ")[0]):
        msg = re.sub(r"^(wsproxy|engine|ctl|server): ", "", msg)
        for chunk in re.split(runtime, msg):
            chunk = chunk.strip(" ()")
            if len(chunk) < 12:
                continue
            if chunk not in lits and not any(p in chunk for p in pieces):
                bad.append(chunk)
if bad:
    print("not printed by any program:", *bad, sep="\n  ")
    sys.exit(1)
print(f"{len(rows)} rows checked")
PY
ok "every troubleshooting message in docs/deploy.md is one the code prints"
