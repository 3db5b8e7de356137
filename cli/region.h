/*
 * cli/region.h — choosing the region a user's stream goes through: the regions the primary lists
 * (GET /api/v2/regions), their latency (GET /latency-check, the request-to-first-byte time as the
 * dashboard measures it), and the default kept in the CLI's config directory: file `proxy` holds
 * "primary", a proxy name or "auto"; with "auto" the lowest-latency healthy region is picked once and
 * remembered in `proxy-auto` (it sticks while it stays healthy, as the dashboard's choice does).
 */
#ifndef OP_CLI_REGION_H
#define OP_CLI_REGION_H

#include <stdbool.h>

#include "cli/client.h"

#define OP_CLI_MAX_REGIONS 64

struct op_cli_region {
    char name[65];
    char display[128];
    char url[1024]; /* path_app_url: where the region is reached */
    bool healthy;
    double latency_ms; /* < 0: not measured or unreachable */
};

/* GET /api/v2/regions into out[0..*n). Returns 0 or a sysexits code (the cause printed). */
int op_cli_regions(const struct op_client *c, const char *cmd, struct op_cli_region *out, int max, int *n);
/* Measures the latency of every healthy region (2 s timeout each). */
void op_cli_probe(struct op_cli_region *r, int n);
/* The stored default: "primary" when none is stored. */
void op_cli_default_get(const struct op_client *c, char *out, size_t len);
/* Stores the default ("primary", a name or "auto"); forgets the remembered auto choice. 0 or a sysexits code.
 */
int op_cli_default_set(const struct op_client *c, const char *choice);
/* Resolves choice (NULL: the stored default) to a region of the list: a name (case-insensitive),
 * "primary", or "auto" (the remembered choice while it is healthy, else probe, pick and remember).
 * Prints what was picked for "auto" on stderr when verbose. Returns 0 or a sysexits code. */
int op_cli_pick(const struct op_client *c, const char *cmd, const char *choice, struct op_cli_region *out,
                bool verbose);

#endif
