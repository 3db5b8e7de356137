/*
 * region/broker.c — agents' control connections, parked spares and waiting clients (see broker.h).
 *
 * A fixed table of agent entries reached through a chained hash on the agent id; each entry owns a slice
 * of three flat arrays (control connection refs, parked spares, a ring of waiting clients). Everything is
 * allocated in op_broker_new; an entry goes back to the free list when it holds nothing. Parked spares are
 * kept in the order they arrived (oldest first), so the idle check looks at the front and take at the back.
 */
#include "region/broker.h"

#include "core/common.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct agent {
    char id[OP_ID_LEN + 1];
    int32_t next; /* hash chain or free list */
    bool used;
    uint32_t nctl, nparked, whead, nwait;
    uint32_t coming; /* spares on their way (replacements of the ones taken, and asked for) */
};

struct parked {
    struct op_leg leg;
    uint64_t since_ms; /* when it was parked */
};

struct op_broker {
    pthread_mutex_t mu;
    struct op_broker_limits lim;
    struct agent *agents;
    int32_t *buckets;
    uint32_t nbuckets;
    int32_t free_head;
    struct op_conn_ref *ctl;     /* lim.ctl_per_agent per agent */
    struct parked *parked;       /* lim.spares_per_agent per agent, oldest first */
    struct op_conn_ref *waiters; /* lim.waiters_per_agent per agent, a ring */
    struct op_broker_stats st;
};

