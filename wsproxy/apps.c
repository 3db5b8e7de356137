/*
 * wsproxy/apps.c — the proxy's side of the slow path of workspace apps (docs/apps.md), on the control
 * thread: the region's app handler (region/apps_slow.c) with the proxy's hooks — a signed app token is
 * asked of the primary (POST /api/v2/workspaceproxies/me/issue-signed-app-token, the proxy token, no
 * redirect following, a short timeout; whatever else the primary answers is relayed as it is), the
 * app-connect API key is decrypted with the workspace_apps_api_key keys the proxy fetched, and an unknown
 * key id fetches the keys again at once.
 *
 * The call to the primary runs on the issuer thread (issuer.c) while the request waits deferred: the
 * control thread never waits for it, and a primary that hangs costs each sign-in its own 5 s, not a place
 * in a line. The last heartbeat failing to connect answers new sign-ins at once (502 page).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "proto/jws.h"
#include "wsproxy/server_int.h"

#define ISSUE_TIMEOUT_MS 5000

/* A worker met an unknown key id (an agent credential, a connect or terminal token): refetch. */
static void want_keys(void *ctx)
{
    op_wsp_refetch_keys(ctx, NULL, NULL);
}

void op_wsp_apps_init(struct ws *w)
{
    const char *wild = op_ws_str(&w->conf, OP_WO_WILDCARD_ACCESS_URL);
    const char *s = strstr(wild, "://") ? strstr(wild, "://") + 3 : wild;
    size_t sl = strcspn(s, "/");
    w->app_wildcard[0] = '\0';
    if (sl && sl < sizeof(w->app_wildcard) - 8) {
        /* The access URL's port goes with the pattern when it has none (as the primary does for its own):
         * app URLs the primary builds must reach this listener. */
        snprintf(w->app_wildcard, sizeof(w->app_wildcard), "%.*s", (int)sl, s);
        const char *a = strstr(w->access_url, "://");
        a = a ? a + 3 : w->access_url;
        size_t al = strcspn(a, "/");
        const char *colon = memchr(a, ':', al);
        if (!memchr(s, ':', sl) && colon)
            snprintf(w->app_wildcard + sl, sizeof(w->app_wildcard) - sl, "%.*s",
                     (int)(al - (size_t)(colon - a)), colon);
    }
    w->app_conf.access_url = w->access_url;
    w->app_conf.wildcard = w->app_wildcard;
    w->app_conf.dashboard_url = w->primary;
    w->app_conf.https = strncasecmp(w->access_url, "https://", 8) == 0;
    w->app_conf.primary = false;
    w->app_conf.disable_path_apps = false; /* the primary answers 403 when it disables them */
    if (*w->app_wildcard) op_info("wsproxy", "subdomain apps under %s", w->app_wildcard);
    op_region_set_refetch(w->region, want_keys, w);
}

/* ---- hooks ---------------------------------------------------------------------------------------- */

struct relay {
    struct op_app_response *resp;
};

/* Response headers of the issue call that go to the browser: Location and Set-Cookie. */
static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
    struct relay *rl = arg;
    size_t len = sz * n;
    static const char *const keep[] = {"Location:", "Set-Cookie:"};
    for (size_t i = 0; i < OP_ARRAY_LEN(keep); i++) {
        size_t kl = strlen(keep[i]);
        if (len > kl && strncasecmp(p, keep[i], kl) == 0) {
            size_t e = len;
            while (e > kl && (p[e - 1] == '\r' || p[e - 1] == '\n'))
                e--;
            size_t v = kl;
            while (v < e && p[v] == ' ')
                v++;
            char name[16], val[6000];
            snprintf(name, sizeof(name), "%.*s", (int)kl - 1, keep[i]);
            if (e - v < sizeof(val)) {
                memcpy(val, p + v, e - v);
                val[e - v] = '\0';
                if (op_app_add_header(rl->resp, name, val) != 0)
                    op_warn("apps", "a relayed header is too long");
            }
        }
    }
    return len;
}

static const char *static_ctype(const char *ct)
{
    if (!ct) return "text/plain; charset=utf-8";
    if (strncasecmp(ct, "text/html", 9) == 0) return "text/html; charset=utf-8";
    if (strncasecmp(ct, "application/json", 16) == 0) return "application/json";
    return "text/plain; charset=utf-8";
}

