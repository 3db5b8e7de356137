/*
 * cli/relay.c — `outpost relay`: the engine with a static route. A plain TLS terminator or TCP/HTTP
 * reverse proxy for operators, and the relay that tests and benchmarks drive.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cli/cmd.h"
#include "core/engine.h"
#include "core/log.h"
#include "core/tcp.h"
#include "ctl/ctl.h"
#include "http/proxy.h"
#include "tls/xprt.h"

#define MAX_LISTEN 8

static const char relay_usage[] =
    "Usage: outpost relay --listen ADDR [--listen ADDR ...] --upstream HOST:PORT [options]\n"
    "\n"
    "Relays every connection accepted on the listeners to one upstream.\n"
    "\n"
    "Options:\n"
    "  --listen ADDR            host:port (or [v6]:port) to accept on; repeatable (at most 8)\n"
    "  --upstream HOST:PORT     where to relay to (resolved once at start-up)\n"
    "  --mode tcp|http          tcp: relay bytes (default); http: parse, validate and forward every\n"
    "                           HTTP/1.1 request (keep-alive, Upgrade, X-Forwarded-*)\n"
    "  --tls-cert-file FILE     PEM certificate (chain) for TLS on the listeners; repeatable, paired in "
    "order\n"
    "  --tls-key-file FILE      PEM private key for the preceding certificate; repeatable\n"
    "  --tls-min-version V      1.2 (default) or 1.3\n"
    "  --workers N              worker threads (default: one per online CPU)\n"
    "  --cpu-offset N           pin worker i to CPU (N + i) mod ncpu (default 0)\n"
    "  --no-pin                 do not pin workers to CPUs\n"
    "  --splice[=MODE]          how plaintext tcp tunnels move bytes: inline (the default: the worker\n"
    "                           calls splice(2) itself through a pipe), uring (io_uring's splice, run by\n"
    "                           the kernel's io-wq threads) or off (copies through receive buffers)\n"
    "  --max-conns N            connections per worker (default 16384)\n"
    "  --recv-buffer-size B     bytes per provided receive buffer (default 65536)\n"
    "  --recv-buffers N         provided receive buffers per worker, a power of two (default 512)\n"
    "  --handshake-timeout MS   TLS handshake timeout (default 10000)\n"
    "  --head-timeout MS        request head timeout, http mode (default 10000)\n"
    "  --keepalive-timeout MS   idle keep-alive timeout, http mode (default 60000)\n"
    "  --connect-timeout MS     upstream connect timeout (default 5000)\n"
    "  --idle-timeout MS        idle timeout of request and response bodies and of the wait for a\n"
    "                           response, restarted by every piece that moves (default 60000)\n"
    "  --tunnel-idle-timeout MS idle timeout of relayed tunnels (default 3600000)\n"
    "  --drain-timeout MS       on SIGTERM, force-close connections after this long (default 10000)\n"
    "  --log-level LEVEL        debug, info (default), warn, error\n"
    "  --log-json               log JSON lines instead of text\n"
    "  -h, --help               show this help\n";

enum {
    O_LISTEN = 256,
    O_UPSTREAM,
    O_MODE,
    O_CERT,
    O_KEY,
    O_TLSMIN,
    O_WORKERS,
    O_CPU,
    O_NOPIN,
    O_SPLICE,
    O_MAXC,
    O_T_HS,
    O_T_HEAD,
    O_T_KA,
    O_T_CONN,
    O_T_IDLE,
    O_T_TUN,
    O_T_DRAIN,
    O_LOGLVL,
    O_LOGJSON,
    O_RBUF,
    O_NRBUF,
};

static const struct option relay_opts[] = {
    {"listen", required_argument, NULL, O_LISTEN},
    {"upstream", required_argument, NULL, O_UPSTREAM},
    {"mode", required_argument, NULL, O_MODE},
    {"tls-cert-file", required_argument, NULL, O_CERT},
    {"tls-key-file", required_argument, NULL, O_KEY},
    {"tls-min-version", required_argument, NULL, O_TLSMIN},
    {"workers", required_argument, NULL, O_WORKERS},
    {"cpu-offset", required_argument, NULL, O_CPU},
    {"no-pin", no_argument, NULL, O_NOPIN},
    {"splice", optional_argument, NULL, O_SPLICE},
    {"max-conns", required_argument, NULL, O_MAXC},
    {"handshake-timeout", required_argument, NULL, O_T_HS},
    {"head-timeout", required_argument, NULL, O_T_HEAD},
    {"keepalive-timeout", required_argument, NULL, O_T_KA},
    {"connect-timeout", required_argument, NULL, O_T_CONN},
    {"idle-timeout", required_argument, NULL, O_T_IDLE},
    {"tunnel-idle-timeout", required_argument, NULL, O_T_TUN},
    {"drain-timeout", required_argument, NULL, O_T_DRAIN},
    {"log-level", required_argument, NULL, O_LOGLVL},
    {"log-json", no_argument, NULL, O_LOGJSON},
    {"recv-buffer-size", required_argument, NULL, O_RBUF},
    {"recv-buffers", required_argument, NULL, O_NRBUF},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int parse_u32(const char *opt, const char *v, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long x = strtoul(v, &end, 10);
    if (errno || !*v || *end || x < min || x > max || v[0] == '-') {
        fprintf(stderr, "outpost relay: --%s: '%s' is not a number between %u and %u\n", opt, v, min, max);
        return -EINVAL;
    }
    *out = (uint32_t)x;
    return 0;
}

int op_cmd_relay(int argc, char **argv)
{
    const char *listen[MAX_LISTEN], *certs[OP_TLS_MAX_CERTS], *keys[OP_TLS_MAX_CERTS];
    int nlisten = 0, ncerts = 0, nkeys = 0;
    const char *upstream = NULL, *mode = "tcp";
    uint32_t workers = 0, cpu = 0, maxc = 0, tlsmin = 12, rbuf = 0, nrbuf = 0;
    bool nopin = false;
    int splice = -1; /* not given: inline in plaintext tcp mode, the fastest there (bench/README.md) */
    struct op_timeouts to = {0};
    uint32_t head_ms = 0, keepalive_ms = 0; /* HTTP mode: 0 = the protocol's default */
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", relay_opts, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case O_LISTEN:
            if (nlisten == MAX_LISTEN) {
                fprintf(stderr, "outpost relay: at most %d --listen addresses\n", MAX_LISTEN);
                return EX_USAGE;
            }
            listen[nlisten++] = optarg;
            break;
        case O_UPSTREAM:
            upstream = optarg;
            break;
        case O_MODE:
            mode = optarg;
            break;
        case O_CERT:
        case O_KEY:
            if ((c == O_CERT ? ncerts : nkeys) == OP_TLS_MAX_CERTS) {
                fprintf(stderr, "outpost relay: at most %d certificate/key pairs\n", OP_TLS_MAX_CERTS);
                return EX_USAGE;
            }
            if (c == O_CERT)
                certs[ncerts++] = optarg;
            else
                keys[nkeys++] = optarg;
            break;
        case O_TLSMIN:
            if (strcmp(optarg, "1.2") == 0 || strcmp(optarg, "tls12") == 0)
                tlsmin = 12;
            else if (strcmp(optarg, "1.3") == 0 || strcmp(optarg, "tls13") == 0)
                tlsmin = 13;
            else {
                fprintf(stderr, "outpost relay: --tls-min-version: '%s' must be 1.2 or 1.3\n", optarg);
                return EX_USAGE;
            }
            break;
        case O_WORKERS:
            rc = parse_u32("workers", optarg, 1, 64, &workers);
            break;
        case O_CPU:
            rc = parse_u32("cpu-offset", optarg, 0, 1023, &cpu);
            break;
        case O_NOPIN:
            nopin = true;
            break;
        case O_SPLICE:
            if (!optarg || !strcmp(optarg, "inline"))
                splice = OP_SPLICE_INLINE;
            else if (!strcmp(optarg, "uring"))
                splice = OP_SPLICE_URING;
            else if (!strcmp(optarg, "off"))
                splice = OP_SPLICE_OFF;
            else {
                fprintf(stderr, "outpost relay: --splice takes inline, uring or off, not \"%s\"\n", optarg);
                return EX_USAGE;
            }
            break;
        case O_MAXC:
            rc = parse_u32("max-conns", optarg, 1, 1u << 20, &maxc);
            break;
        case O_T_HS:
            rc = parse_u32("handshake-timeout", optarg, 1, 86400000, &to.handshake_ms);
            break;
        case O_T_HEAD:
            rc = parse_u32("head-timeout", optarg, 1, 86400000, &head_ms);
            break;
        case O_T_KA:
            rc = parse_u32("keepalive-timeout", optarg, 1, 86400000, &keepalive_ms);
            break;
        case O_T_CONN:
            rc = parse_u32("connect-timeout", optarg, 1, 86400000, &to.connect_ms);
            break;
        case O_T_IDLE:
            rc = parse_u32("idle-timeout", optarg, 1, 86400000, &to.idle_ms);
            break;
        case O_T_TUN:
            rc = parse_u32("tunnel-idle-timeout", optarg, 1, 86400000 * 7u, &to.tunnel_idle_ms);
            break;
        case O_T_DRAIN:
            rc = parse_u32("drain-timeout", optarg, 1, 86400000, &to.drain_ms);
            break;
        case O_LOGLVL: {
            enum op_log_level lvl;
            if (op_log_parse_level(optarg, &lvl) != 0) {
                fprintf(stderr, "outpost relay: --log-level: '%s' must be debug, info, warn or error\n",
                        optarg);
                return EX_USAGE;
            }
            op_log_set_level(lvl);
            break;
        }
        case O_LOGJSON:
            op_log_set_json(true);
            break;
        case O_RBUF:
            rc = parse_u32("recv-buffer-size", optarg, 4096, 1u << 20, &rbuf);
            break;
        case O_NRBUF:
            rc = parse_u32("recv-buffers", optarg, 16, 32768, &nrbuf);
            break;
        case 'h':
            fputs(relay_usage, stdout);
            return 0;
        default:
            fputs(relay_usage, stderr);
            return EX_USAGE;
        }
        if (rc) return EX_USAGE;
    }
    if (optind < argc) {
        fprintf(stderr, "outpost relay: unexpected argument '%s'\n", argv[optind]);
        return EX_USAGE;
    }
    if (nlisten == 0 || !upstream) {
        fprintf(stderr, "outpost relay: --listen and --upstream are required\n\n%s", relay_usage);
        return EX_USAGE;
    }
    bool http = false;
    if (strcmp(mode, "http") == 0)
        http = true;
    else if (strcmp(mode, "tcp") != 0) {
        fprintf(stderr, "outpost relay: --mode: '%s' must be tcp or http\n", mode);
        return EX_USAGE;
    }
    if (ncerts != nkeys) {
        fprintf(stderr, "outpost relay: %d --tls-cert-file but %d --tls-key-file: give them in pairs\n",
                ncerts, nkeys);
        return EX_USAGE;
    }
    if (splice < 0) splice = ncerts || http ? OP_SPLICE_OFF : OP_SPLICE_INLINE;
    if (splice && (ncerts || http)) {
        fprintf(stderr, "outpost relay: --splice applies to plaintext tcp mode only\n");
        return EX_USAGE;
    }

    char err[512];
    static struct op_tcp_route route;
    if (op_parse_hostport(upstream, &route.addr, &route.addrlen, err, sizeof(err)) != 0) {
        fprintf(stderr, "outpost relay: --upstream: %s\n", err);
        return EX_USAGE;
    }
    snprintf(route.name, sizeof(route.name), "%s", upstream);

    void *tls_ctx = NULL;
    if (ncerts) {
        if (op_tls_xprt_ctx_new(certs, keys, ncerts, (int)tlsmin, &tls_ctx, err, sizeof(err)) != 0) {
            fprintf(stderr, "outpost relay: TLS: %s\n", err);
            return EX_CONFIG;
        }
    }
    static struct op_http_conf hconf;
    if (http) {
        op_http_conf_init(&hconf);
        hconf.static_upstream = &route;
        if (head_ms) hconf.head_ms = head_ms;
        if (keepalive_ms) hconf.keepalive_ms = keepalive_ms;
    }

    static struct op_listener_conf lcs[MAX_LISTEN];
    for (int i = 0; i < nlisten; i++) {
        struct op_listener_conf *lc = &lcs[i];
        snprintf(lc->name, sizeof(lc->name), "%s", listen[i]);
        if (op_parse_hostport(listen[i], &lc->addr, &lc->addrlen, err, sizeof(err)) != 0) {
            fprintf(stderr, "outpost relay: --listen: %s\n", err);
            return EX_USAGE;
        }
        lc->xprt = tls_ctx ? &op_xprt_tls : NULL;
        atomic_store(&lc->xprt_ctx, tls_ctx);
        lc->proto = http ? &op_proto_http : &op_proto_tcp;
        lc->proto_ctx = http ? (void *)&hconf : (void *)&route;
    }
    struct op_engine_conf ec = {
        .workers = (int)workers,
        .no_pin = nopin,
        .first_cpu = (int)cpu,
        .listeners = lcs,
        .nlisteners = nlisten,
        .to = to,
        .max_conns = maxc,
        .splice = splice,
        .recv_buf_size = rbuf,
        .recv_bufs = nrbuf,
    };
    op_ctl_block_signals();
    struct op_engine *e = NULL;
    int rc = op_engine_start(&ec, &e, err, sizeof(err));
    if (rc != 0) {
        op_error("relay", "cannot start: %s", err);
        if (tls_ctx) op_tls_xprt_ctx_unref(tls_ctx);
        return rc == -EADDRINUSE || rc == -EACCES || rc == -EADDRNOTAVAIL ? EX_UNAVAILABLE : EX_OSERR;
    }
    for (int i = 0; i < nlisten; i++)
        op_info("relay", "listening on %s (%s%s) -> %s, %d workers", listen[i], tls_ctx ? "tls, " : "", mode,
                upstream, op_engine_nworkers(e));
    rc = op_ctl_run(e, NULL);
    op_engine_free(e);
    if (tls_ctx) op_tls_xprt_ctx_unref(tls_ctx);
    op_info("relay", "stopped");
    return rc;
}
