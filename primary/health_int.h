/*
 * primary/health_int.h — what the proxy health checker's files share (health.c: probes and rounds;
 * health_replicas.c: combining the verdicts of a proxy probed per replica). Not for use outside them.
 */
#ifndef OP_PRIMARY_HEALTH_INT_H
#define OP_PRIMARY_HEALTH_INT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "primary/primary_int.h"

/* A finished probe's verdict, handed from the probe thread to the control thread. */
struct op_health_result {
    char id[OP_UUID_STR_LEN + 1];      /* the proxy */
    char replica[OP_UUID_STR_LEN + 1]; /* "" = the proxy as a whole (or its access URL when access) */
    char url[512];                     /* what was probed */
    char bare[OP_UUID_STR_LEN + 1];    /* a replica without a relay URL among several (a warning), or "" */
    int order;                         /* the replica's place among the proxy's live replicas, oldest first */
    bool access;                       /* the access URL of a proxy probed per replica */
    enum op_health_status status;
    cJSON *errors, *warnings; /* owned; NULL = empty */
};

/* Records a proxy's verdict; errors, warnings and replicas are consumed (NULL = empty / none). */
typedef void (*op_health_set_fn)(void *ctx, const char *id, enum op_health_status st, cJSON *errors,
                                 cJSON *warnings, cJSON *replicas);

/* Adds the warning about replica bare (no relay URL among several) to warnings; nothing when bare is "". */
void op_health_warn_bare(cJSON *warnings, const char *bare);

/* Combines the per-replica (and access URL) verdicts of a round, n of them in agg (reordered; their arrays
 * are consumed), into one verdict per proxy, handed to set. Rules: docs/coder-compat.md, "Health checks". */
void op_health_combine(struct op_health_result *agg, size_t n, op_health_set_fn set, void *ctx);

#endif
