/*
 * wsproxy/config_print.c — what the option table prints: --help, the Markdown reference
 * (docs/wsproxy-server.md) and the effective configuration as YAML (--write-config).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsproxy/config_int.h"

static const char *type_name(enum op_ws_type t)
{
    switch (t) {
    case OP_WT_URL:
        return "url";
    case OP_WT_HOSTPORT:
        return "host:port";
    case OP_WT_BOOL:
        return "bool";
    case OP_WT_INT:
        return "int";
    case OP_WT_DURATION:
        return "duration";
    case OP_WT_STRINGS:
    case OP_WT_FILES:
        return "string-array";
    case OP_WT_ENUM:
        return NULL;
    default:
        return "string";
    }
}

/* ---- help and YAML output ----------------------------------------------------------------------------- */

void op_ws_print_help(FILE *out)
{
    fprintf(out, "USAGE:\n  outpost wsproxy server [flags]\n\n  Start a workspace proxy server\n\n"
                 "  Precedence: flag > --env-file > environment > --config YAML > default.\n\nOPTIONS:\n");
    for (int i = 0; i < OP_WO_COUNT; i++) {
        const struct op_ws_opt *o = &op_ws_opts[i];
        if (o->flags & OP_WF_HIDDEN) continue;
        const char *tn = type_name(o->type);
        char tbuf[96];
        if (!tn) {
            snprintf(tbuf, sizeof(tbuf), "%s", o->choices);
            tn = tbuf;
        }
        fprintf(out, "      --%s", o->flag);
        if (!(o->flags & OP_WF_ACTION)) fprintf(out, " %s", tn);
        if (o->env) fprintf(out, ", $%s", o->env);
        fputc('\n', out);
        fprintf(out, "          %s", o->help);
        if (o->flags & OP_WF_REQUIRED) fprintf(out, " (required)");
        if (o->def && *o->def) fprintf(out, " (default: %s)", o->def);
        if (o->yaml) fprintf(out, " (yaml: %s)", o->yaml);
        fputs("\n\n", out);
    }
}

void op_ws_print_markdown(FILE *out)
{
    fprintf(
        out,
        "# `outpost wsproxy server` options\n\n"
        "Generated from the option table in `wsproxy/config.c` (`outpost wsproxy server --docs-markdown`).\n"
        "Precedence, highest first: flag, `--env-file` (re-read on SIGHUP), environment, the YAML file of "
        "`--config` (dotted keys below, nested), default. String arrays repeat on the command line, are "
        "comma-separated in the environment and YAML sequences in the file. An environment variable set "
        "to the empty string is a value (e.g. `CODER_HTTP_ADDRESS=` disables HTTP). `--check` validates "
        "everything without binding (exit 78 on error); SIGHUP reloads certificates, log level, HSTS, "
        "token and the other non-listener options.\n\n"
        "| Flag | Environment | YAML key | Default | Description |\n|---|---|---|---|---|\n");
    for (int i = 0; i < OP_WO_COUNT; i++) {
        const struct op_ws_opt *o = &op_ws_opts[i];
        const char *tn = type_name(o->type);
        char choices[160] = "";
        if (o->choices) {
            size_t k = (size_t)snprintf(choices, sizeof(choices), " One of: ");
            for (const char *p = o->choices; *p && k + 3 < sizeof(choices); p++) {
                if (*p == '|') {
                    choices[k++] = ',';
                    choices[k++] = ' ';
                } else {
                    choices[k++] = *p;
                }
            }
            choices[k++] = '.';
            choices[k] = '\0';
        }
        fprintf(out, "| `--%s`%s%s%s | %s%s%s | %s%s%s | %s%s%s | %s%s%s%s%s |\n", o->flag,
                o->flags & OP_WF_ACTION ? "" : " (", o->flags & OP_WF_ACTION ? "" : (tn ? tn : "enum"),
                o->flags & OP_WF_ACTION ? "" : ")", o->env ? "`" : "", o->env ? o->env : "—",
                o->env ? "`" : "", o->yaml ? "`" : "", o->yaml ? o->yaml : "—", o->yaml ? "`" : "",
                o->def && *o->def ? "`" : "", o->def && *o->def ? o->def : "—", o->def && *o->def ? "`" : "",
                o->help, choices, o->flags & OP_WF_REQUIRED ? " **Required.**" : "",
                o->flags & OP_WF_HIDDEN ? " (hidden)" : "",
                o->flags & OP_WF_SECRET ? " Secret: never logged or written by `--write-config`." : "");
    }
}

static void yaml_quote(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(out, "\\x%02x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

static int seg_split(const char *key, char segs[8][64])
{
    int n = 0;
    while (*key && n < 8) {
        size_t l = strcspn(key, ".");
        snprintf(segs[n++], 64, "%.*s", (int)l, key);
        key += l + (key[l] == '.');
    }
    return n;
}

static int cmp_yaml(const void *a, const void *b)
{
    char sa[8][64], sb[8][64];
    int na = seg_split(op_ws_opts[*(const int *)a].yaml, sa),
        nb = seg_split(op_ws_opts[*(const int *)b].yaml, sb);
    for (int i = 0; i < na && i < nb; i++) {
        /* a leaf sorts before a mapping at the same level so that groups stay together */
        bool la = i == na - 1, lb = i == nb - 1;
        int r = strcmp(sa[i], sb[i]);
        if (r) return la != lb ? (la ? -1 : 1) : r;
    }
    return na - nb;
}

void op_ws_write_yaml(const struct op_ws_conf *c, FILE *out)
{
    int ids[OP_WO_COUNT], n = 0;
    for (int i = 0; i < OP_WO_COUNT; i++)
        if (op_ws_opts[i].yaml && !(op_ws_opts[i].flags & OP_WF_SECRET)) /* secrets are never written */
            ids[n++] = i;
    qsort(ids, (size_t)n, sizeof(ids[0]), cmp_yaml);
    char prev[8][64];
    int np = 0;
    for (int k = 0; k < n; k++) {
        const struct op_ws_opt *o = &op_ws_opts[ids[k]];
        char segs[8][64];
        int ns = seg_split(o->yaml, segs);
        int common = 0;
        while (common < np && common < ns - 1 && strcmp(prev[common], segs[common]) == 0)
            common++;
        for (int d = common; d < ns - 1; d++)
            fprintf(out, "%*s%s:\n", d * 2, "", segs[d]);
        int d = ns - 1;
        fprintf(out, "%*s# %s\n", d * 2, "", o->help);
        fprintf(out, "%*s%s:", d * 2, "", segs[d]);
        const char *v = c->val[ids[k]];
        if (op_ws_is_array(o->type)) {
            char buf[4096];
            const char *items[32];
            int ni = op_ws_list(c, ids[k], buf, sizeof(buf), items, 32);
            if (!ni)
                fprintf(out, " []\n");
            else {
                fputc('\n', out);
                for (int i = 0; i < ni; i++) {
                    fprintf(out, "%*s- ", d * 2, "");
                    yaml_quote(out, items[i]);
                    fputc('\n', out);
                }
            }
        } else if (!v) {
            fprintf(out, " \"\"\n");
        } else if (o->type == OP_WT_BOOL) {
            fprintf(out, " %s\n", op_ws_bool(c, ids[k]) ? "true" : "false");
        } else if (o->type == OP_WT_INT) {
            fprintf(out, " %ld\n", op_ws_int(c, ids[k]));
        } else {
            fputc(' ', out);
            yaml_quote(out, v);
            fputc('\n', out);
        }
        memcpy(prev, segs, sizeof(prev));
        np = ns - 1;
    }
}
