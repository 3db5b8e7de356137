/*
 * wsproxy/register.c — the proxy's calls to the primary, all on the control thread: build info and the
 * version rule, the registration heartbeat, crypto-key refreshes, deregistration, and the blocking
 * calls of start-up with their actionable error messages.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sysexits.h>
#include <unistd.h>

#include "core/log.h"
#include "ctl/ctl.h"
#include "wsproxy/server_int.h"
#include "wsproxy/wsproxy.h"

/* K_RKEYS_*: the same fetches as K_KEYS_*, asked for by an unknown key id (op_wsp_refetch_keys). */
enum { K_BUILDINFO = 1, K_REGISTER, K_KEYS_SIGN, K_KEYS_ENC, K_RKEYS_SIGN, K_RKEYS_ENC, K_APP_STATS };
#define KEY_FEATURE(kind) (((kind)-K_KEYS_SIGN) & 1)
static const char *const key_features[2] = {"workspace_apps_token", "workspace_apps_api_key"};

/* ---- version rule ------------------------------------------------------------------------------- */

static int major_minor(const char *v, long *maj, long *min)
{
    if (*v == 'v') v++;
    char *e;
    *maj = strtol(v, &e, 10);
    if (e == v || *e != '.') return -1;
    v = e + 1;
    *min = strtol(v, &e, 10);
    return e == v ? -1 : 0;
}

int op_ws_versions_match(const char *a, const char *b)
{
    if (strstr(a, "devel") || strstr(b, "devel") || strstr(a, "-dev") || strstr(b, "-dev")) return 1;
    long am, an, bm, bn;
    if (major_minor(a, &am, &an) || major_minor(b, &bm, &bn)) return 0;
    return am == bm && an == bn;
}
/* ---- control thread: calls to the primary --------------------------------------------------------- */

static char *register_body(const struct ws *w)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "access_url", w->access_url);
    cJSON_AddStringToObject(o, "wildcard_hostname", op_ws_str(&w->conf, OP_WO_WILDCARD_ACCESS_URL));
    /* This build does not serve DERP yet: never advertise it, or clients would be sent to a dead region. */
    cJSON_AddBoolToObject(o, "derp_enabled", false);
    cJSON_AddBoolToObject(o, "derp_only", false);
    cJSON_AddStringToObject(o, "replica_id", w->replica_id);
    cJSON_AddStringToObject(o, "hostname", w->hostname);
    cJSON_AddStringToObject(o, "replica_error", "");
    cJSON_AddStringToObject(o, "replica_relay_address", op_ws_str(&w->conf, OP_WO_DERP_RELAY_URL));
    cJSON_AddStringToObject(o, "version", OP_WS_VERSION);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static struct op_ws_call *new_call(struct ws *w, int kind, long timeout_ms)
{
    switch (kind) {
    case K_BUILDINFO:
        return op_ws_call_new(&w->cl, kind, "GET", "/api/v2/buildinfo", NULL, timeout_ms);
    case K_REGISTER: {
        char *body = register_body(w);
        if (!body) return NULL;
        struct op_ws_call *x =
            op_ws_call_new(&w->cl, kind, "POST", "/api/v2/workspaceproxies/me/register", body, timeout_ms);
        free(body);
        return x;
    }
    case K_APP_STATS: { /* a batch that failed, else the usage the workers counted since (none: no call) */
        uint64_t n = 0;
        char *body = w->stats_retry;
        w->stats_retry = NULL;
        if (!body && w->region) body = op_region_app_stats_take(w->region, &n);
        if (!body) return NULL;
        op_debug("wsproxy", "reporting app stats: %llu requests", (unsigned long long)n);
        struct op_ws_call *x =
            op_ws_call_new(&w->cl, kind, "POST", "/api/v2/workspaceproxies/me/app-stats", body, timeout_ms);
        free(body);
        return x;
    }
    default: {
        char path[160];
        snprintf(path, sizeof(path), "/api/v2/workspaceproxies/me/crypto-keys?feature=%s",
                 key_features[KEY_FEATURE(kind)]);
        return op_ws_call_new(&w->cl, kind, "GET", path, NULL, timeout_ms);
    }
    }
}

