/*
 * Unit test for region/broker.c: control connection bookkeeping and its limits, parking spares (limit,
 * refused without a control connection), taking them (newest first, dead ones skipped by the MSG_PEEK
 * check, ones that sent bytes too), waiting clients served in order with the SPARES count they need,
 * unwait, the parked sockets closed with the agent's last control connection, refill, spares parked too
 * long closed by refill (and counted as on their way), a parked spare's transport session freed with it,
 * and agent entries reused once empty. Sockets are socketpairs: the test holds the agent's end.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "region/broker.h"
#include "region/region.h"

#define A1 "11111111-1111-4111-8111-111111111111"
#define A2 "22222222-2222-4222-8222-222222222222"
#define A3 "33333333-3333-4333-8333-333333333333"

#define LEG(fd) (&(struct op_leg){(fd), NULL, NULL})

/* A stand-in transport session: only its free matters here. */
static int sessions_freed;
static void sess_free(void *x)
{
    (void)x;
    sessions_freed++;
}
static void sess_bind(void *x, struct op_conn *c, enum op_side side)
{
    (void)x, (void)c, (void)side;
}
static const struct op_xprt_ops sess_ops = {.name = "session", .bind = sess_bind, .free = sess_free};

static struct op_conn_ref ref(uint32_t slot)
{
    struct op_conn_ref r = {.worker = 1, .gen = 7, .slot = slot};
    return r;
}

/* A spare: the region's end is returned, the agent's end goes to *peer. */
static int spare(int *peer)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return -1;
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    *peer = sv[1];
    return sv[0];
}

static bool peer_sees_eof(int peer)
{
    char c;
    return recv(peer, &c, 1, MSG_DONTWAIT) == 0;
}