static uint32_t hash_id(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static bool same_ref(struct op_conn_ref a, struct op_conn_ref b)
{
    return a.worker == b.worker && a.gen == b.gen && a.slot == b.slot;
}

struct op_broker *op_broker_new(const struct op_broker_limits *lim)
{
    struct op_broker *b = calloc(1, sizeof(*b));
    if (!b) return NULL;
    b->lim = *lim;
    if (!b->lim.spare_idle_ms) b->lim.spare_idle_ms = OP_BROKER_SPARE_IDLE_MS;
    OP_BUG_ON(!lim->max_agents || !lim->ctl_per_agent || !lim->spares_per_agent || !lim->waiters_per_agent);
    b->nbuckets = 16;
    while (b->nbuckets < 2 * lim->max_agents)
        b->nbuckets <<= 1;
    size_t na = lim->max_agents;
    b->agents = calloc(na, sizeof(*b->agents));
    b->buckets = malloc(b->nbuckets * sizeof(*b->buckets));
    b->ctl = calloc(na * lim->ctl_per_agent, sizeof(*b->ctl));
    b->parked = calloc(na * lim->spares_per_agent, sizeof(*b->parked));
    b->waiters = calloc(na * lim->waiters_per_agent, sizeof(*b->waiters));
    if (!b->agents || !b->buckets || !b->ctl || !b->parked || !b->waiters) {
        op_broker_free(b);
        return NULL;
    }
    for (uint32_t i = 0; i < b->nbuckets; i++)
        b->buckets[i] = -1;
    for (size_t i = 0; i < na; i++)
        b->agents[i].next = i + 1 < na ? (int32_t)(i + 1) : -1;
    b->free_head = 0;
    pthread_mutex_init(&b->mu, NULL);
    return b;
}

void op_broker_free(struct op_broker *b)
{
    if (!b) return;
    if (b->agents && b->parked)
        for (uint32_t i = 0; i < b->lim.max_agents; i++)
            for (uint32_t k = 0; k < b->agents[i].nparked; k++)
                op_leg_close(&b->parked[(size_t)i * b->lim.spares_per_agent + k].leg);
    if (b->buckets) pthread_mutex_destroy(&b->mu);
    free(b->agents);
    free(b->buckets);
    free(b->ctl);
    free(b->parked);
    free(b->waiters);
    free(b);
}

static struct agent *find(struct op_broker *b, const char *id)
{
    for (int32_t i = b->buckets[hash_id(id) & (b->nbuckets - 1)]; i >= 0; i = b->agents[i].next)
        if (strcmp(b->agents[i].id, id) == 0) return &b->agents[i];
    return NULL;
}

static struct agent *find_or_add(struct op_broker *b, const char *id)
{
    struct agent *a = find(b, id);
    if (a || b->free_head < 0 || strlen(id) > OP_ID_LEN) return a;
    int32_t i = b->free_head;
    a = &b->agents[i];
    b->free_head = a->next;
    memset(a, 0, sizeof(*a));
    strcpy(a->id, id);
    a->used = true;
    uint32_t h = hash_id(id) & (b->nbuckets - 1);
    a->next = b->buckets[h];
    b->buckets[h] = i;
    b->st.agents++;
    return a;
}

/* Gives the entry back once it holds nothing. */
static void maybe_release(struct op_broker *b, struct agent *a)
{
    if (a->nctl || a->nparked || a->nwait) return;
    int32_t idx = (int32_t)(a - b->agents);
    int32_t *pp = &b->buckets[hash_id(a->id) & (b->nbuckets - 1)];
    while (*pp != idx) {
        OP_BUG_ON(*pp < 0); /* the entry is in its chain */
        pp = &b->agents[*pp].next;
    }
    *pp = a->next;
    a->used = false;
    a->next = b->free_head;
    b->free_head = idx;
    b->st.agents--;
}

static inline size_t aidx(const struct op_broker *b, const struct agent *a)
{
    return (size_t)(a - b->agents);
}
static inline struct op_conn_ref *ctl_of(struct op_broker *b, struct agent *a)
{
    return &b->ctl[aidx(b, a) * b->lim.ctl_per_agent];
}
static inline struct parked *parked_of(struct op_broker *b, struct agent *a)
{
    return &b->parked[aidx(b, a) * b->lim.spares_per_agent];
}
static inline struct op_conn_ref *waiter_at(struct op_broker *b, struct agent *a, uint32_t k)
{
    return &b->waiters[aidx(b, a) * b->lim.waiters_per_agent + (a->whead + k) % b->lim.waiters_per_agent];
}

int op_broker_ctl_add(struct op_broker *b, const char *agent, struct op_conn_ref ref)
{
    pthread_mutex_lock(&b->mu);
    struct agent *a = find_or_add(b, agent);
    int rc = 0;
    if (!a)
        rc = -ENOSPC;
    else if (a->nctl >= b->lim.ctl_per_agent)
        rc = -EUSERS;
    else {
        ctl_of(b, a)[a->nctl++] = ref;
        b->st.ctl++;
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

void op_broker_ctl_del(struct op_broker *b, const char *agent, struct op_conn_ref ref)
{
    pthread_mutex_lock(&b->mu);
    struct agent *a = find(b, agent);
    if (a) {
        struct op_conn_ref *c = ctl_of(b, a);
        for (uint32_t i = 0; i < a->nctl; i++) {
            if (!same_ref(c[i], ref)) continue;
            c[i] = c[--a->nctl];
            b->st.ctl--;
            break;
        }
        if (!a->nctl) {
            struct parked *p = parked_of(b, a);
            for (uint32_t i = 0; i < a->nparked; i++)
                op_leg_close(&p[i].leg);
            b->st.parked -= a->nparked;
            a->nparked = 0;
        }
        maybe_release(b, a);
    }
    pthread_mutex_unlock(&b->mu);
}

bool op_broker_ctl_pick(struct op_broker *b, const char *agent, struct op_conn_ref *out)
{
    pthread_mutex_lock(&b->mu);
    struct agent *a = find(b, agent);
    bool ok = a && a->nctl;
    if (ok) *out = ctl_of(b, a)[a->nctl - 1]; /* the newest: the likeliest to be alive */
    pthread_mutex_unlock(&b->mu);
    return ok;
}

uint32_t op_broker_parked(struct op_broker *b, const char *agent)
{
    pthread_mutex_lock(&b->mu);
    struct agent *a = find(b, agent);
    uint32_t n = a ? a->nparked : 0;
    pthread_mutex_unlock(&b->mu);
    return n;
}

bool op_broker_can_park(struct op_broker *b, const char *agent)
{
    pthread_mutex_lock(&b->mu);
    struct agent *a = find(b, agent);
    bool ok = a && a->nctl && (a->nwait || a->nparked < b->lim.spares_per_agent);
    pthread_mutex_unlock(&b->mu);
    return ok;
}

int op_broker_park(struct op_broker *b, const char *agent, const struct op_leg *leg,
                   struct op_conn_ref *waiter)
{
    OP_BUG_ON(leg->fd < 0);
    uint64_t now = op_now_ms();
    pthread_mutex_lock(&b->mu);
    struct agent *a = find(b, agent);
    int rc;
    if (!a || !a->nctl) {
        rc = -ESRCH;
    } else if (a->nwait) {
        if (a->coming) a->coming--;
        *waiter = *waiter_at(b, a, 0);
        a->whead = (a->whead + 1) % b->lim.waiters_per_agent;
        a->nwait--;
        b->st.waiting--;
        b->st.handed_total++;
        rc = 1;
    } else if (a->nparked >= b->lim.spares_per_agent) {
        rc = -EUSERS;
    } else {
        if (a->coming) a->coming--;
        parked_of(b, a)[a->nparked++] = (struct parked){*leg, now};
        b->st.parked++;
        b->st.parked_total++;
        rc = 0;
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

/* A parked socket is alive when a non-blocking peek finds nothing to read: the agent sends nothing before
 * OPEN, so bytes or an EOF mean the spare is unusable. */
static bool alive(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

int op_broker_take(struct op_broker *b, const char *agent, const struct op_conn_ref *wait, uint32_t *ask,
                   struct op_leg *out)
{
    *ask = 0;
    pthread_mutex_lock(&b->mu);
    struct agent *a = find(b, agent);
    int rc = -ENOENT;
    if (!a || !a->nctl) {
        rc = -ESRCH;
    } else {
        struct parked *p = parked_of(b, a);
        while (a->nparked) {
            struct op_leg leg = p[--a->nparked].leg;
            b->st.parked--;
            if (alive(leg.fd)) {
                b->st.taken_total++;
                a->coming++; /* the agent replaces it */
                *out = leg;
                rc = leg.fd;
                break;
            }
            op_leg_close(&leg);
            b->st.dead_total++;
        }
        if (rc == -ENOENT && wait) {
            if (a->nwait >= b->lim.waiters_per_agent) {
                rc = -EUSERS;
            } else {
                *waiter_at(b, a, a->nwait++) = *wait;
                b->st.waiting++;
                rc = -EINPROGRESS;
                if (a->nwait > a->coming) {
                    *ask = a->nwait - a->coming;
                    a->coming = a->nwait;
                }
            }
        }
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

/* Closes the agent's spares parked for spare_idle_ms or longer (the oldest are at the front); returns how
 * many. */
static uint32_t close_idle(struct op_broker *b, struct agent *a, uint64_t now)
{
    struct parked *p = parked_of(b, a);
    uint32_t k = 0;
    while (k < a->nparked && now - p[k].since_ms >= b->lim.spare_idle_ms)
        op_leg_close(&p[k++].leg);
    if (!k) return 0;
    memmove(p, p + k, (a->nparked - k) * sizeof(*p));
    a->nparked -= k;
    b->st.parked -= k;
    b->st.idle_total += k;
    return k;
}

uint32_t op_broker_refill(struct op_broker *b, const char *agent, uint32_t wanted)
{
    uint64_t now = op_now_ms();
    pthread_mutex_lock(&b->mu);
    struct agent *a = find(b, agent);
    uint32_t n = 0;
    if (a && a->nctl) {
        uint32_t replaced = close_idle(b, a, now); /* the agent replaces these without being asked */
        uint32_t have = a->nparked + replaced;
        n = have < wanted ? wanted - have : 0;
        if (a->nwait > have + n) n = a->nwait - have; /* clients still waiting get theirs too */
        a->coming = n + replaced;
    }
    pthread_mutex_unlock(&b->mu);
    return n;
}

bool op_broker_unwait(struct op_broker *b, const char *agent, struct op_conn_ref ref)
{
    pthread_mutex_lock(&b->mu);
    struct agent *a = find(b, agent);
    bool found = false;
    if (a) {
        for (uint32_t k = 0; k < a->nwait; k++) {
            if (!same_ref(*waiter_at(b, a, k), ref)) continue;
            for (uint32_t j = k; j + 1 < a->nwait; j++) /* keep the order of the others */
                *waiter_at(b, a, j) = *waiter_at(b, a, j + 1);
            a->nwait--;
            b->st.waiting--;
            found = true;
            break;
        }
        maybe_release(b, a);
    }
    pthread_mutex_unlock(&b->mu);
    return found;
}

void op_broker_stats(struct op_broker *b, struct op_broker_stats *out)
{
    pthread_mutex_lock(&b->mu);
    *out = b->st;
    pthread_mutex_unlock(&b->mu);
}
