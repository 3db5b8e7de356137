/*
 * runner/runner.h — the role runner: composes the engine, the transports (plain TCP, TLS), the HTTP
 * protocol and the control thread into a running role. A role (the primary, the workspace proxy) calls
 * it from its `outpost <cmd>` entry point; the libraries below (core, tls, http, ctl) know nothing of
 * roles.
 *
 * op_app_server_run is the whole loop for a role whose requests are answered by an application handler
 * on the control thread (the primary). The smaller pieces (one HTTP listener, the exit code of a failed
 * start) serve roles that run their own loop (the workspace proxy).
 */
#ifndef OP_RUNNER_H
#define OP_RUNNER_H

#include "core/engine.h"
#include "http/app.h"
#include "http/proxy.h"

#define OP_MAX_TLS_CERTS 8

struct op_listen_opts {
    const char *http_address; /* "host:port" for plaintext HTTP, NULL/"" = none */
    const char *tls_address;  /* "host:port" for HTTPS, NULL/"" = none */
    const char *tls_cert_files[OP_MAX_TLS_CERTS];
    const char *tls_key_files[OP_MAX_TLS_CERTS];
    int ntls;               /* number of cert/key pairs */
    int tls_min_version;    /* 12 or 13 (0 = 12) */
    bool redirect_to_https; /* plaintext listener answers 308 to https when TLS is on */
};

struct op_app_server_opts {
    struct op_listen_opts listen;
    int workers;               /* 0 = one per online CPU */
    op_app_handler_fn handler; /* runs on the control thread; may block */
    void *handler_ctx;
    void (*tick)(void *ctx); /* called on the control thread about every 100 ms */
    void *tick_ctx;
    size_t max_body; /* request body cap for the handler (0 = 1 MiB) -> 413 */
    /* Optional: a route function that sees every request first (on the workers; a kind left 0 goes to the
     * handler), and a hook told the engine once it runs and NULL just before it is freed (control thread). */
    op_route_fn route;
    void *route_ctx;
    const char *const *upgrade_tokens; /* Upgrade tokens the route may see (op_http_conf; NULL = default) */
    void (*on_engine)(void *ctx, struct op_engine *e);
    void *on_engine_ctx;
    const char *server_name; /* for logs */
};

/* Binds the listeners, starts the workers and the control loop, and runs until SIGTERM/SIGINT (graceful
 * drain). Returns a process exit code (0 after a clean stop; 69/78 with a logged reason on failure). */
int op_app_server_run(const struct op_app_server_opts *opts);

/* Fills lc for an HTTP listener on addr ("host:port") with transport xprt (NULL = plain TCP) and its
 * context, serving the HTTP protocol configured by hc. 0, or -EINVAL with the reason in err. */
int op_runner_http_listener(struct op_listener_conf *lc, const char *addr, const struct op_xprt_ops *xprt,
                            void *xprt_ctx, struct op_http_conf *hc, char *err, size_t errlen);

/* The process exit code for a failed op_engine_start: 69 (EX_UNAVAILABLE) when the address is taken or
 * not ours to bind, else 71 (EX_OSERR). */
int op_runner_start_exit_code(int start_rc);

#endif
