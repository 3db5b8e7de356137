/*
 * http/server.h — run the engine as an HTTP server whose requests are answered by an application
 * handler on the control thread (the primary), or by built-in responders, with the usual listener
 * options. Implemented by the engine (the lead); roles call it from their `outpost <cmd>` entry point.
 */
#ifndef OP_HTTP_SERVER_H
#define OP_HTTP_SERVER_H

#include "http/app.h"

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
    size_t max_body;         /* request body cap for the handler (0 = 1 MiB) -> 413 */
    const char *server_name; /* for logs */
};

/* Binds the listeners, starts the workers and the control loop, and runs until SIGTERM/SIGINT (graceful
 * drain). Returns a process exit code (0 after a clean stop; 69/78 with a logged reason on failure). */
int op_app_server_run(const struct op_app_server_opts *opts);

#endif
