/*
 * wsproxy/primary_client.c — the proxy's HTTP calls to the primary (libcurl). A call is a struct
 * op_ws_call: set up once, then run either blocking (start-up, deregistration) or through the control
 * thread's curl multi handle (heartbeats, key refreshes). Never logs the token.
 */
#include "wsproxy/primary_client.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/body.h"

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    struct op_ws_call *x = arg;
    return op_body_append(&x->body, &x->len, 4u << 20, p, sz * n) == 0 ? sz * n : 0;
}

struct op_ws_call *op_ws_call_new(const struct op_ws_client *cl, int kind, const char *method,
                                  const char *path, const char *json_body, long timeout_ms)
{
    struct op_ws_call *x = calloc(1, sizeof(*x));
    if (!x) return NULL;
    x->kind = kind;
    x->h = curl_easy_init();
    if (!x->h) {
        free(x);
        return NULL;
    }
    char url[2048];
    snprintf(url, sizeof(url), "%s%s", cl->base_url, path);
    curl_easy_setopt(x->h, CURLOPT_URL, url);
    curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(x->h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 5000 ? timeout_ms : 5000L);
    curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
    curl_easy_setopt(x->h, CURLOPT_USERAGENT, "outpost-wsproxy/" OP_VERSION);
    curl_easy_setopt(x->h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (cl->ca_file && *cl->ca_file) curl_easy_setopt(x->h, CURLOPT_CAINFO, cl->ca_file);
    if (cl->cert_file && *cl->cert_file) {
        curl_easy_setopt(x->h, CURLOPT_SSLCERT, cl->cert_file);
        curl_easy_setopt(x->h, CURLOPT_SSLKEY, cl->key_file);
    }
    x->hdrs = curl_slist_append(x->hdrs, "Accept: application/json");
    if (cl->token && *cl->token) {
        char h[512];
        snprintf(h, sizeof(h), "Coder-External-Proxy-Token: %s", cl->token);
        x->hdrs = curl_slist_append(x->hdrs, h);
    }
    if (json_body) {
        x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/json");
        x->post = strdup(json_body);
        curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, x->post);
        curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE, (long)strlen(json_body));
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        curl_easy_setopt(x->h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs);
    return x;
}

void op_ws_call_finish(struct op_ws_call *x, CURLcode code)
{
    x->code = code;
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
    if (code == CURLE_OK && x->body) x->json = cJSON_Parse(x->body);
}

void op_ws_call_perform(struct op_ws_call *x)
{
    op_ws_call_finish(x, curl_easy_perform(x->h));
}

void op_ws_call_free(struct op_ws_call *x)
{
    if (!x) return;
    if (x->h) curl_easy_cleanup(x->h);
    curl_slist_free_all(x->hdrs);
    free(x->post);
    free(x->body);
    cJSON_Delete(x->json);
    free(x);
}

enum op_ws_failure op_ws_call_failure(const struct op_ws_call *x)
{
    switch (x->code) {
    case CURLE_OK:
        return x->status >= 200 && x->status < 300 ? OP_WS_FAIL_NONE : OP_WS_FAIL_STATUS;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_USE_SSL_FAILED:
        return OP_WS_FAIL_TLS;
    default:
        return OP_WS_FAIL_TRANSPORT;
    }
}

void op_ws_call_describe(const struct op_ws_call *x, char *out, size_t outlen)
{
    if (x->code != CURLE_OK) {
        snprintf(out, outlen, "%s", *x->errbuf ? x->errbuf : curl_easy_strerror(x->code));
        return;
    }
    const char *msg = NULL, *detail = NULL;
    if (cJSON_IsObject(x->json)) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(x->json, "message");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(x->json, "detail");
        msg = cJSON_IsString(m) ? m->valuestring : NULL;
        detail = cJSON_IsString(d) && *d->valuestring ? d->valuestring : NULL;
    }
    if (msg)
        snprintf(out, outlen, "status %ld: %s%s%s", x->status, msg, detail ? " " : "", detail ? detail : "");
    else
        snprintf(out, outlen, "unexpected status %ld", x->status);
}

const char *op_ws_call_detail(const struct op_ws_call *x)
{
    if (!cJSON_IsObject(x->json)) return "";
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(x->json, "detail");
    return cJSON_IsString(d) ? d->valuestring : "";
}
