#!/usr/bin/env python3
"""scripts/helm-render.py CHART [-f VALUES.yaml ...] [--release NAME] [--namespace NS] — render a Helm chart
the way `helm template` does, for machines without helm (Debian does not package it).

It implements the part of Go's text/template and Helm that deploy/helm/outpost uses, with Go's rules:
actions {{ }} with the {{- -}} whitespace trimming, comments, pipelines (the piped value is the last
argument), parentheses, variables ($, $x := and $x =, range $i, $v :=), if / else if / else, range (lists
and maps, maps in key order), with, define / include, Go truthiness (false, 0, nil, empty string, list and
map are false), and the functions include, toYaml (keys sorted, no trailing newline, as sigs.k8s.io/yaml),
nindent, indent, quote, default, required, eq, ne, not, and, or, printf (%s %d %v), toString, trunc,
trimSuffix, lower, hasKey, empty, list. Values files are deep-merged over the chart's values.yaml like
helm -f. The built-in objects are .Values, .Release.{Name,Namespace,Service}, .Chart.{Name,Version,
AppVersion}. Anything else is an error naming the template and line, never a silent empty string.
Output: every template under templates/ except _*.tpl and NOTES.txt, as `---` documents headed
`# Source: CHART/templates/NAME`, documents that render to nothing left out (like helm).
"""
import argparse
import os
import re
import sys

import yaml


class TemplateError(Exception):
    pass


# ---- lexing -------------------------------------------------------------------------------------------


def lex(src, name):
    """Split into ('text', s) and ('action', body, line) applying the trim markers."""
    out = []
    pos = 0
    while True:
        i = src.find("{{", pos)
        if i < 0:
            out.append(["text", src[pos:]])
            break
        text = src[pos:i]
        j = src.find("}}", i)
        if j < 0:
            raise TemplateError(f"{name}: unclosed action at line {src.count(chr(10), 0, i) + 1}")
        body = src[i + 2 : j]
        line = src.count("\n", 0, i) + 1
        ltrim = body.startswith("- ") or body == "-"
        rtrim = body.endswith(" -")
        if ltrim:
            body = body[1:]
            text = text.rstrip(" \t\r\n")
        if rtrim:
            body = body[:-1]
        out.append(["text", text])
        body = body.strip()
        if not (body.startswith("/*") and body.endswith("*/")):
            out.append(["action", body, line])
        pos = j + 2
        if rtrim:
            while pos < len(src) and src[pos] in " \t\r\n":
                pos += 1
    return out


TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<raw>`[^`]*`)|(?P<num>-?\d+)|(?P<decl>:=)|(?P<assign>=)'
    r"|(?P<pipe>\|)|(?P<lp>\()|(?P<rp>\))|(?P<comma>,)"
    r"|(?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)|(?P<field>(?:\.[A-Za-z0-9_]+)+|\.)"
    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_]*))"
)


def tokens(body, where):
    out = []
    pos = 0
    body = body.rstrip()
    while pos < len(body):
        m = TOKEN.match(body, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"{where}: cannot parse {body[pos:]!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


# ---- parsing ------------------------------------------------------------------------------------------


def parse(items, name):
    """Items -> a tree of nodes; returns (nodes, defines)."""
    defines = {}
    pos = 0

    def block(stop):
        nonlocal pos
        nodes = []
        while pos < len(items):
            it = items[pos]
            if it[0] == "text":
                nodes.append(("text", it[1]))
                pos += 1
                continue
            body, line = it[1], it[2]
            where = f"{name}:{line}"
            word = body.split(None, 1)[0] if body else ""
            if word in stop:
                return nodes, word, body, where
            pos += 1
            if word in ("if", "with"):
                cond = body[len(word) :].strip()
                then, end, endbody, endwhere = block(("else", "end"))
                branches = [(cond, then, where)]
                other = []
                while end == "else":
                    rest = endbody[4:].strip()
                    pos += 1
                    if rest.startswith("if "):
                        nodes_, end, endbody, endwhere = block(("else", "end"))
                        branches.append((rest[3:].strip(), nodes_, endwhere))
                    else:
                        other, end, endbody, endwhere = block(("end",))
                if end != "end":
                    raise TemplateError(f"{where}: {word} without end")
                pos += 1
                nodes.append((word, branches, other))
            elif word == "range":
                spec = body[5:].strip()
                inner, end, endbody, endwhere = block(("else", "end"))
                other = []
                if end == "else":
                    pos += 1
                    other, end, endbody, endwhere = block(("end",))
                if end != "end":
                    raise TemplateError(f"{where}: range without end")
                pos += 1
                nodes.append(("range", spec, inner, other, where))
            elif word == "define":
                m = re.match(r'define\s+"([^"]+)"$', body)
                if not m:
                    raise TemplateError(f"{where}: bad define")
                inner, end, endbody, endwhere = block(("end",))
                if end != "end":
                    raise TemplateError(f"{where}: define without end")
                pos += 1
                defines[m.group(1)] = inner
            elif word in ("end", "else"):
                raise TemplateError(f"{where}: unexpected {word}")
            else:
                nodes.append(("action", body, where))
        if stop:
            raise TemplateError(f"{name}: missing {{{{ end }}}}")
        return nodes, None, None, None

    nodes, _, _, _ = block(())
    return nodes, defines


# ---- evaluation ---------------------------------------------------------------------------------------


def truth(v):
    if v is None or v is False:
        return False
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v != 0
    if isinstance(v, (str, list, dict, tuple)):
        return len(v) > 0
    return True


def go_str(v):
    if v is None:
        return "<no value>"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (dict, list)):
        return "map[...]" if isinstance(v, dict) else "[" + " ".join(go_str(x) for x in v) + "]"
    return str(v)


def to_yaml(v):
    if v is None:
        return "null"
    return yaml.safe_dump(v, sort_keys=True, default_flow_style=False, allow_unicode=True).rstrip("\n")


class Renderer:
    def __init__(self, defines, root):
        self.defines = defines
        self.root = root

    # scopes: a list of dicts, innermost last
    def lookup_var(self, scopes, name, where):
        for s in reversed(scopes):
            if name in s:
                return s[name]
        raise TemplateError(f"{where}: undefined variable {name}")

    def field(self, base, path, where):
        v = base
        for part in path:
            if isinstance(v, dict):
                v = v.get(part)
            elif v is None:
                raise TemplateError(f"{where}: nil pointer evaluating .{'.'.join(path)}")
            else:
                raise TemplateError(f"{where}: cannot take field {part} of {type(v).__name__}")
        return v

    def funcs(self, name, args, dot, scopes, where):
        if name == "include":
            tname, ctx = args
            if tname not in self.defines:
                raise TemplateError(f"{where}: no template {tname!r}")
            return self.run(self.defines[tname], ctx, [{"$": ctx}])
        if name == "toYaml":
            return to_yaml(args[0])
        if name == "nindent":
            n, s = args
            return "\n" + "\n".join((" " * n + l) if l else l for l in go_str(s).split("\n"))
        if name == "indent":
            n, s = args
            return "\n".join((" " * n + l) if l else l for l in go_str(s).split("\n"))
        if name == "quote":
            return " ".join('"' + go_str(a).replace("\\", "\\\\").replace('"', '\\"') + '"' for a in args)
        if name == "default":
            d, v = args if len(args) == 2 else (args[0], None)
            return v if truth(v) else d
        if name == "required":
            msg, v = args
            if v is None or v == "":
                raise TemplateError(f"{where}: {msg}")
            return v
        if name == "eq":
            return any(args[0] == a for a in args[1:])
        if name == "ne":
            return args[0] != args[1]
        if name == "not":
            return not truth(args[0])
        if name == "and":
            for a in args:
                if not truth(a):
                    return a
            return args[-1]
        if name == "or":
            for a in args:
                if truth(a):
                    return a
            return args[-1]
        if name == "printf":
            fmt = re.sub(r"%[vsd]", "%s", args[0])
            return fmt % tuple(go_str(a) for a in args[1:])
        if name == "toString":
            return go_str(args[0])
        if name == "trunc":
            n, s = args
            return s[:n]
        if name == "trimSuffix":
            suf, s = args
            return s[: -len(suf)] if suf and s.endswith(suf) else s
        if name == "lower":
            return go_str(args[0]).lower()
        if name == "hasKey":
            return isinstance(args[0], dict) and args[1] in args[0]
        if name == "empty":
            return not truth(args[0])
        if name == "list":
            return list(args)
        raise TemplateError(f"{where}: function {name!r} not defined")

    def operand(self, tok, dot, scopes, where):
        kind, val = tok
        if kind == "str":
            return bytes(val[1:-1], "utf-8").decode("unicode_escape")
        if kind == "raw":
            return val[1:-1]
        if kind == "num":
            return int(val)
        if kind == "field":
            return dot if val == "." else self.field(dot, val[1:].split("."), where)
        if kind == "var":
            parts = val.split(".")
            return self.field(self.lookup_var(scopes, parts[0], where), parts[1:], where)
        if kind == "ident":
            if val in ("true", "false"):
                return val == "true"
            if val == "nil":
                return None
        raise TemplateError(f"{where}: unexpected {val!r}")

    def pipeline(self, toks, dot, scopes, where):
        """toks: a token list; returns the value."""
        # split on top-level pipes
        cmds, depth, cur = [], 0, []
        for t in toks:
            if t[0] == "lp":
                depth += 1
            elif t[0] == "rp":
                depth -= 1
            if t[0] == "pipe" and depth == 0:
                cmds.append(cur)
                cur = []
            else:
                cur.append(t)
        cmds.append(cur)
        val, piped = None, False
        for cmd in cmds:
            args = self.args(cmd, dot, scopes, where)
            if piped:
                args.append(("value", val))
            val = self.call(args, dot, scopes, where)
            piped = True
        return val

    def args(self, cmd, dot, scopes, where):
        out, i = [], 0
        while i < len(cmd):
            t = cmd[i]
            if t[0] == "lp":
                depth, j = 1, i + 1
                while depth:
                    if j >= len(cmd):
                        raise TemplateError(f"{where}: unbalanced (")
                    depth += {"lp": 1, "rp": -1}.get(cmd[j][0], 0)
                    j += 1
                out.append(("value", self.pipeline(cmd[i + 1 : j - 1], dot, scopes, where)))
                i = j
            else:
                out.append(t)
                i += 1
        return out

    def call(self, args, dot, scopes, where):
        if not args:
            raise TemplateError(f"{where}: empty command")
        head = args[0]
        vals = []
        for a in args[1:]:
            vals.append(a[1] if a[0] == "value" else self.operand(a, dot, scopes, where))
        if head[0] == "ident" and head[1] not in ("true", "false", "nil"):
            return self.funcs(head[1], vals, dot, scopes, where)
        if vals:
            raise TemplateError(f"{where}: {head[1]!r} is not a function")
        return head[1] if head[0] == "value" else self.operand(head, dot, scopes, where)

    def expr(self, text, dot, scopes, where):
        """A pipeline with an optional declaration; returns (value, declared names or None)."""
        toks = tokens(text, where)
        if len(toks) >= 2 and toks[0][0] == "var" and toks[1][0] in ("decl", "assign"):
            v = self.pipeline(toks[2:], dot, scopes, where)
            if toks[1][0] == "decl":
                scopes[-1][toks[0][1]] = v
            else:
                for s in reversed(scopes):
                    if toks[0][1] in s:
                        s[toks[0][1]] = v
                        break
                else:
                    raise TemplateError(f"{where}: assignment to undeclared {toks[0][1]}")
            return v, True
        return self.pipeline(toks, dot, scopes, where), False

    def run(self, nodes, dot, scopes):
        out = []
        for n in nodes:
            kind = n[0]
            if kind == "text":
                out.append(n[1])
            elif kind == "action":
                v, declared = self.expr(n[1], dot, scopes, n[2])
                if not declared:
                    if v is None:
                        raise TemplateError(f"{n[2]}: {n[1]!r} has no value")
                    out.append(go_str(v))
            elif kind in ("if", "with"):
                branches, other = n[1], n[2]
                for cond, body, where in branches:
                    inner = scopes + [{}]
                    v, _ = self.expr(cond, dot, inner, where)
                    if truth(v):
                        out.append(self.run(body, v if kind == "with" else dot, inner))
                        break
                else:
                    out.append(self.run(other, dot, scopes + [{}]))
            elif kind == "range":
                spec, body, other, where = n[1], n[2], n[3], n[4]
                m = re.match(r"^(\$\w+)\s*(?:,\s*(\$\w+)\s*)?:=\s*(.*)$", spec)
                names = (m.group(1), m.group(2)) if m else (None, None)
                coll, _ = self.expr(m.group(3) if m else spec, dot, scopes + [{}], where)
                if isinstance(coll, dict):
                    pairs = sorted(coll.items())
                elif isinstance(coll, list):
                    pairs = list(enumerate(coll))
                elif coll is None:
                    pairs = []
                else:
                    raise TemplateError(f"{where}: range over {type(coll).__name__}")
                if not pairs:
                    out.append(self.run(other, dot, scopes + [{}]))
                for k, v in pairs:
                    s = {}
                    if names[1]:
                        s[names[0]], s[names[1]] = k, v
                    elif names[0]:
                        s[names[0]] = v
                    out.append(self.run(body, v, scopes + [s]))
        return "".join(out)


def merge(base, over):
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base.get(k), v) if k in base else v
        return out
    return over


def main():
    ap = argparse.ArgumentParser(description="render a Helm chart like helm template")
    ap.add_argument("chart")
    ap.add_argument("-f", "--values", action="append", default=[])
    ap.add_argument("--release", default="release-name")
    ap.add_argument("--namespace", default="default")
    a = ap.parse_args()
    with open(os.path.join(a.chart, "Chart.yaml"), encoding="utf-8") as f:
        chart = yaml.safe_load(f)
    with open(os.path.join(a.chart, "values.yaml"), encoding="utf-8") as f:
        values = yaml.safe_load(f) or {}
    for p in a.values:
        with open(p, encoding="utf-8") as f:
            values = merge(values, yaml.safe_load(f) or {})
    root = {
        "Values": values,
        "Release": {"Name": a.release, "Namespace": a.namespace, "Service": "Helm"},
        "Chart": {"Name": chart["name"], "Version": chart["version"], "AppVersion": chart.get("appVersion")},
    }
    tdir = os.path.join(a.chart, "templates")
    files = sorted(os.listdir(tdir))
    defines, bodies = {}, []
    for fn in files:
        with open(os.path.join(tdir, fn), encoding="utf-8") as f:
            nodes, d = parse(lex(f.read(), fn), fn)
        defines.update(d)
        if not fn.startswith("_") and fn != "NOTES.txt" and fn.endswith((".yaml", ".yml")):
            bodies.append((fn, nodes))
    r = Renderer(defines, root)
    docs = []
    for fn, nodes in bodies:
        text = r.run(nodes, root, [{"$": root}])
        for part in re.split(r"(?m)^---\s*$", text):
            if part.strip():
                docs.append(f"---\n# Source: {chart['name']}/templates/{fn}\n{part.strip(chr(10))}\n")
    sys.stdout.write("".join(docs))


try:
    main()
except TemplateError as e:
    sys.exit(f"helm-render: {e}")