/* Result of a buildinfo call: updates bi_error / bi_warning. Returns 0 if usable. */
static int on_buildinfo(struct ws *w, const struct op_ws_call *x)
{
    char why[512];
    w->bi_warning[0] = '\0';
    if (op_ws_call_failure(x) != OP_WS_FAIL_NONE) {
        op_ws_call_describe(x, why, sizeof(why));
        snprintf(w->bi_error, sizeof(w->bi_error), "failed to get build info: %s", why);
        return -1;
    }
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(x->json, "version");
    const cJSON *isp = cJSON_GetObjectItemCaseSensitive(x->json, "workspace_proxy");
    if (!cJSON_IsString(ver)) {
        snprintf(w->bi_error, sizeof(w->bi_error),
                 "failed to get build info: the reply is not build info JSON (is %s a primary?)", w->primary);
        return -1;
    }
    if (cJSON_IsTrue(isp)) {
        snprintf(w->bi_error, sizeof(w->bi_error),
                 "dashboard url (%s) is a workspace proxy, must be a primary coderd", w->primary);
        return -2;
    }
    w->bi_error[0] = '\0';
    snprintf(w->primary_version, sizeof(w->primary_version), "%s", ver->valuestring);
    if (!op_ws_versions_match(ver->valuestring, OP_WS_VERSION))
        snprintf(w->bi_warning, sizeof(w->bi_warning),
                 "version mismatch: primary coderd (%s) != workspace proxy (%s)", ver->valuestring,
                 OP_WS_VERSION);
    return 0;
}

/* The signing keys verify agent credentials and connect tokens in this proxy's region. */
static void region_keys(struct ws *w, const cJSON *arr)
{
    struct op_region_key keys[OP_REGION_MAX_KEYS];
    int n = 0;
    const cJSON *k;
    cJSON_ArrayForEach(k, arr)
    {
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(k, "sequence");
        const cJSON *sec = cJSON_GetObjectItemCaseSensitive(k, "secret");
        if (n == OP_REGION_MAX_KEYS || !cJSON_IsNumber(seq) || !cJSON_IsString(sec) ||
            strlen(sec->valuestring) != 2 * sizeof(keys[0].secret))
            continue;
        bool ok = true;
        for (size_t b = 0; b < sizeof(keys[0].secret); b++) {
            unsigned v;
            ok = ok && sscanf(sec->valuestring + 2 * b, "%2x", &v) == 1;
            keys[n].secret[b] = (uint8_t)v;
        }
        keys[n].kid = (int64_t)seq->valuedouble;
        if (ok) n++;
    }
    if (op_region_set_keys(w->region, w->e, keys, n) != 0)
        op_warn("wsproxy", "the region could not take the new signing keys (out of memory)");
    memset(keys, 0, sizeof(keys));
}

static void on_keys(struct ws *w, const struct op_ws_call *x)
{
    int i = KEY_FEATURE(x->kind);
    if (op_ws_call_failure(x) != OP_WS_FAIL_NONE ||
        !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(x->json, "crypto_keys"))) {
        char why[512];
        op_ws_call_describe(x, why, sizeof(why));
        op_warn("wsproxy", "fetching %s keys from the primary failed: %s", key_features[i], why);
        return;
    }
    free(w->keys_json[i]);
    w->keys_json[i] = strdup(x->body);
    if (i == 0 && w->region) region_keys(w, cJSON_GetObjectItemCaseSensitive(x->json, "crypto_keys"));
    op_debug("wsproxy", "crypto keys for %s refreshed (%d keys)", key_features[i],
             cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(x->json, "crypto_keys")));
}

/* The proxy's own name, which connect tokens for this region carry (the primary adds it to the
 * registration answer as "proxy_name"). Set once, before the engine starts: the region's workers read it. */
static void region_name(struct ws *w, const cJSON *reply)
{
    if (!w->region || w->e) return;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(reply, "proxy_name");
    if (!cJSON_IsString(name) || op_region_set_name(w->region, name->valuestring) != 0) {
        op_warn("wsproxy",
                "the registration answer does not name this proxy: streams through it will be refused");
        return;
    }
    op_info("wsproxy", "serving agent streams as region %s", op_region_name(w->region));
}

static bool is_deleted(const struct op_ws_call *x)
{
    return x->code == CURLE_OK && x->status == 401 && strstr(op_ws_call_detail(x), "deleted") != NULL;
}

