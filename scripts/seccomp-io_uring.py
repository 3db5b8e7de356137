#!/usr/bin/env python3
"""scripts/seccomp-io_uring.py [DEFAULT_PROFILE] — print the container runtime's default seccomp profile
with io_uring allowed: io_uring_setup, io_uring_enter and io_uring_register leave every rule that denies
them and join one unconditional SCMP_ACT_ALLOW rule. Everything else stays as the runtime ships it.

DEFAULT_PROFILE defaults to podman's (containers-common: /usr/share/containers/seccomp.json); Docker's
default profile has the same format. deploy/container/seccomp-io_uring.json is this script's output:
    scripts/seccomp-io_uring.py > deploy/container/seccomp-io_uring.json
"""
import json
import sys

IO_URING = ["io_uring_setup", "io_uring_enter", "io_uring_register"]


def derive(profile):
    rules = []
    for rule in profile["syscalls"]:
        names = [n for n in rule["names"] if n not in IO_URING]
        if names:
            rules.append(dict(rule, names=names))
    # Unconditional: no argument, capability or kernel-version condition.
    rules.append({"names": IO_URING, "action": "SCMP_ACT_ALLOW", "args": [], "comment": "io_uring: the relay's data plane",
                  "includes": {}, "excludes": {}})
    return dict(profile, syscalls=rules)


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/containers/seccomp.json"
    with open(src, encoding="utf-8") as f:
        profile = json.load(f)
    json.dump(derive(profile), sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


main()
