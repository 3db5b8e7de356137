/*
 * primary/proxy_row.h — one row of workspace_proxies as the two halves of the workspace-proxy API read
 * it: proxies.c (owner-facing) and proxies_me.c (proxy-facing). Not for use outside primary/.
 */
#ifndef OP_PRIMARY_PROXY_ROW_H
#define OP_PRIMARY_PROXY_ROW_H

#include "primary/primary_int.h"

#define OP_DERP_REGION_START 10000 /* a proxy's DERP region id is this plus its region_id */

struct op_proxy_row {
    char id[OP_UUID_STR_LEN + 1];
    char name[64];
    char display_name[128];
    char icon[512];
    char url[512];
    char wildcard[256];
    bool derp_enabled, derp_only, deleted;
    int region_id;
    char version[64];
    int64_t created_at, updated_at;
};

#define OP_PROXY_COLS                                                                                        \
    "id, name, display_name, icon, url, wildcard_hostname, derp_enabled, derp_only, deleted, region_id, "    \
    "version,"                                                                                               \
    " created_at, updated_at"

/* Reads the OP_PROXY_COLS columns of the current row of st. */
void op_proxy_read_row(struct op_db_stmt *st, struct op_proxy_row *r);

#endif
