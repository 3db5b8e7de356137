/*
 * region/revoke.c — agents revoked on this region (region.h, op_region_revoke_agent). Only the primary
 * revokes: it learns of a regenerated token or a deleted workspace in its database. A proxy, which has no
 * database, accepts the last credential until it expires (docs/agent-protocol.md §1).
 *
 * The table is touched once per control or stream connection set-up and once per heartbeat of each
 * control connection, never per byte.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "region/region_int.h"

bool op_region_is_revoked(struct op_region *r, const char *agent, int64_t iat)
{
    bool v = false;
    pthread_mutex_lock(&r->rev_mu);
    for (int i = 0; i < REGION_REVOKED && !v; i++)
        v = r->revoked[i].at && iat <= r->revoked[i].at && strcmp(r->revoked[i].agent, agent) == 0;
    pthread_mutex_unlock(&r->rev_mu);
    return v;
}

int64_t op_region_revoked_until(struct op_region *r, const char *agent)
{
    int64_t at = 0;
    pthread_mutex_lock(&r->rev_mu);
    for (int i = 0; i < REGION_REVOKED; i++)
        if (r->revoked[i].at > at && strcmp(r->revoked[i].agent, agent) == 0) at = r->revoked[i].at;
    pthread_mutex_unlock(&r->rev_mu);
    return at;
}

bool op_region_post_revoke(struct op_region *r, struct op_engine *e, const char *agent)
{
    struct op_conn_ref ctl;
    if (!e || !op_broker_ctl_pick(r->broker, agent, &ctl)) return false;
    struct region_msg *m = op_region_msg_get(r);
    if (!m) return false;
    m->kind = MSG_REVOKE;
    m->ref = ctl;
    snprintf(m->agent, sizeof(m->agent), "%.*s", OP_ID_LEN, agent);
    op_region_msg_post(e, m);
    return true;
}

void op_region_revoke_agent(struct op_region *r, struct op_engine *e, const char *agent_id)
{
    /* A credential issued in this very second counts as revoked too: a new agent's retry a second later
     * is accepted. */
    int64_t now = (int64_t)time(NULL);
    pthread_mutex_lock(&r->rev_mu);
    struct region_revoked *slot = NULL;
    for (int i = 0; i < REGION_REVOKED && !slot; i++)
        if (strcmp(r->revoked[i].agent, agent_id) == 0) slot = &r->revoked[i];
    if (!slot) slot = &r->revoked[r->rev_next++ % REGION_REVOKED];
    snprintf(slot->agent, sizeof(slot->agent), "%.*s", OP_ID_LEN, agent_id);
    slot->at = now;
    pthread_mutex_unlock(&r->rev_mu);
    bool told = op_region_post_revoke(r, e, agent_id);
    op_info("region", "agent %s revoked: credentials issued until now are refused%s", agent_id,
            told ? "; its control connections are closed" : "");
}