/* The issue call with its headers; the relayed headers go to rl->resp. */
static struct op_ws_call *issue_call(struct ws *w, const void *body, const char *real_ip, struct relay *rl)
{
    char *json = cJSON_PrintUnformatted((const cJSON *)body);
    if (!json) return NULL;
    struct op_ws_call *x = op_ws_call_new(
        &w->cl, 0, "POST", "/api/v2/workspaceproxies/me/issue-signed-app-token", json, ISSUE_TIMEOUT_MS);
    free(json);
    if (!x) return NULL;
    char ipl[128];
    snprintf(ipl, sizeof(ipl), "Coder-Workspace-Proxy-Real-IP: %s", real_ip ? real_ip : "");
    x->hdrs = curl_slist_append(x->hdrs, ipl);
    curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(x->h, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(x->h, CURLOPT_FOLLOWLOCATION, 0L);
    rl->resp->headers_len = 0;
    rl->resp->headers[0] = '\0';
    curl_easy_setopt(x->h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(x->h, CURLOPT_HEADERDATA, rl);
    return x;
}

/* The outcome of an ended issue call, as the issue hook returns it (tok: the token on 0). */
static int issue_result(struct op_ws_call *x, char *tok, size_t toklen, struct op_app_response *resp)
{
    int rc;
    if (x->code != CURLE_OK) {
        char why[512];
        op_ws_call_describe(x, why, sizeof(why));
        op_warn("apps", "asking the primary for an app token failed: %s", why);
        resp->headers_len = 0;
        rc = -EHOSTUNREACH;
    } else if (x->status == 201) {
        const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x->json, "signed_token_str"));
        resp->headers_len = 0;
        if (s && strlen(s) < toklen) {
            memcpy(tok, s, strlen(s) + 1);
            rc = 0;
        } else {
            rc = -EPROTO;
        }
    } else {
        char *ct = NULL;
        curl_easy_getinfo(x->h, CURLINFO_CONTENT_TYPE, &ct);
        resp->status = (int)x->status;
        resp->content_type = static_ctype(ct);
        free(resp->body);
        resp->body = x->body;
        resp->body_len = x->len;
        x->body = NULL;
        x->len = 0;
        rc = resp->status > 0 ? resp->status : 502;
    }
    return rc;
}

/* A sign-in in flight on the issuer thread. */
struct signin {
    struct relay rl;
    struct op_region_app_pending *p;
};

/* Issuer thread: the call ended; the region answers the deferred request. */
static void issued(struct op_ws_call *x, void *arg)
{
    struct signin *si = arg;
    char tok[OP_JWS_MAX_TOKEN];
    tok[0] = '\0';
    int rc = issue_result(x, tok, sizeof(tok), si->rl.resp);
    op_region_app_issued(si->p, rc, tok);
    memset(tok, 0, sizeof(tok));
    free(si);
}

static int issue_async(void *ctx, const void *body, const char *real_ip, struct op_region_app_pending *p)
{
    struct ws *w = ctx;
    if (w->primary_down) return -EHOSTUNREACH; /* the last heartbeat could not connect: do not wait 2 s */
    struct signin *si = calloc(1, sizeof(*si));
    if (!si) return -ENOMEM;
    si->p = p;
    si->rl.resp = op_region_app_pending_resp(p);
    struct op_ws_call *x = issue_call(w, body, real_ip, &si->rl);
    int rc = x ? op_wsp_issuer_submit(w, x, issued, si) : -ENOMEM;
    if (rc != 0) {
        if (rc == -EBUSY)
            op_warn("apps", "%d sign-ins are waiting for the primary: refusing more", OP_WSP_MAX_SIGNINS);
        op_ws_call_free(x);
        free(si);
    }
    return rc;
}

static int apikey(void *ctx, int64_t kid, uint8_t key[32])
{
    struct ws *w = ctx;
    cJSON *o = w->keys_json[1] ? cJSON_Parse(w->keys_json[1]) : NULL;
    int rc = -ENOKEY;
    const cJSON *k;
    cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(o, "crypto_keys"))
    {
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(k, "sequence");
        const char *sec = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(k, "secret"));
        if (!cJSON_IsNumber(seq) || (int64_t)seq->valuedouble != kid || !sec || strlen(sec) != 64) continue;
        bool ok = true;
        for (int b = 0; b < 32 && ok; b++) {
            unsigned v;
            ok = sscanf(sec + 2 * b, "%2x", &v) == 1;
            key[b] = (uint8_t)v;
        }
        if (ok) rc = 0;
        break;
    }
    cJSON_Delete(o);
    return rc;
}

static void refetch(void *ctx, void (*done)(void *arg), void *arg)
{
    op_wsp_refetch_keys(ctx, done, arg);
}

void op_wsp_app_handler(void *ctx, const struct op_app_request *req, struct op_app_response *resp)
{
    struct ws *w = ctx;
    struct op_region_app_hooks h = {
        .issue_async = issue_async, .apikey = apikey, .refetch_keys = refetch, .ctx = w};
    if (!op_region_pty_rekey(w->region, &w->app_conf, &h, req, resp) &&
        !op_region_app_handle(w->region, &w->app_conf, &h, req, resp))
        op_app_respond(resp, 404, "{\"message\":\"Not found.\"}");
}
