/*
 * primary/health_replicas.c — the health of a proxy with several replicas: each replica's verdict (probed at
 * its relay URL) and the access URL's, combined into the proxy's status and report at the end of a round
 * (docs/coder-compat.md, "Health checks").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "primary/health_int.h"

/* Adds every string of a (may be NULL) to dst, prefixed "replica <id> (<url>): " or "access URL (<url>): ".
 */
static void add_prefixed(cJSON *dst, const cJSON *a, const struct op_health_result *r)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, a)
    {
        if (!cJSON_IsString(it)) continue;
        size_t n = strlen(it->valuestring) + strlen(r->url) + 64;
        char *m = malloc(n);
        if (!m) continue;
        if (r->access)
            snprintf(m, n, "access URL (%s): %s", r->url, it->valuestring);
        else
            snprintf(m, n, "replica %s (%s): %s", r->replica, r->url, it->valuestring);
        cJSON_AddItemToArray(dst, cJSON_CreateString(m));
        free(m);
    }
}

/* The warning for a proxy with several replicas of which one (bare) has no relay URL. */
void op_health_warn_bare(cJSON *warnings, const char *bare)
{
    if (!*bare) return;
    char m[400];
    snprintf(m, sizeof(m),
             "replica %s has no relay URL (--derp-server-relay-url) although the proxy has several replicas: "
             "agents reach it only through the access URL, so streams through it may find no agent",
             bare);
    cJSON_AddItemToArray(warnings, cJSON_CreateString(m));
}

static int by_proxy_then_order(const void *a, const void *b)
{
    const struct op_health_result *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : x->order - y->order;
}

/* Combines each proxy's verdicts: ok while any replica is ok (or, with none ok, while the access URL is:
 * the primary may not reach the relay URLs that agents do); the failures then become warnings. Otherwise
 * unhealthy if a replica or the access URL answered with a bad report, else unreachable. The report lists
 * the replicas oldest first, whatever order the probes finished in. */
void op_health_combine(struct op_health_result *agg, size_t n, op_health_set_fn set, void *ctx)
{
    if (n > 1) qsort(agg, n, sizeof(*agg), by_proxy_then_order);
    for (size_t i = 0; i < n; i++) {
        if (!agg[i].id[0]) continue; /* already combined */
        char id[OP_UUID_STR_LEN + 1];
        snprintf(id, sizeof(id), "%s", agg[i].id);
        cJSON *reps = cJSON_CreateArray(), *fails = cJSON_CreateArray(), *warns = cJSON_CreateArray();
        op_health_warn_bare(warns, agg[i].bare);
        int nok = 0, nunhealthy = 0;
        bool access_ok = false;
        for (size_t j = i; j < n; j++) {
            struct op_health_result *r = &agg[j];
            if (strcmp(r->id, id) != 0) continue;
            if (r->access) {
                access_ok = r->status == OP_HEALTH_OK;
                if (r->status == OP_HEALTH_UNHEALTHY) nunhealthy++;
                add_prefixed(fails, r->errors, r);
            } else {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "id", r->replica);
                cJSON_AddStringToObject(o, "relay_url", r->url);
                cJSON_AddStringToObject(o, "status", op_health_status_name(r->status));
                cJSON_AddItemToObject(o, "errors",
                                      r->errors ? cJSON_Duplicate(r->errors, 1) : cJSON_CreateArray());
                cJSON_AddItemToObject(o, "warnings",
                                      r->warnings ? cJSON_Duplicate(r->warnings, 1) : cJSON_CreateArray());
                cJSON_AddItemToArray(reps, o);
                if (r->status == OP_HEALTH_OK) nok++;
                if (r->status == OP_HEALTH_UNHEALTHY) nunhealthy++;
                add_prefixed(fails, r->errors, r);
                add_prefixed(warns, r->warnings, r);
            }
            cJSON_Delete(r->errors);
            cJSON_Delete(r->warnings);
            r->errors = r->warnings = NULL;
            r->id[0] = '\0';
        }
        bool ok = nok > 0 || access_ok;
        if (!nok && access_ok)
            cJSON_AddItemToArray(warns,
                                 cJSON_CreateString("no replica answered at its relay URL, the access URL "
                                                    "did: agents must reach the relay URLs to serve "
                                                    "streams through every replica"));
        enum op_health_status st = ok           ? OP_HEALTH_OK
                                   : nunhealthy ? OP_HEALTH_UNHEALTHY
                                                : OP_HEALTH_UNREACHABLE;
        if (ok) { /* the region works: what does not is worth a warning, not an error */
            cJSON *it;
            while ((it = cJSON_DetachItemFromArray(fails, 0)) != NULL)
                cJSON_AddItemToArray(warns, it);
            cJSON_Delete(fails);
            fails = NULL;
        }
        set(ctx, id, st, fails, warns, reps);
    }
}