int main(void)
{
    struct op_broker_limits lim = {
        .max_agents = 2, .ctl_per_agent = 2, .spares_per_agent = 3, .waiters_per_agent = 2};
    struct op_broker *b = op_broker_new(&lim);
    CHECK(b != NULL, "new");
    struct op_broker_stats st;
    uint32_t ask;
    int peer[8], fd[8];
    struct op_leg leg;

    printf("control connections: per-agent limit, agent table limit\n");
    CHECK(op_broker_ctl_add(b, A1, ref(1)) == 0, "add 1");
    CHECK(op_broker_ctl_add(b, A1, ref(2)) == 0, "add 2");
    CHECK(op_broker_ctl_add(b, A1, ref(3)) == -EUSERS, "third control connection refused");
    CHECK(op_broker_ctl_add(b, A2, ref(4)) == 0, "second agent");
    CHECK(op_broker_ctl_add(b, A3, ref(5)) == -ENOSPC, "third agent refused (max_agents 2)");
    struct op_conn_ref r;
    CHECK(op_broker_ctl_pick(b, A1, &r) && r.slot == 2, "pick the newest");
    CHECK(!op_broker_ctl_pick(b, A3, &r), "no pick for an unknown agent");

    printf("parking: only with a control connection, up to the limit\n");
    fd[0] = spare(&peer[0]);
    CHECK(op_broker_park(b, A3, LEG(fd[0]), &r) == -ESRCH, "spare of an agent without control connection");
    for (int i = 0; i < 3; i++) {
        if (i) fd[i] = spare(&peer[i]);
        CHECK(op_broker_park(b, A1, LEG(fd[i]), &r) == 0, "park %d", i);
    }
    CHECK(op_broker_parked(b, A1) == 3, "three parked");
    CHECK(!op_broker_can_park(b, A1), "no room for a fourth");
    fd[3] = spare(&peer[3]);
    CHECK(op_broker_park(b, A1, LEG(fd[3]), &r) == -EUSERS, "fourth refused");
    close(fd[3]);
    close(peer[3]);

    printf("taking: newest first; a closed one and one that sent bytes are skipped\n");
    close(peer[2]);                               /* the newest died */
    CHECK(send(peer[1], "x", 1, 0) == 1, "send"); /* the next one sent a byte before OPEN */
    int got = op_broker_take(b, A1, NULL, &ask, &leg);
    CHECK(got == fd[0] && leg.fd == fd[0] && !leg.xops, "took %d, want the only live one %d", got, fd[0]);
    op_broker_stats(b, &st);
    CHECK(st.dead_total == 2 && st.taken_total == 1 && st.parked == 0, "dead %llu taken %llu parked %u",
          (unsigned long long)st.dead_total, (unsigned long long)st.taken_total, st.parked);
    close(got);
    close(peer[0]);
    close(peer[1]);
    CHECK(op_broker_take(b, A1, NULL, &ask, &leg) == -ENOENT, "none left");
    CHECK(op_broker_take(b, A3, NULL, &ask, &leg) == -ESRCH, "unknown agent");

    printf("waiting clients: registered atomically, served in order, SPARES count\n");
    /* one spare is on its way already (the agent replaces the one taken): the first waiter asks for none */
    CHECK(op_broker_take(b, A1, &(struct op_conn_ref){.slot = 10}, &ask, &leg) == -EINPROGRESS && ask == 0,
          "first waiter (ask %u)", ask);
    CHECK(op_broker_take(b, A1, &(struct op_conn_ref){.slot = 11}, &ask, &leg) == -EINPROGRESS && ask == 1,
          "second waiter asks for one (ask %u)", ask);
    CHECK(op_broker_take(b, A1, &(struct op_conn_ref){.slot = 12}, &ask, &leg) == -EUSERS,
          "third waiter refused");
    fd[4] = spare(&peer[4]);
    CHECK(op_broker_park(b, A1, LEG(fd[4]), &r) == 1 && r.slot == 10, "a new spare goes to the first waiter");
    close(fd[4]);
    close(peer[4]);
    CHECK(!op_broker_unwait(b, A1, ref(10)), "served: no longer waiting");
    CHECK(op_broker_unwait(b, A1, (struct op_conn_ref){.slot = 11}), "unwait the second");
    op_broker_stats(b, &st);
    CHECK(st.waiting == 0 && st.handed_total == 1, "waiting %u handed %llu", st.waiting,
          (unsigned long long)st.handed_total);

    printf("refill: bring the parked ones up to the wanted number\n");
    CHECK(op_broker_refill(b, A1, 2) == 2, "two wanted, none parked");
    fd[5] = spare(&peer[5]);
    CHECK(op_broker_park(b, A1, LEG(fd[5]), &r) == 0, "park");
    CHECK(op_broker_refill(b, A1, 2) == 1, "one more");
    CHECK(op_broker_refill(b, A3, 2) == 0, "unknown agent: none");

    printf("the last control connection's end closes the parked sockets; empty entries are reused\n");
    op_broker_ctl_del(b, A1, ref(1));
    CHECK(op_broker_parked(b, A1) == 1, "one control connection left: still parked");
    op_broker_ctl_del(b, A1, ref(2));
    CHECK(op_broker_parked(b, A1) == 0 && peer_sees_eof(peer[5]), "closed with the last control connection");
    close(peer[5]);
    CHECK(op_broker_ctl_add(b, A3, ref(6)) == 0, "the freed entry serves another agent");
    op_broker_stats(b, &st);
    CHECK(st.agents == 2 && st.ctl == 2, "agents %u ctl %u", st.agents, st.ctl);

    printf("free closes what is still parked\n");
    fd[6] = spare(&peer[6]);
    CHECK(op_broker_park(b, A3, LEG(fd[6]), &r) == 0, "park");
    op_broker_free(b);
    CHECK(peer_sees_eof(peer[6]), "parked socket closed by free");
    close(peer[6]);
    printf("idle spares: refill closes the ones parked too long, which the agent replaces unasked\n");
    struct op_broker_limits il = lim;
    il.spare_idle_ms = 100;
    b = op_broker_new(&il);
    CHECK(b && op_broker_ctl_add(b, A1, ref(1)) == 0, "new, control connection");
    int s1 = spare(&peer[0]), s2 = spare(&peer[1]), s3 = spare(&peer[2]);
    int tag = 0;
    CHECK(op_broker_park(b, A1, &(struct op_leg){s1, &sess_ops, &tag}, &r) == 0 &&
              op_broker_park(b, A1, LEG(s2), &r) == 0,
          "park two");
    CHECK(op_broker_refill(b, A1, 3) == 1, "young: none closed, one more asked for");
    usleep(150 * 1000);
    CHECK(op_broker_park(b, A1, LEG(s3), &r) == 0, "park a third");
    CHECK(op_broker_refill(b, A1, 3) == 0, "two closed for idleness are on their way: none asked for");
    CHECK(peer_sees_eof(peer[0]) && peer_sees_eof(peer[1]), "the idle ones are closed");
    CHECK(sessions_freed == 1, "the idle spare's session was freed (%d)", sessions_freed);
    op_broker_stats(b, &st);
    CHECK(op_broker_parked(b, A1) == 1 && st.idle_total == 2 && st.parked == 1, "parked %u idle %llu",
          op_broker_parked(b, A1), (unsigned long long)st.idle_total);
    CHECK(op_broker_take(b, A1, NULL, &ask, &leg) == s3, "the young one is still taken");
    close(s3);
    int s4 = spare(&peer[3]);
    CHECK(op_broker_park(b, A1, &(struct op_leg){s4, &sess_ops, &tag}, &r) == 0, "park one with a session");
    op_broker_ctl_del(b, A1, ref(1));
    CHECK(sessions_freed == 2 && peer_sees_eof(peer[3]),
          "closed with the last control connection, session too");
    op_broker_free(b);
    for (int i = 0; i < 4; i++)
        close(peer[i]);

    printf("limits spec: name=value pairs over the defaults, bad ones named\n");
    struct op_region_limits rl = {.spares_wanted = 2};
    char err[200];
    CHECK(op_region_limits_parse("spares=4,max-spares=32,wait=3s,idle=0s,heartbeat=500ms", &rl, err,
                                 sizeof(err)) == 0,
          "parse: %s", err);
    CHECK(rl.spares_wanted == 4 && rl.spares_per_agent == 32 && rl.wait_ms == 3000 &&
              rl.heartbeat_ms == 500 && rl.tunnel_idle_ms == 0 && rl.max_agents == 0,
          "values");
    CHECK(op_region_limits_parse(NULL, &rl, err, sizeof(err)) == 0 &&
              op_region_limits_parse("", &rl, err, 200) == 0,
          "empty");
    CHECK(op_region_limits_parse("spares=0", &rl, err, sizeof(err)) == -EINVAL && strstr(err, "spares=0"),
          "zero");
    CHECK(op_region_limits_parse("nope=1", &rl, err, sizeof(err)) == -EINVAL && strstr(err, "nope"),
          "unknown");
    CHECK(op_region_limits_parse("wait=forever", &rl, err, sizeof(err)) == -EINVAL, "bad duration");
    CHECK(op_region_limits_parse("spares=4,", &rl, err, sizeof(err)) == -EINVAL, "trailing comma");
    CHECK(op_region_limits_parse("waiters=12x", &rl, err, sizeof(err)) == -EINVAL, "bad count");
    return check_report("region broker and limits");
}
