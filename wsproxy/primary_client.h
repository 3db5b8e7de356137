/*
 * wsproxy/primary_client.h — one HTTP call from the proxy to the primary (libcurl easy handle), usable
 * blocking (start-up) or through a curl multi handle (control-thread heartbeats). Control thread only.
 */
#ifndef OP_WSPROXY_PRIMARY_CLIENT_H
#define OP_WSPROXY_PRIMARY_CLIENT_H

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "core/common.h"

struct op_ws_client {
    const char *base_url; /* primary URL without trailing '/' */
    const char *token;    /* Coder-External-Proxy-Token value (never logged) */
    const char *ca_file, *cert_file, *key_file;
};

struct op_ws_call {
    CURL *h;
    int kind; /* caller's tag */
    struct curl_slist *hdrs;
    char *post;
    char *body;
    size_t len;
    char errbuf[CURL_ERROR_SIZE];
    CURLcode code;
    long status;
    cJSON *json; /* parsed response body, or NULL */
};

enum op_ws_failure { OP_WS_FAIL_NONE = 0, OP_WS_FAIL_TRANSPORT, OP_WS_FAIL_TLS, OP_WS_FAIL_STATUS };

/* Sets up a call to base_url + path. json_body != NULL makes it a POST with that JSON. NULL on OOM. */
struct op_ws_call *op_ws_call_new(const struct op_ws_client *cl, int kind, const char *method,
                                  const char *path, const char *json_body, long timeout_ms);
/* Runs the call to completion (blocking). */
void op_ws_call_perform(struct op_ws_call *x);
/* Records the outcome of a call run by a multi handle. */
void op_ws_call_finish(struct op_ws_call *x, CURLcode code);
void op_ws_call_free(struct op_ws_call *x);
/* Classifies the outcome: none (2xx), transport (connect, DNS, timeout), TLS, or a non-2xx status. */
enum op_ws_failure op_ws_call_failure(const struct op_ws_call *x);
/* One line describing a failed call: curl's error text, or "status N: message detail". */
void op_ws_call_describe(const struct op_ws_call *x, char *out, size_t outlen);
/* The error body's "detail" ("" if none). */
const char *op_ws_call_detail(const struct op_ws_call *x);

#endif
