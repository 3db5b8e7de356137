/*
 * cli/wsproxy_int.h — what the `outpost wsproxy` commands (cli/wsproxy.c) share with their output side
 * (cli/wsproxy_view.c): the columns of a WorkspaceProxy row, and printing proxies as a table, JSON or
 * health reports.
 */
#ifndef OP_CLI_WSPROXY_INT_H
#define OP_CLI_WSPROXY_INT_H

#include <stdbool.h>

#include "cli/client.h"

enum op_wsp_col {
    C_ID,
    C_NAME,
    C_DISPLAY,
    C_ICON,
    C_HEALTHY,
    C_URL,
    C_WILDCARD,
    C_DERP,
    C_DERP_ONLY,
    C_STATUS,
    C_PSTATUS,
    C_REPORT,
    C_CHECKED,
    C_CREATED,
    C_UPDATED,
    C_DELETED,
    C_VERSION,
    C_TOKEN,
    C_NCOLS
};

/* "-c a,b,c" against the allowed columns of cmd; returns the number of columns written to out, or a
 * -1 after printing the error. */
int op_wsp_parse_columns(const char *cmd, const char *spec, const enum op_wsp_col *allowed, int nallowed,
                         enum op_wsp_col *out);
/* The string member k of o, or "" when absent or not a string. */
const char *op_wsp_jstr(const cJSON *o, const char *k);
/* Proxies as a table of the given columns; token fills the "proxy token" column (NULL: empty). */
void op_wsp_print_table(const cJSON *const *proxies, int n, const char *token, const enum op_wsp_col *cols,
                        int ncols);
void op_wsp_print_json(const cJSON *v);
/* The errors and warnings of a proxy's health report, one per line after indent. */
void op_wsp_print_report(const cJSON *proxy, const char *indent);
bool op_wsp_has_report(const cJSON *proxy);

#endif