void op_wsp_deregister(struct ws *w, long timeout_ms)
{
    if (w->deregistered || !w->registered) return;
    w->deregistered = true;
    char body[80];
    snprintf(body, sizeof(body), "{\"replica_id\":\"%s\"}", w->replica_id);
    struct op_ws_call *x =
        op_ws_call_new(&w->cl, 0, "POST", "/api/v2/workspaceproxies/me/deregister", body, timeout_ms);
    if (!x) return;
    op_ws_call_perform(x);
    if (op_ws_call_failure(x) == OP_WS_FAIL_NONE) {
        op_info("wsproxy", "deregistered replica %s from the primary", w->replica_id);
    } else {
        char why[512];
        op_ws_call_describe(x, why, sizeof(why));
        op_warn("wsproxy", "deregistering failed (%s); the primary will consider the replica gone shortly",
                why);
    }
    op_ws_call_free(x);
}

static void fatal_exit(struct ws *w, const char *why)
{
    if (w->exit_code) return;
    op_error("wsproxy", "%s", why);
    op_wsp_deregister(w, OP_WS_REGISTER_TIMEOUT_MS);
    w->exit_code = 1;
    op_ctl_request_stop();
}

/* Result of a heartbeat registration. */
static void on_register(struct ws *w, const struct op_ws_call *x)
{
    char why[512];
    if (is_deleted(x)) {
        w->registered = true; /* try to deregister anyway */
        fatal_exit(w, "the primary says this workspace proxy has been deleted; exiting");
        return;
    }
    if (op_ws_call_failure(x) != OP_WS_FAIL_NONE || x->status != 201) {
        op_ws_call_describe(x, why, sizeof(why));
        w->reg_failures++;
        w->reg_failures_total++;
        enum op_ws_failure f = op_ws_call_failure(x);
        w->primary_down = f == OP_WS_FAIL_TRANSPORT || f == OP_WS_FAIL_TLS;
        uint64_t retry = op_now_ms() + 1000; /* sign-ins are refused meanwhile: try again soon */
        if (w->primary_down && w->next_heartbeat > retry) w->next_heartbeat = retry;
        snprintf(w->reg_error, sizeof(w->reg_error), "failed to register with the primary: %s", why);
        /* A primary that cannot be reached (down, restarting, behind a failing load balancer: no answer,
         * or 502/503/504) never makes the proxy exit: it keeps serving requests with valid tokens and
         * retries on every heartbeat, logging the 1st to 10th failure and then every 10th. Only a primary
         * that answers and refuses (a rejected token, any other error status) counts towards the exit
         * after more than OP_WS_MAX_FAILURES in a row, as Coder's proxy does for every failure. */
        bool unreachable = op_ws_call_failure(x) != OP_WS_FAIL_STATUS || x->status == 502 ||
                           x->status == 503 || x->status == 504;
        if (unreachable) w->reg_unreachable++;
        if (!unreachable || w->reg_failures <= OP_WS_MAX_FAILURES || w->reg_failures % 10 == 0)
            op_warn("wsproxy", "registration with the primary failed (%d in a row): %s%s", w->reg_failures,
                    why,
                    unreachable && w->reg_failures >= OP_WS_MAX_FAILURES
                        ? "; the primary is unreachable: still serving, retrying on every heartbeat"
                        : "");
        if (!unreachable && w->reg_failures - w->reg_unreachable > OP_WS_MAX_FAILURES) {
            char msg[700];
            snprintf(msg, sizeof(msg), "registration failed more than %d times in a row (last: %s); exiting",
                     OP_WS_MAX_FAILURES, why);
            fatal_exit(w, msg);
        }
        return;
    }
    if (w->reg_failures)
        op_info("wsproxy", "registered with the primary again after %d failures", w->reg_failures);
    w->reg_failures = 0;
    w->reg_unreachable = 0;
    w->primary_down = false;
    w->reg_success_total++;
    w->last_register_ok = op_wsp_wall_now();
    w->registered = true;
    w->reg_error[0] = '\0';
    const cJSON *rid = cJSON_GetObjectItemCaseSensitive(x->json, "derp_region_id");
    if (cJSON_IsNumber(rid)) {
        if (w->have_region && (long)rid->valuedouble != w->region_id)
            fatal_exit(w, "the primary changed this proxy's DERP region id; the proxy must be restarted");
        w->have_region = true;
        w->region_id = (long)rid->valuedouble;
    }
    region_name(w, x->json);
}

