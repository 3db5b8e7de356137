/*
 * cli/wsproxy_view.c — the output side of `outpost wsproxy …`: WorkspaceProxy rows as tables (-c columns),
 * JSON and health-report lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/wsproxy_int.h"

static const char *const col_names[C_NCOLS] = {
    "id",
    "name",
    "display name",
    "icon url",
    "healthy",
    "url",
    "wildcard hostname",
    "derp enabled",
    "derp only",
    "status",
    "proxy status",
    "proxy report",
    "proxy checked at",
    "created at",
    "updated at",
    "deleted",
    "version",
    "proxy token",
};

/* "-c a,b,c" against the allowed set of this file's columns (op_out_columns does the work). */
int op_wsp_parse_columns(const char *cmd, const char *spec, const enum op_wsp_col *allowed, int nallowed,
                         enum op_wsp_col *out)
{
    char full[64];
    snprintf(full, sizeof(full), "outpost wsproxy %s", cmd);
    int ids[C_NCOLS], got[OP_TABLE_MAX_COLS];
    for (int i = 0; i < nallowed; i++)
        ids[i] = (int)allowed[i];
    int n = op_out_columns(full, spec, col_names, ids, nallowed, got);
    for (int i = 0; i < n; i++)
        out[i] = (enum op_wsp_col)got[i];
    return n;
}

const char *op_wsp_jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static const char *jbool(const cJSON *o, const char *k)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k)) ? "true" : "false";
}

static const cJSON *report_of(const cJSON *proxy, const char *which)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(proxy, "status");
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(st, "report"), which);
}

/* Renders the report as one line: "Err: a; Err: b; Warn: c" (newlines folded). */
static void report_line(const cJSON *proxy, char *out, size_t outlen)
{
    size_t o = 0;
    out[0] = '\0';
    const char *kinds[2] = {"errors", "warnings"}, *labels[2] = {"Err", "Warn"};
    for (int k = 0; k < 2; k++) {
        const cJSON *it;
        cJSON_ArrayForEach(it, report_of(proxy, kinds[k]))
        {
            if (!cJSON_IsString(it) || o + 8 >= outlen) continue;
            int w = snprintf(out + o, outlen - o, "%s%s: %s", o ? "; " : "", labels[k], it->valuestring);
            o = w > 0 ? OP_MIN(outlen - 1, o + (size_t)w) : o;
        }
    }
    for (char *q = out; *q; q++)
        if (*q == '\n' || *q == '\t') *q = ' ';
}

static void cell(struct op_table *t, const cJSON *proxy, const char *token, enum op_wsp_col c)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(proxy, "status");
    char buf[4096];
    switch (c) {
    case C_ID:
        op_table_cell(t, op_wsp_jstr(proxy, "id"));
        break;
    case C_NAME:
        op_table_cell(t, op_wsp_jstr(proxy, "name"));
        break;
    case C_DISPLAY:
        op_table_cell(t, op_wsp_jstr(proxy, "display_name"));
        break;
    case C_ICON:
        op_table_cell(t, op_wsp_jstr(proxy, "icon_url"));
        break;
    case C_HEALTHY:
        op_table_cell(t, jbool(proxy, "healthy"));
        break;
    case C_URL:
        op_table_cell(t, op_wsp_jstr(proxy, "path_app_url"));
        break;
    case C_WILDCARD:
        op_table_cell(t, op_wsp_jstr(proxy, "wildcard_hostname"));
        break;
    case C_DERP:
        op_table_cell(t, jbool(proxy, "derp_enabled"));
        break;
    case C_DERP_ONLY:
        op_table_cell(t, jbool(proxy, "derp_only"));
        break;
    case C_STATUS:
    case C_PSTATUS: {
        /* a proxy probed per replica: "ok (2 replicas)" */
        int nrep = cJSON_GetArraySize(report_of(proxy, "replicas"));
        if (nrep > 1)
            snprintf(buf, sizeof(buf), "%s (%d replicas)", op_wsp_jstr(st, "status"), nrep);
        else
            snprintf(buf, sizeof(buf), "%s", op_wsp_jstr(st, "status"));
        op_table_cell(t, buf);
        break;
    }
    case C_REPORT:
        report_line(proxy, buf, sizeof(buf));
        op_table_cell(t, buf);
        break;
    case C_CHECKED:
        op_table_cell(t, op_wsp_jstr(st, "checked_at"));
        break;
    case C_CREATED:
        op_table_cell(t, op_wsp_jstr(proxy, "created_at"));
        break;
    case C_UPDATED:
        op_table_cell(t, op_wsp_jstr(proxy, "updated_at"));
        break;
    case C_DELETED:
        op_table_cell(t, jbool(proxy, "deleted"));
        break;
    case C_VERSION:
        op_table_cell(t, op_wsp_jstr(proxy, "version"));
        break;
    case C_TOKEN:
        op_table_cell(t, token ? token : "");
        break;
    default:
        op_table_cell(t, "");
        break;
    }
}

void op_wsp_print_table(const cJSON *const *proxies, int n, const char *token, const enum op_wsp_col *cols,
                        int ncols)
{
    struct op_table t;
    op_table_init(&t);
    for (int i = 0; i < ncols; i++)
        op_table_col(&t, col_names[cols[i]]);
    for (int r = 0; r < n; r++) {
        op_table_row(&t);
        for (int i = 0; i < ncols; i++)
            cell(&t, proxies[r], token, cols[i]);
    }
    op_table_print(&t, stdout);
    op_table_free(&t);
}

void op_wsp_print_json(const cJSON *v)
{
    op_json_print(stdout, v);
}

static bool use_color(void)
{
    return isatty(STDOUT_FILENO) == 1 && !getenv("NO_COLOR");
}

/* Prints every error and every warning of a proxy once, indented, continuation lines aligned; then one line
 * per replica when the proxy was probed per replica. */
void op_wsp_print_report(const cJSON *proxy, const char *indent)
{
    const char *kinds[2] = {"errors", "warnings"}, *labels[2] = {"Err: ", "Warn: "};
    const char *colors[2] = {"\033[31m", "\033[33m"};
    bool color = use_color();
    for (int k = 0; k < 2; k++) {
        const cJSON *it;
        cJSON_ArrayForEach(it, report_of(proxy, kinds[k]))
        {
            if (!cJSON_IsString(it)) continue;
            printf("%s%s%s", indent, color ? colors[k] : "", labels[k]);
            for (const char *q = it->valuestring; *q; q++) {
                putchar(*q);
                if (*q == '\n') printf("%s%*s", indent, (int)strlen(labels[k]), "");
            }
            printf("%s\n", color ? "\033[0m" : "");
        }
    }
    const cJSON *rep;
    cJSON_ArrayForEach(rep, report_of(proxy, "replicas"))
    {
        const cJSON *errs = cJSON_GetObjectItemCaseSensitive(rep, "errors");
        const cJSON *first = cJSON_GetArrayItem(errs, 0);
        printf("%sReplica %s (%s): %s%s%s\n", indent, op_wsp_jstr(rep, "id"), op_wsp_jstr(rep, "relay_url"),
               op_wsp_jstr(rep, "status"), cJSON_IsString(first) ? ": " : "",
               cJSON_IsString(first) ? first->valuestring : "");
    }
}

bool op_wsp_has_report(const cJSON *proxy)
{
    return cJSON_GetArraySize(report_of(proxy, "errors")) > 0 ||
           cJSON_GetArraySize(report_of(proxy, "warnings")) > 0 ||
           cJSON_GetArraySize(report_of(proxy, "replicas")) > 1;
}
