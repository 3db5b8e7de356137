/*
 * region/app_stats.c — app usage counted on the workers, collected on the control thread (docs/apps.md,
 * "App stats"). Each worker owns two fixed tables of (user, workspace, agent, access method, app) entries
 * and bumps the one `cur` names; nothing is shared with another worker and nothing is allocated. The
 * control thread flips `cur`, waits until the worker is not inside a bump of the old table (`busy` is odd
 * during a bump: sequentially consistent, so a bump that read the old `cur` is seen as in progress), then
 * reads and clears the old table. A full table drops the entry and counts it.
 */
#include <cjson/cJSON.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/log.h"
#include "region/apps_int.h"
#include "util/clock.h"
#include "util/uuid.h"

struct app_stat_worker *op_region_app_stats_alloc(void)
{
    size_t n = OP_ENGINE_MAX_WORKERS * sizeof(struct app_stat_worker); /* a multiple of 64 */
    struct app_stat_worker *s = aligned_alloc(64, n);
    if (s) memset(s, 0, n);
    return s;
}

void op_region_app_stat(struct op_region *r, int worker, const struct op_wsapp_token *t)
{
    if (!r->stats || worker < 0 || worker >= OP_ENGINE_MAX_WORKERS) return;
    struct app_stat_worker *sw = &r->stats[worker];
    uint64_t h = op_region_fnv(op_region_fnv(op_region_fnv(op_region_fnv(OP_REGION_FNV_BASIS, t->user_id),
                                                           t->workspace_id),
                                             t->agent_id),
                               t->req.slug_or_port) ^
                 (uint64_t)t->req.access;
    int64_t now = op_wall_ms();
    if (!atomic_load_explicit(&sw->active, memory_order_relaxed)) atomic_store(&sw->active, true); /* once */
    atomic_fetch_add(&sw->busy, 1);
    struct app_stat_table *tb = &sw->t[atomic_load(&sw->cur) & 1];
    struct app_stat *hit = NULL;
    for (unsigned i = 0; i < REGION_STAT_PROBES && !hit; i++) {
        struct app_stat *s = &tb->slot[(h + i) % REGION_STAT_SLOTS];
        if (!s->used) {
            s->used = true;
            s->hash = h;
            s->access = (uint8_t)t->req.access;
            memcpy(s->user_id, t->user_id, sizeof(s->user_id));
            memcpy(s->workspace_id, t->workspace_id, sizeof(s->workspace_id));
            memcpy(s->agent_id, t->agent_id, sizeof(s->agent_id));
            memcpy(s->slug, t->req.slug_or_port, sizeof(s->slug));
            s->first_ms = now;
            hit = s;
        } else if (s->hash == h && s->access == (uint8_t)t->req.access && !strcmp(s->user_id, t->user_id) &&
                   !strcmp(s->workspace_id, t->workspace_id) && !strcmp(s->agent_id, t->agent_id) &&
                   !strcmp(s->slug, t->req.slug_or_port)) {
            hit = s;
        }
    }
    if (hit) {
        hit->requests++;
        hit->last_ms = now;
    } else {
        tb->dropped++;
    }
    atomic_fetch_add(&sw->busy, 1);
}

static void session_id(char out[37])
{
    uint8_t b[16] = {0};
    if (getrandom(b, sizeof(b), GRND_NONBLOCK) != (ssize_t)sizeof(b)) {
        uint64_t x = (uint64_t)op_wall_ms() * 0x9e3779b97f4a7c15ull; /* no entropy yet: unique enough */
        memcpy(b, &x, sizeof(x));
    }
    op_uuid_v4_text(b, out);
}

char *op_region_app_stats_take(struct op_region *r, uint64_t *requests)
{
    *requests = 0;
    if (!r->stats) return NULL;
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "stats");
    uint64_t dropped = 0;
    int n = 0;
    for (int w = 0; w < OP_ENGINE_MAX_WORKERS; w++) {
        struct app_stat_worker *sw = &r->stats[w];
        if (!atomic_load(&sw->active)) continue;
        int old = atomic_load(&sw->cur) & 1;
        atomic_store(&sw->cur, old ^ 1);
        uint64_t b = atomic_load(&sw->busy);
        while ((b & 1) && atomic_load(&sw->busy) == b)
            sched_yield(); /* a bump takes nanoseconds */
        struct app_stat_table *tb = &sw->t[old];
        for (int i = 0; i < REGION_STAT_SLOTS; i++) {
            struct app_stat *s = &tb->slot[i];
            if (!s->used) continue;
            char t0[32], t1[32], sid[37];
            op_format_time(s->first_ms, t0);
            op_format_time(s->last_ms, t1);
            session_id(sid);
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "user_id", s->user_id);
            cJSON_AddStringToObject(e, "workspace_id", s->workspace_id);
            cJSON_AddStringToObject(e, "agent_id", s->agent_id);
            cJSON_AddStringToObject(e, "access_method",
                                    op_wsapp_access_name((enum op_wsapp_access)s->access));
            cJSON_AddStringToObject(e, "slug_or_port", s->slug);
            cJSON_AddStringToObject(e, "session_id", sid);
            cJSON_AddStringToObject(e, "session_started_at", t0);
            cJSON_AddStringToObject(e, "session_ended_at", t1);
            cJSON_AddNumberToObject(e, "requests", (double)s->requests);
            cJSON_AddItemToArray(arr, e);
            *requests += s->requests;
            n++;
        }
        dropped += tb->dropped;
        memset(tb, 0, sizeof(*tb));
    }
    if (dropped)
        op_warn("apps", "app stats: %llu requests not counted (table full)", (unsigned long long)dropped);
    char *s = n ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}
