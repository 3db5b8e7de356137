/*
 * util/options_print.c — what an option table prints: --help, the Markdown reference (the command's
 * page in docs/) and the effective configuration as YAML (--write-config).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/options_int.h"

static const char *type_name(enum op_opt_type t)
{
    switch (t) {
    case OP_OT_URL:
        return "url";
    case OP_OT_HOSTPORT:
        return "host:port";
    case OP_OT_BOOL:
        return "bool";
    case OP_OT_INT:
        return "int";
    case OP_OT_DURATION:
        return "duration";
    case OP_OT_STRINGS:
    case OP_OT_FILES:
        return "string-array";
    case OP_OT_SPECS:
        return "spec-array";
    case OP_OT_ENUM:
        return NULL;
    default:
        return "string";
    }
}

/* ---- help and YAML output ----------------------------------------------------------------------------- */

void op_conf_print_help(const struct op_optset *set, FILE *out)
{
    fprintf(out,
            "USAGE:\n  %s [flags]\n\n  %s\n\n  Precedence: flag > %senvironment > %sdefault.\n\nOPTIONS:\n",
            set->command, set->summary, set->env_file_id >= 0 ? "--env-file > " : "",
            set->config_id >= 0 ? "--config YAML > " : "");
    for (int i = 0; i < set->count; i++) {
        const struct op_opt *o = &set->opts[i];
        if (o->flags & OP_OF_HIDDEN) continue;
        const char *tn = type_name(o->type);
        char tbuf[96];
        if (!tn) {
            snprintf(tbuf, sizeof(tbuf), "%s", o->choices);
            tn = tbuf;
        }
        fprintf(out, "      --%s", o->flag);
        if (!(o->flags & OP_OF_ACTION)) fprintf(out, " %s", tn);
        if (o->env) fprintf(out, ", $%s", o->env);
        fputc('\n', out);
        fprintf(out, "          %s", o->help);
        if (o->flags & OP_OF_REQUIRED) fprintf(out, " (required)");
        if (o->def && *o->def) fprintf(out, " (default: %s)", o->def);
        if (o->yaml) fprintf(out, " (yaml: %s)", o->yaml);
        fputs("\n\n", out);
    }
}

void op_conf_print_markdown(const struct op_optset *set, FILE *out)
{
    fprintf(out,
            "# `%s` options\n\n%s\n\n| Flag | Environment | YAML key | Default | Description "
            "|\n|---|---|---|---|---|\n",
            set->command, set->md_intro);
    for (int i = 0; i < set->count; i++) {
        const struct op_opt *o = &set->opts[i];
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
                o->flags & OP_OF_ACTION ? "" : " (", o->flags & OP_OF_ACTION ? "" : (tn ? tn : "enum"),
                o->flags & OP_OF_ACTION ? "" : ")", o->env ? "`" : "", o->env ? o->env : "—",
                o->env ? "`" : "", o->yaml ? "`" : "", o->yaml ? o->yaml : "—", o->yaml ? "`" : "",
                o->def && *o->def ? "`" : "", o->def && *o->def ? o->def : "—", o->def && *o->def ? "`" : "",
                o->help, choices, o->flags & OP_OF_REQUIRED ? " **Required.**" : "",
                o->flags & OP_OF_HIDDEN ? " (hidden)" : "",
                o->flags & OP_OF_SECRET ? " Secret: never logged or written by `--write-config`." : "");
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

static _Thread_local const struct op_opt *sort_opts; /* qsort has no context argument */

static int cmp_yaml(const void *a, const void *b)
{
    char sa[8][64], sb[8][64];
    int na = seg_split(sort_opts[*(const int *)a].yaml, sa),
        nb = seg_split(sort_opts[*(const int *)b].yaml, sb);
    for (int i = 0; i < na && i < nb; i++) {
        /* a leaf sorts before a mapping at the same level so that groups stay together */
        bool la = i == na - 1, lb = i == nb - 1;
        int r = strcmp(sa[i], sb[i]);
        if (r) return la != lb ? (la ? -1 : 1) : r;
    }
    return na - nb;
}

void op_conf_write_yaml(const struct op_conf *c, FILE *out)
{
    const struct op_opt *opts = c->set->opts;
    int ids[OP_CONF_MAX], n = 0;
    for (int i = 0; i < c->set->count; i++)
        if (opts[i].yaml && !(opts[i].flags & OP_OF_SECRET)) /* secrets are never written */
            ids[n++] = i;
    sort_opts = opts;
    qsort(ids, (size_t)n, sizeof(ids[0]), cmp_yaml);
    char prev[8][64];
    int np = 0;
    for (int k = 0; k < n; k++) {
        const struct op_opt *o = &opts[ids[k]];
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
        if (op_opt_is_array(o->type)) {
            char buf[4096];
            const char *items[32];
            int ni = op_conf_list(c, ids[k], buf, sizeof(buf), items, 32);
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
        } else if (o->type == OP_OT_BOOL) {
            fprintf(out, " %s\n", op_conf_bool(c, ids[k]) ? "true" : "false");
        } else if (o->type == OP_OT_INT) {
            fprintf(out, " %ld\n", op_conf_int(c, ids[k]));
        } else {
            fputc(' ', out);
            yaml_quote(out, v);
            fputc('\n', out);
        }
        memcpy(prev, segs, sizeof(prev));
        np = ns - 1;
    }
}