static void start_call(struct ws *w, int kind)
{
    struct op_ws_call *x = new_call(w, kind, OP_WS_REGISTER_TIMEOUT_MS);
    if (!x) return;
    int slot = -1;
    for (int i = 0; i < (int)OP_ARRAY_LEN(w->calls) && slot < 0; i++)
        if (!w->calls[i]) slot = i;
    if (slot < 0 || curl_multi_add_handle(w->multi, x->h) != CURLM_OK) {
        op_ws_call_free(x);
        return;
    }
    w->calls[slot] = x;
    if (kind == K_REGISTER)
        w->inflight_reg++;
    else if (kind == K_BUILDINFO)
        w->inflight_bi++;
    else if (kind == K_APP_STATS)
        w->inflight_stats++;
    else if (kind >= K_RKEYS_SIGN)
        w->inflight_rkeys++;
    else
        w->inflight_keys++;
}

static void refetch_done(struct ws *w);

/* ---- key refetches on an unknown key id -------------------------------------------------------------- */

struct op_wsp_key_waiter {
    void (*done)(void *arg);
    void *arg;
    struct op_wsp_key_waiter *next;
};

int op_wsp_refetch_init(struct ws *w)
{
    int rc = pthread_mutex_init(&w->kw_mu, NULL);
    if (rc != 0) return -rc;
    w->kw_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return w->kw_efd < 0 ? -errno : 0;
}

void op_wsp_refetch_keys(struct ws *w, void (*done)(void *arg), void *arg)
{
    struct op_wsp_key_waiter *kw = done ? calloc(1, sizeof(*kw)) : NULL;
    if (kw) {
        kw->done = done;
        kw->arg = arg;
    }
    pthread_mutex_lock(&w->kw_mu);
    if (kw) {
        kw->next = w->kw_want;
        w->kw_want = kw;
    }
    bool first = !w->kw_wanted;
    w->kw_wanted = true;
    pthread_mutex_unlock(&w->kw_mu);
    if (done && !kw) done(arg); /* out of memory: answer with the keys there are */
    uint64_t one = 1;
    if (first && write(w->kw_efd, &one, sizeof(one)) < 0) { /* the tick starts it anyway */
    }
}

static void run_waiters(struct op_wsp_key_waiter *kw)
{
    while (kw) {
        struct op_wsp_key_waiter *nx = kw->next;
        kw->done(kw->arg);
        free(kw);
        kw = nx;
    }
}

/* Starts the refetch asked for, unless one is in flight (the askers join it: the answer it brings is as new
 * as any) or the last one started less than a second ago (the tick starts it then). Control thread. */
static void refetch_start(struct ws *w, uint64_t now)
{
    if (w->inflight_rkeys) {
        pthread_mutex_lock(&w->kw_mu);
        struct op_wsp_key_waiter *kw = w->kw_want;
        w->kw_want = NULL;
        w->kw_wanted = false;
        pthread_mutex_unlock(&w->kw_mu);
        while (kw) {
            struct op_wsp_key_waiter *nx = kw->next;
            kw->next = w->kw_fetching;
            w->kw_fetching = kw;
            kw = nx;
        }
        return;
    }
    if (w->kw_last_ms && now - w->kw_last_ms < 1000) return;
    pthread_mutex_lock(&w->kw_mu);
    bool wanted = w->kw_wanted;
    struct op_wsp_key_waiter *kw = w->kw_want;
    w->kw_want = NULL;
    w->kw_wanted = false;
    pthread_mutex_unlock(&w->kw_mu);
    if (!wanted) return;
    w->kw_last_ms = now;
    w->key_refetches_total++;
    op_info("wsproxy", "a key id is unknown: fetching the crypto keys again (refetch %llu)",
            (unsigned long long)w->key_refetches_total);
    w->kw_fetching = kw;
    start_call(w, K_RKEYS_SIGN);
    start_call(w, K_RKEYS_ENC);
    if (!w->inflight_rkeys) refetch_done(w); /* could not start: answer with the keys there are */
}

static void refetch_done(struct ws *w)
{
    struct op_wsp_key_waiter *kw = w->kw_fetching;
    w->kw_fetching = NULL;
    run_waiters(kw);
}

