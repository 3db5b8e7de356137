#include "core/tcp.h"

#include <string.h>

#include "core/log.h"

static void tcp_open(struct op_conn *c)
{
    const struct op_tcp_route *r = op_conn_proto_ctx(c);
    int rc = op_conn_connect(c, (const struct sockaddr *)&r->addr, r->addrlen);
    if (rc < 0) {
        op_warn("tcp", "upstream %s: socket: %s", r->name, strerror(-rc));
        op_conn_close(c, "upstream socket failed");
        return;
    }
    op_conn_set_timeout(c, op_worker_timeouts(op_conn_worker(c))->connect_ms);
}

static void tcp_connected(struct op_conn *c, int err)
{
    const struct op_tcp_route *r = op_conn_proto_ctx(c);
    if (err < 0) {
        op_warn("tcp", "upstream %s: connect: %s", r->name, strerror(-err));
        op_conn_close(c, "upstream connect failed");
        return;
    }
    op_conn_tunnel(c, op_worker_timeouts(op_conn_worker(c))->tunnel_idle_ms);
}

/* Client bytes that arrive before the upstream is connected are queued for it. */
static int tcp_client_data(struct op_conn *c, const uint8_t *p, size_t n)
{
    return op_conn_queue(c, OP_UP, p, n);
}

static void tcp_eof(struct op_conn *c, enum op_side side)
{
    if (side == OP_CLI) /* client finished before the upstream answered the connect: pass the FIN on */
        op_conn_shutdown(c, OP_UP);
    else
        op_conn_close(c, "upstream closed");
}

static void tcp_timeout(struct op_conn *c)
{
    op_conn_close(c, "upstream connect timeout");
}

const struct op_proto_ops op_proto_tcp = {
    .name = "tcp",
    .state_size = 0,
    .on_open = tcp_open,
    .on_client_data = tcp_client_data,
    .on_upstream_connected = tcp_connected,
    .on_eof = tcp_eof,
    .on_timeout = tcp_timeout,
};
