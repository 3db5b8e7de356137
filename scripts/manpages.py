#!/usr/bin/env python3
"""scripts/manpages.py OUTPOST OUTDIR — write the man pages of the package into OUTDIR (section 1).

Every page comes from the binary itself, so it cannot drift from the code:
  outpost.1                 `outpost --help` (the command table)
  outpost-wsproxy-server.1  `outpost wsproxy server --docs-markdown` (the proxy's option table: flag,
                            environment variable, YAML key, default, description)
  outpost-server.1, outpost-agent.1, outpost-relay.1
                            the command's `--help` (flag lines, then their indented descriptions)
"""
import re
import subprocess
import sys

DATE = "2026"


def run(binary, *args):
    r = subprocess.run([binary, *args], capture_output=True, text=True, check=False)
    if r.returncode != 0 or not r.stdout.strip():
        sys.exit(f"manpages: {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def esc(text):
    """Escape text for roff: backslashes, and a leading dot or quote would start a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    if text[:1] in (".", "'"):
        text = "\\&" + text
    return text


def md_inline(text):
    """Markdown `code` and **bold** to roff fonts."""
    text = esc(text)
    text = re.sub(r"`([^`]*)`", r"\\fB\1\\fR", text)
    return re.sub(r"\*\*([^*]*)\*\*", r"\\fB\1\\fR", text)


def header(name, version, summary):
    return [
        f'.TH {name.upper()} 1 "{DATE}" "outpost {version}" "Outpost manual"',
        ".SH NAME",
        f"{esc(name)} \\- {esc(summary)}",
    ]


FOOTER = [
    ".SH FILES",
    ".TP",
    ".I /etc/outpost.d/outpost-workspace-proxy.env",
    "Environment of outpost\\-workspace\\-proxy.service (read with \\fB\\-\\-env\\-file\\fR, re\\-read on SIGHUP).",
    ".TP",
    ".I /etc/outpost.d/outpost.env",
    "Environment of outpost.service (the primary).",
    ".SH EXIT STATUS",
    "0 success; 64 usage; 65 not found; 69 primary unreachable; 77 bad token; 78 configuration error.",
    ".SH SEE ALSO",
    "\\fBoutpost\\fR(1), \\fBoutpost\\-server\\fR(1), \\fBoutpost\\-wsproxy\\-server\\fR(1), "
    "\\fBoutpost\\-agent\\fR(1), \\fBoutpost\\-relay\\fR(1), \\fBsystemd.service\\fR(5); "
    "/usr/share/doc/outpost/deploy.md.gz",
]


def page_main(binary, version):
    out = header("outpost", version, "workspace proxy system: primary, workspace proxy, agent and CLI")
    out += [".SH SYNOPSIS", "\\fBoutpost\\fR \\fIcommand\\fR [\\fIoptions\\fR]", ".SH COMMANDS"]
    for line in run(binary, "--help").splitlines():
        m = re.match(r"^  (\S+)\s{2,}(.*)$", line)
        if m:
            out += [".TP", f"\\fB{esc(m.group(1))}\\fR", esc(m.group(2))]
    out += [".PP", "Run \\fBoutpost\\fR \\fIcommand\\fR \\fB\\-\\-help\\fR for a command's options."]
    return out + FOOTER


def page_wsproxy(binary, version):
    md = run(binary, "wsproxy", "server", "--docs-markdown")
    out = header("outpost-wsproxy-server", version, "run a workspace proxy")
    out += [".SH SYNOPSIS", "\\fBoutpost wsproxy server\\fR [\\fIoptions\\fR]", ".SH DESCRIPTION"]
    for line in md.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "|", "Generated")):
            out += [".PP", md_inline(line)]
    out.append(".SH OPTIONS")
    for line in md.splitlines():
        if not line.startswith("| `--"):
            continue
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        flag, env, yaml, default, desc = cells
        out += [".TP", md_inline(flag)]
        extra = []
        if env != "—":
            extra.append("environment " + md_inline(env))
        if yaml != "—":
            extra.append("YAML " + md_inline(yaml))
        if default != "—":
            extra.append("default " + md_inline(default))
        out.append(md_inline(desc) + ((" (" + "; ".join(extra) + ")") if extra else ""))
    return out + FOOTER


def page_help(binary, version, words, name, summary):
    """A serpent-style --help (SECTION:, option lines, indented descriptions) or a getopt-style one."""
    text = run(binary, *words, "--help")
    out = header(name, version, summary)
    out += [".SH SYNOPSIS", f"\\fBoutpost {' '.join(words)}\\fR [\\fIoptions\\fR]"]
    section = "DESCRIPTION"
    out.append(".SH DESCRIPTION")
    for line in text.splitlines():
        if not line.strip():
            continue
        m = re.match(r"^([A-Z][A-Za-z /]*):\s*$", line)
        if m:
            if m.group(1).upper() in ("USAGE",):
                section = "USAGE"
                continue
            section = m.group(1).upper()
            out.append(f".SH {esc(section)}")
            continue
        if section == "USAGE" and line.startswith("  outpost"):
            continue
        if section == "USAGE":
            section = "DESCRIPTION"
        m = re.match(r"^\s{1,8}(-[-\w]+|-\w, --[-\w]+)(.*)$", line)
        if m and section != "DESCRIPTION":
            # getopt style puts the description on the same line after two or more spaces
            rest = m.group(2)
            g = re.match(r"^(.*?)\s{2,}(\S.*)$", rest)
            if g and not rest.lstrip().startswith("$") and "," not in g.group(1):
                out += [".TP", f"\\fB{esc(m.group(1))}\\fR{esc(g.group(1))}", esc(g.group(2))]
            else:
                out += [".TP", f"\\fB{esc(m.group(1))}\\fR{esc(rest)}"]
            continue
        if line.startswith("Usage:"):
            continue
        out.append(esc(line.strip()))
    return out + FOOTER


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: manpages.py OUTPOST OUTDIR")
    binary, outdir = sys.argv[1], sys.argv[2]
    version = run(binary, "--version").split()[-1]
    pages = {
        "outpost": page_main(binary, version),
        "outpost-wsproxy-server": page_wsproxy(binary, version),
        "outpost-server": page_help(binary, version, ["server"], "outpost-server", "run the primary"),
        "outpost-agent": page_help(binary, version, ["agent"], "outpost-agent", "run the workspace agent"),
        "outpost-relay": page_help(binary, version, ["relay"], "outpost-relay", "run the bare relay engine"),
    }
    for name, lines in pages.items():
        with open(f"{outdir}/{name}.1", "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")


main()