void op_wsp_refetch_run(void *arg)
{
    struct ws *w = arg;
    uint64_t v;
    if (read(w->kw_efd, &v, sizeof(v)) < 0) { /* spurious wake-up */
    }
    refetch_start(w, op_now_ms());
    int running = 0;
    curl_multi_perform(w->multi, &running); /* sends the request now rather than at the next tick */
}

void op_wsp_refetch_close(struct ws *w)
{
    refetch_done(w);
    pthread_mutex_lock(&w->kw_mu);
    struct op_wsp_key_waiter *kw = w->kw_want;
    w->kw_want = NULL;
    pthread_mutex_unlock(&w->kw_mu);
    run_waiters(kw);
    if (w->kw_efd >= 0) close(w->kw_efd);
    w->kw_efd = -1;
}

void op_wsp_tick(void *arg)
{
    struct ws *w = arg;
    if (w->shutting_down) return;
    uint64_t now = op_now_ms();
    if (now >= w->next_heartbeat) {
        uint64_t every = (uint64_t)op_ws_duration_ms(&w->conf, OP_WO_HEARTBEAT_INTERVAL);
        /* While the primary cannot be reached sign-ins are refused at once: learn soon that it is back. */
        if (w->primary_down && every > 1000) every = 1000;
        w->next_heartbeat = now + every;
        if (!w->inflight_reg) start_call(w, K_REGISTER);
        if (!w->inflight_bi) start_call(w, K_BUILDINFO);
        if (!w->inflight_stats && w->registered) start_call(w, K_APP_STATS); /* every heartbeat */
    }
    if (now >= w->next_keys) {
        w->next_keys = now + OP_WS_KEYS_INTERVAL_MS;
        if (!w->inflight_keys) {
            start_call(w, K_KEYS_SIGN);
            start_call(w, K_KEYS_ENC);
        }
    }
    refetch_start(w, now);
    int running = 0;
    curl_multi_perform(w->multi, &running);
    bool changed = false;
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(w->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        struct op_ws_call *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode res = m->data.result;
        curl_multi_remove_handle(w->multi, x->h);
        for (size_t i = 0; i < OP_ARRAY_LEN(w->calls); i++)
            if (w->calls[i] == x) w->calls[i] = NULL;
        op_ws_call_finish(x, res);
        switch (x->kind) {
        case K_REGISTER:
            w->inflight_reg--;
            on_register(w, x);
            changed = true;
            break;
        case K_BUILDINFO: {
            w->inflight_bi--;
            char before[1200];
            snprintf(before, sizeof(before), "%s", w->bi_error);
            if (on_buildinfo(w, x) == 0 && *before)
                op_info("wsproxy", "the primary's build info is reachable again");
            else if (*w->bi_error && strcmp(before, w->bi_error) != 0)
                op_warn("wsproxy", "%s", w->bi_error);
            changed = true;
            break;
        }
        case K_RKEYS_SIGN:
        case K_RKEYS_ENC:
            w->inflight_rkeys--;
            on_keys(w, x);
            if (!w->inflight_rkeys) refetch_done(w);
            break;
        case K_APP_STATS:
            w->inflight_stats--;
            if (op_ws_call_failure(x) != OP_WS_FAIL_NONE || x->status != 204) {
                char why[512];
                op_ws_call_describe(x, why, sizeof(why));
                /* Retried at the next heartbeat, as the reference does; the workers' tables keep counting
                 * meanwhile. A 400 would fail again: dropped. */
                bool retry = x->status != 400 && x->post && !w->stats_retry;
                op_warn("wsproxy", "app stats report failed (%s): %s", retry ? "retried later" : "dropped",
                        why);
                if (retry) w->stats_retry = strdup(x->post);
            }
            break;
        default:
            w->inflight_keys--;
            on_keys(w, x);
        }
        op_ws_call_free(x);
        if (w->exit_code) break;
    }
    if (changed && !w->shutting_down) op_wsp_publish(w);
}

void op_wsp_on_stop(void *arg)
{
    struct ws *w = arg;
    w->shutting_down = true;
    op_wsp_publish(w); /* /healthz-report answers 500 from now on */
    op_info("wsproxy", "shutting down: deregistering from the primary");
    op_wsp_deregister(w, 5000);
}

