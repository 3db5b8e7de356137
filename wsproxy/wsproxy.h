/*
 * wsproxy/wsproxy.h — `outpost wsproxy server`: the workspace proxy's edge daemon.
 *
 * The data plane is the relay engine (workers answer /healthz, /healthz-report, /latency-check,
 * /api/v2/buildinfo and the "Head to the Dashboard" page from an immutable snapshot that the control
 * thread publishes through an atomic pointer). The control thread drives a libcurl multi handle from the
 * ctl tick: heartbeat registration with the primary every 5 s (10 s timeout, fatal after more than 10
 * consecutive failures, fatal when the primary says the proxy was deleted), crypto-key refresh every 10
 * minutes, the Prometheus listener's /metrics, SIGHUP reloads and deregistration on SIGTERM/SIGINT.
 */
#ifndef OP_WSPROXY_H
#define OP_WSPROXY_H

#include <stddef.h>

/* Heartbeat constants (docs/coder-compat.md, "Heartbeat"). */
#define OP_WS_REGISTER_INTERVAL_MS 5000
#define OP_WS_REGISTER_TIMEOUT_MS  10000
#define OP_WS_MAX_FAILURES         10
#define OP_WS_KEYS_INTERVAL_MS     (10 * 60 * 1000)

/* The proxy's build version, reported to the primary and in X-Coder-Build-Version. */
#define OP_WS_VERSION "v" OP_VERSION "+outpost"

/* Coder's version match rule (docs/coder-compat.md, "Versions"): equal major and minor; dev builds always
 * match. */
int op_ws_versions_match(const char *a, const char *b);

/* `outpost wsproxy server` entry point (argv[0] = "server"). Returns a process exit code: 0 after a
 * clean stop, 1 after a fatal registration failure or deletion, 64 usage, 69 primary unreachable or
 * refused, 78 configuration error. */
int op_cmd_wsproxy_server(int argc, char **argv);

#endif
