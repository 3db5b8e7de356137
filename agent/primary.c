/*
 * agent/primary.c — the agent's libcurl calls to the primary (see primary.h).
 */
#include "agent/primary.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "util/body.h"

#define MAX_BODY (1 << 20)

struct acc {
    char *buf;
    size_t len;
};

static size_t on_data(char *p, size_t sz, size_t n, void *arg)
{
    struct acc *a = arg;
    return op_body_append(&a->buf, &a->len, MAX_BODY, p, sz * n) == 0 ? sz * n : 0;
}

int op_agent_call(struct op_agent_http *h, const char *method, const char *path, const char *body,
                  struct op_agent_resp *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    if (!h->curl) h->curl = curl_easy_init();
    CURL *c = h->curl;
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -EIO;
    }
    curl_easy_reset(c);
    char url[2048], auth[256];
    snprintf(url, sizeof(url), "%s%s", h->base, path);
    snprintf(auth, sizeof(auth), "Coder-Session-Token: %s", h->token);
    struct curl_slist *hdr = curl_slist_append(NULL, auth);
    hdr = curl_slist_append(hdr, "Accept: application/json");
    if (body) hdr = curl_slist_append(hdr, "Content-Type: application/json");
    struct acc a = {0};
    char ebuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, h->timeout_ms > 0 ? h->timeout_ms : 10000L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "outpost-agent/" OP_VERSION);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (h->ca_file && *h->ca_file) curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file);
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(hdr);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "%s", *ebuf ? ebuf : curl_easy_strerror(rc));
        free(a.buf);
        return -EIO;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    r->body = a.buf;
    r->len = a.len;
    return 0;
}

void op_agent_resp_message(const struct op_agent_resp *r, char *out, size_t outlen)
{
    cJSON *j = r->body ? cJSON_Parse(r->body) : NULL;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "detail");
    if (cJSON_IsString(m))
        snprintf(out, outlen, "%s%s%s%s", m->valuestring, cJSON_IsString(d) && *d->valuestring ? " (" : "",
                 cJSON_IsString(d) ? d->valuestring : "", cJSON_IsString(d) && *d->valuestring ? ")" : "");
    else
        snprintf(out, outlen, "HTTP %ld", r->status);
    cJSON_Delete(j);
}

void op_agent_resp_free(struct op_agent_resp *r)
{
    free(r->body);
    r->body = NULL;
}

void op_agent_http_close(struct op_agent_http *h)
{
    if (h->curl) curl_easy_cleanup(h->curl);
    h->curl = NULL;
}