/* A blocking call at start-up that failed to connect: an actionable message. */
static void explain_transport(const struct ws *w, const struct op_ws_call *x, const char *what)
{
    char why[512];
    op_ws_call_describe(x, why, sizeof(why));
    if (op_ws_call_failure(x) == OP_WS_FAIL_TLS)
        op_error("wsproxy",
                 "%s: TLS connection to the primary at %s failed: %s. If the primary uses a private CA, pass "
                 "it with "
                 "--tls-client-ca-file (CODER_TLS_CLIENT_CA_FILE).",
                 what, w->primary, why);
    else
        op_error("wsproxy",
                 "%s: cannot reach the primary at %s: %s. Check --primary-access-url "
                 "(CODER_PRIMARY_ACCESS_URL) and "
                 "that the primary is running and reachable from this host.",
                 what, w->primary, why);
}

int op_wsp_startup(struct ws *w)
{
    struct op_ws_call *x = new_call(w, K_BUILDINFO, OP_WS_REGISTER_TIMEOUT_MS);
    if (!x) return EX_OSERR;
    op_ws_call_perform(x);
    if (op_ws_call_failure(x) == OP_WS_FAIL_TRANSPORT || op_ws_call_failure(x) == OP_WS_FAIL_TLS) {
        explain_transport(w, x, "unable to fetch build info from the primary");
        op_ws_call_free(x);
        return EX_UNAVAILABLE;
    }
    int r = on_buildinfo(w, x);
    op_ws_call_free(x);
    if (r == -2) {
        op_error("wsproxy",
                 "%s is a workspace proxy, not a primary: point --primary-access-url at the primary",
                 w->primary);
        return EX_CONFIG;
    }
    if (r != 0) {
        op_error(
            "wsproxy",
            "unable to fetch build info from the primary. Are you sure \"%s\" is an outpost primary? (%s)",
            w->primary, w->bi_error);
        return EX_UNAVAILABLE;
    }
    if (*w->bi_warning) op_warn("wsproxy", "%s", w->bi_warning);
    for (int k = K_KEYS_SIGN; k <= K_KEYS_ENC; k++) {
        x = new_call(w, k, OP_WS_REGISTER_TIMEOUT_MS);
        if (!x) return EX_OSERR;
        op_ws_call_perform(x);
        if (x->code == CURLE_OK && x->status == 401) {
            char why[512];
            op_ws_call_describe(x, why, sizeof(why));
            op_error(
                "wsproxy",
                "the proxy session token was refused by the primary (%s). Check --proxy-session-token "
                "(CODER_PROXY_SESSION_TOKEN); `outpost wsproxy regenerate-token <name>` issues a new one.",
                why);
            op_ws_call_free(x);
            return EX_CONFIG;
        }
        on_keys(w, x); /* a key fetch failure is logged, not fatal (docs/coder-compat.md, "Heartbeat") */
        op_ws_call_free(x);
    }
    x = new_call(w, K_REGISTER, OP_WS_REGISTER_TIMEOUT_MS);
    if (!x) return EX_OSERR;
    op_ws_call_perform(x);
    enum op_ws_failure f = op_ws_call_failure(x);
    int rc = 0;
    char why[512];
    op_ws_call_describe(x, why, sizeof(why));
    if (f == OP_WS_FAIL_TRANSPORT || f == OP_WS_FAIL_TLS) {
        explain_transport(w, x, "register proxy: initial registration");
        rc = EX_UNAVAILABLE;
    } else if (x->status == 401) {
        op_error("wsproxy",
                 "the proxy session token was refused by the primary (%s). Check --proxy-session-token "
                 "(CODER_PROXY_SESSION_TOKEN); `outpost wsproxy regenerate-token <name>` issues a new one.",
                 why);
        rc = EX_CONFIG;
    } else if (f != OP_WS_FAIL_NONE || x->status != 201) {
        op_error("wsproxy", "register proxy: initial registration: the primary refused it (%s)", why);
        rc = x->status == 400 ? EX_CONFIG : EX_UNAVAILABLE;
    } else {
        on_register(w, x);
        op_info("wsproxy", "registered with the primary %s as replica %s (access URL %s)", w->primary,
                w->replica_id, w->access_url);
    }
    op_ws_call_free(x);
    return rc;
}
