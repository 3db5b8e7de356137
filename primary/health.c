/*
 * primary/health.c — the proxy health checker (docs/coder-compat.md, "Health checks"). The control thread
 * owns the results and the round schedule (op_health_tick, from op_primary_tick); the probes run on a
 * thread of their own with libcurl's multi interface, so the API requests the control thread serves —
 * a burst of them can hold it for seconds on a loaded machine — never stretch a probe past its timeout.
 * At most OP_HEALTH_PARALLEL probes are in flight, each has a 5 s timeout. A round probes every
 * non-deleted proxy's `<url>/healthz-report`; rounds start every health interval, or at the next tick
 * after op_primary_force_health. Results live in memory only.
 *
 * Round state machine (control thread): IDLE --(interval elapsed | forced)--> RUNNING (the targets are
 * handed to the probe thread) --(the probe thread reported the round done and its results are applied)-->
 * IDLE. A force during RUNNING is remembered and starts the next round right after. The two threads share
 * only the hand-off (targets in, results out) under one mutex.
 *
 * A probe whose request fails (connect, TLS, timeout) is tried once more in the same round before the proxy
 * becomes unreachable: one lost probe must not take a healthy proxy out of every agent's manifest. A dead
 * proxy refuses the connection at once, twice, so its detection time does not change; a hung one is found
 * after two timeouts.
 *
 * Replicas: a proxy with two or more live replicas (op_proxy_live_replicas) is probed once per replica, at
 * the replica's relay URL, and once at its access URL; the verdicts are kept until the round ends and then
 * combined (health_replicas.c). A proxy with one live replica is probed at that replica's URL; with none,
 * at its access URL.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "primary/health_int.h"
#include "primary/primary_int.h"
#include "util/body.h"

#define OP_HEALTH_PARALLEL 5
#define PROBE_TIMEOUT_MS   5000L
#define PROBE_MAX_BODY     (1u << 20)

struct entry {
    char id[OP_UUID_STR_LEN + 1];
    enum op_health_status status;
    cJSON *errors, *warnings; /* arrays of strings, owned */
    cJSON *replicas;          /* per-replica reports of a proxy probed per replica; NULL otherwise */
    int64_t checked_at;       /* wall ms, 0 = never */
};

struct target {
    char id[OP_UUID_STR_LEN + 1];
    char replica[OP_UUID_STR_LEN + 1]; /* "" = the proxy as a whole */
    char url[512];
    char bare[OP_UUID_STR_LEN + 1]; /* a replica without a relay URL among several (a warning), or "" */
    int order;                      /* the replica's place among the proxy's live replicas, oldest first */
    bool access;                    /* the access URL of a proxy probed per replica */
    bool retry;                     /* the second try after a failed request */
};

struct probe {
    CURL *easy;
    struct target t;
    char req_url[600];
    char *body;
    size_t len;
    bool truncated;
    bool coder_header;
    char errbuf[CURL_ERROR_SIZE];
};

/* The probe thread's side: the round it works on and its transfers. */
struct prober {
    CURLM *multi;
    struct target *queue; /* the round's targets, then the retries appended */
    size_t qn, qpos, qcap;
    struct probe *active[OP_HEALTH_PARALLEL];
    int nactive;
};

struct op_health {
    /* control thread only */
    struct entry *entries;
    size_t n, cap;
    bool running, forced;
    uint64_t next_round_ms; /* monotonic */
    /* the hand-off, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct target *in; /* the next round's targets (NULL: none pending); ownership passes to the prober */
    size_t in_n;
    bool round_done; /* the prober finished the round it took */
    struct op_health_result *out;
    size_t out_n, out_cap;
    bool quit;
    /* control thread: per-replica verdicts of the running round, combined when it ends */
    struct op_health_result *agg;
    size_t agg_n, agg_cap;
    /* probe thread only */
    struct prober pb;
    pthread_t thread;
    bool thread_started;
};

const char *op_health_status_name(enum op_health_status s)
{
    switch (s) {
    case OP_HEALTH_UNREGISTERED:
        return "unregistered";
    case OP_HEALTH_OK:
        return "ok";
    case OP_HEALTH_UNHEALTHY:
        return "unhealthy";
    case OP_HEALTH_UNREACHABLE:
        return "unreachable";
    case OP_HEALTH_UNKNOWN:
    default:
        return "unknown";
    }
}

static void *prober_main(void *arg);

int op_health_init(struct op_primary *p)
{
    struct op_health *h = calloc(1, sizeof(*h));
    if (!h) return -ENOMEM;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(h->pb.multi = curl_multi_init())) {
        free(h);
        return -ENOMEM;
    }
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    /* The prober takes no signals: the primary may open before the control loop blocks them, and a
     * SIGTERM delivered to this thread would kill the process instead of starting the drain. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&h->thread, NULL, prober_main, h);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        curl_multi_cleanup(h->pb.multi);
        pthread_cond_destroy(&h->cv);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return -rc;
    }
    h->thread_started = true;
    p->health = h;
    return 0;
}

static void probe_free(struct prober *pb, struct probe *pr)
{
    if (pr->easy) {
        curl_multi_remove_handle(pb->multi, pr->easy);
        curl_easy_cleanup(pr->easy);
    }
    free(pr->body);
    free(pr);
}

static void results_free(struct op_health_result *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cJSON_Delete(r[i].errors);
        cJSON_Delete(r[i].warnings);
    }
}

void op_health_free(struct op_primary *p)
{
    struct op_health *h = p->health;
    if (!h) return;
    if (h->thread_started) {
        pthread_mutex_lock(&h->mu);
        h->quit = true;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
        curl_multi_wakeup(h->pb.multi);
        pthread_join(h->thread, NULL);
    }
    for (int i = 0; i < h->pb.nactive; i++)
        probe_free(&h->pb, h->pb.active[i]);
    free(h->pb.queue);
    curl_multi_cleanup(h->pb.multi);
    free(h->in);
    results_free(h->out, h->out_n);
    free(h->out);
    results_free(h->agg, h->agg_n);
    free(h->agg);
    for (size_t i = 0; i < h->n; i++) {
        cJSON_Delete(h->entries[i].errors);
        cJSON_Delete(h->entries[i].warnings);
        cJSON_Delete(h->entries[i].replicas);
    }
    free(h->entries);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h);
    p->health = NULL;
}

static struct entry *find(const struct op_health *h, const char *id)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->entries[i].id, id) == 0) return &h->entries[i];
    return NULL;
}

static struct entry *get_or_add(struct op_health *h, const char *id)
{
    struct entry *e = find(h, id);
    if (e) return e;
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 16;
        struct entry *ne = realloc(h->entries, nc * sizeof(*ne));
        if (!ne) return NULL;
        h->entries = ne;
        h->cap = nc;
    }
    e = &h->entries[h->n++];
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s", id);
    return e;
}

/* Records a result; errors/warnings/replicas are consumed (NULL = empty, no per-replica reports). */
static void set_result(struct op_health *h, const char *id, enum op_health_status st, cJSON *errors,
                       cJSON *warnings, cJSON *replicas)
{
    struct entry *e = get_or_add(h, id);
    if (!e) {
        cJSON_Delete(errors);
        cJSON_Delete(warnings);
        cJSON_Delete(replicas);
        return;
    }
    if (e->status != st) {
        const cJSON *why = st == OP_HEALTH_OK ? NULL : cJSON_GetArrayItem(errors, 0);
        op_info("health", "proxy %s is now %s%s%s", id, op_health_status_name(st),
                cJSON_IsString(why) ? ": " : "", cJSON_IsString(why) ? why->valuestring : "");
    }
    cJSON_Delete(e->errors);
    cJSON_Delete(e->warnings);
    cJSON_Delete(e->replicas);
    e->replicas = replicas;
    e->status = st;
    e->errors = errors ? errors : cJSON_CreateArray();
    e->warnings = warnings ? warnings : cJSON_CreateArray();
    e->checked_at = op_wall_ms();
}

static cJSON *one_error(const char *msg)
{
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateString(msg));
    return a;
}

enum op_health_status op_health_get(const struct op_primary *p, const char *id)
{
    const struct entry *e = p->health ? find(p->health, id) : NULL;
    return e ? e->status : OP_HEALTH_UNKNOWN;
}

enum op_health_status op_health_status_json(struct op_primary *p, const char *id, const char *url, cJSON *obj)
{
    const struct entry *e = p->health ? find(p->health, id) : NULL;
    enum op_health_status st = !*url ? OP_HEALTH_UNREGISTERED : e ? e->status : OP_HEALTH_UNKNOWN;
    cJSON *s = cJSON_AddObjectToObject(obj, "status");
    cJSON_AddStringToObject(s, "status", op_health_status_name(st));
    cJSON *rep = cJSON_AddObjectToObject(s, "report");
    bool use = e && e->status == st && st != OP_HEALTH_UNREGISTERED;
    cJSON_AddItemToObject(rep, "errors",
                          use && e->errors ? cJSON_Duplicate(e->errors, 1) : cJSON_CreateArray());
    cJSON_AddItemToObject(rep, "warnings",
                          use && e->warnings ? cJSON_Duplicate(e->warnings, 1) : cJSON_CreateArray());
    if (use && e->replicas) cJSON_AddItemToObject(rep, "replicas", cJSON_Duplicate(e->replicas, 1));
    char t[32];
    int64_t at = e && e->checked_at ? e->checked_at : (st == OP_HEALTH_UNREGISTERED ? op_wall_ms() : -1);
    op_format_time(at, t);
    cJSON_AddStringToObject(s, "checked_at", t);
    return st;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct probe *pr = arg;
    size_t n = size * nmemb;
    int rc = op_body_append(&pr->body, &pr->len, PROBE_MAX_BODY, data, n);
    if (rc == -EFBIG) pr->truncated = true; /* keep reading, drop the excess: the decode will fail */
    return rc == 0 || rc == -EFBIG ? n : 0;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    struct probe *pr = arg;
    size_t n = size * nmemb;
    static const char hv[] = "X-Coder-Build-Version:";
    if (n >= sizeof(hv) - 1 && strncasecmp(data, hv, sizeof(hv) - 1) == 0) pr->coder_header = true;
    return n;
}

static bool url_parses(const char *u)
{
    const char *rest = strncmp(u, "http://", 7) == 0 ? u + 7 : strncmp(u, "https://", 8) == 0 ? u + 8 : NULL;
    return rest && *rest && *rest != '/' && !strpbrk(u, " \t\r\n");
}

/* Probe thread: hands a verdict to the control thread (errors/warnings are consumed). */
static void post(struct op_health *h, const struct target *t, enum op_health_status st, cJSON *errors,
                 cJSON *warnings)
{
    pthread_mutex_lock(&h->mu);
    if (h->out_n == h->out_cap) {
        size_t nc = h->out_cap ? h->out_cap * 2 : 16;
        struct op_health_result *no = realloc(h->out, nc * sizeof(*no));
        if (!no) {
            pthread_mutex_unlock(&h->mu);
            cJSON_Delete(errors);
            cJSON_Delete(warnings);
            return;
        }
        h->out = no;
        h->out_cap = nc;
    }
    struct op_health_result *r = &h->out[h->out_n++];
    snprintf(r->id, sizeof(r->id), "%s", t->id);
    snprintf(r->replica, sizeof(r->replica), "%s", t->replica);
    snprintf(r->url, sizeof(r->url), "%s", t->url);
    snprintf(r->bare, sizeof(r->bare), "%s", t->bare);
    r->order = t->order;
    r->access = t->access;
    r->status = st;
    r->errors = errors;
    r->warnings = warnings;
    pthread_mutex_unlock(&h->mu);
}

static void start_probe(struct op_health *h, const struct target *t)
{
    struct prober *pb = &h->pb;
    if (!url_parses(t->url)) {
        char msg[700];
        snprintf(msg, sizeof(msg),
                 "failed to parse proxy url \"%s\": scheme must be http or https with a host", t->url);
        post(h, t, OP_HEALTH_UNHEALTHY, one_error(msg), NULL);
        return;
    }
    struct probe *pr = calloc(1, sizeof(*pr));
    if (!pr) return;
    pr->t = *t;
    size_t ul = strlen(t->url);
    while (ul > 0 && t->url[ul - 1] == '/')
        ul--;
    snprintf(pr->req_url, sizeof(pr->req_url), "%.*s/healthz-report", (int)ul, t->url);
    pr->easy = curl_easy_init();
    if (!pr->easy) {
        free(pr);
        return;
    }
    CURL *e = pr->easy;
    curl_easy_setopt(e, CURLOPT_URL, pr->req_url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, PROBE_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, pr);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, pr);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, pr->errbuf);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "outpost-primary/" OP_VERSION);
    const char *ca = getenv("CURL_CA_BUNDLE"); /* proxies behind a private CA */
    if (!ca || !*ca) ca = getenv("SSL_CERT_FILE");
    if (ca && *ca) curl_easy_setopt(e, CURLOPT_CAINFO, ca);
    curl_easy_setopt(e, CURLOPT_PRIVATE, pr);
    if (curl_multi_add_handle(pb->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        free(pr);
        return;
    }
    pb->active[pb->nactive++] = pr;
}

static bool is_json_mime(const char *ct)
{
    if (!ct) return false;
    size_t n = strcspn(ct, ";");
    while (n > 0 && ct[n - 1] == ' ')
        n--;
    return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

/* Queues the second try of a probe whose request failed. Returns true if it was queued. */
static bool queue_retry(struct prober *pb, const struct target *t)
{
    if (t->retry) return false;
    if (pb->qn == pb->qcap) {
        size_t nc = pb->qcap ? pb->qcap * 2 : 16;
        struct target *nq = realloc(pb->queue, nc * sizeof(*nq));
        if (!nq) return false;
        pb->queue = nq;
        pb->qcap = nc;
    }
    pb->queue[pb->qn] = *t;
    pb->queue[pb->qn++].retry = true;
    return true;
}

/* Turns a finished transfer into a status, following Coder's rules (docs/coder-compat.md, "Health checks").
 */
static void finish_probe(struct op_health *h, struct probe *pr, CURLcode res)
{
    char msg[4096];
    long code = 0;
    curl_easy_getinfo(pr->easy, CURLINFO_RESPONSE_CODE, &code);
    if (res != CURLE_OK) {
        if (queue_retry(&h->pb, &pr->t)) {
            op_debug("health", "probe of proxy %s failed (%s); trying once more", pr->t.id,
                     pr->errbuf[0] ? pr->errbuf : curl_easy_strerror(res));
            return;
        }
        snprintf(msg, sizeof(msg), "request to proxy failed: Get \"%s\": %s", pr->req_url,
                 pr->errbuf[0] ? pr->errbuf : curl_easy_strerror(res));
        post(h, &pr->t, OP_HEALTH_UNREACHABLE, one_error(msg), NULL);
        return;
    }
    cJSON *doc = pr->body && !pr->truncated ? cJSON_ParseWithLength(pr->body, pr->len) : NULL;
    if (code != 200) {
        int n = snprintf(
            msg, sizeof(msg),
            "unexpected status code %ld. \nEncountered error, send a request to \"%s\" from the Coderd "
            "environment to debug this issue.",
            code, pr->req_url);
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "message");
        if (cJSON_IsString(m) && n > 0 && (size_t)n < sizeof(msg)) {
            const cJSON *d = cJSON_GetObjectItemCaseSensitive(doc, "detail");
            n += snprintf(msg + n, sizeof(msg) - (size_t)n, "\nError Message: %s\nError Detail: %s",
                          m->valuestring, cJSON_IsString(d) ? d->valuestring : "");
            const cJSON *v;
            cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(doc, "validations"))
            {
                const cJSON *f = cJSON_GetObjectItemCaseSensitive(v, "field");
                const cJSON *dd = cJSON_GetObjectItemCaseSensitive(v, "detail");
                if (n > 0 && (size_t)n < sizeof(msg))
                    n += snprintf(msg + n, sizeof(msg) - (size_t)n, "\n\tValidation: %s=%s",
                                  cJSON_IsString(f) ? f->valuestring : "",
                                  cJSON_IsString(dd) ? dd->valuestring : "");
            }
        }
        cJSON_Delete(doc);
        post(h, &pr->t, OP_HEALTH_UNHEALTHY, one_error(msg), NULL);
        return;
    }
    /* 200: the body must decode as {"errors":[string],"warnings":[string]}. */
    const cJSON *errs = cJSON_GetObjectItemCaseSensitive(doc, "errors");
    const cJSON *warns = cJSON_GetObjectItemCaseSensitive(doc, "warnings");
    bool shape_ok = cJSON_IsObject(doc) && (!errs || cJSON_IsNull(errs) || cJSON_IsArray(errs)) &&
                    (!warns || cJSON_IsNull(warns) || cJSON_IsArray(warns));
    const cJSON *it, *ea = cJSON_IsArray(errs) ? errs : NULL, *wa = cJSON_IsArray(warns) ? warns : NULL;
    cJSON_ArrayForEach(it, ea) shape_ok = shape_ok && cJSON_IsString(it);
    cJSON_ArrayForEach(it, wa) shape_ok = shape_ok && cJSON_IsString(it);
    if (!shape_ok) {
        char who[1024];
        if (pr->coder_header)
            snprintf(who, sizeof(who),
                     "proxy url \"%s\" is a coder instance, but unable to decode the response payload. Could "
                     "this be "
                     "a primary coderd and not a proxy?",
                     pr->req_url);
        else
            snprintf(who, sizeof(who),
                     "proxy url \"%s\" is not a coder proxy instance, verify the url is correct",
                     pr->req_url);
        char *ct = NULL;
        curl_easy_getinfo(pr->easy, CURLINFO_CONTENT_TYPE, &ct);
        if (!is_json_mime(ct))
            snprintf(
                msg, sizeof(msg),
                "%s\nattempted to query health at \"%s\" but got back the incorrect content type: unexpected "
                "non-JSON response \"%s\"",
                who, pr->req_url, ct ? ct : "");
        else
            snprintf(msg, sizeof(msg),
                     "%s\nreceived a status code 200, but failed to decode health report body: %s", who,
                     doc ? "the body is not a health report object" : "invalid JSON");
        cJSON_Delete(doc);
        post(h, &pr->t, OP_HEALTH_UNHEALTHY, one_error(msg), NULL);
        return;
    }
    cJSON *e2 = cJSON_IsArray(errs) ? cJSON_Duplicate(errs, 1) : cJSON_CreateArray();
    cJSON *w2 = cJSON_IsArray(warns) ? cJSON_Duplicate(warns, 1) : cJSON_CreateArray();
    enum op_health_status st = cJSON_GetArraySize(e2) > 0 ? OP_HEALTH_UNHEALTHY : OP_HEALTH_OK;
    cJSON_Delete(doc);
    post(h, &pr->t, st, e2, w2);
}

/* Control thread: loads the round's targets and hands them to the probe thread. Proxies without a URL become
 * unregistered at once; deleted ones are forgotten. */
static int start_round(struct op_primary *p)
{
    struct op_health *h = p->health;
    struct op_db_stmt *st = op_store_prepare(p, "SELECT id, url FROM workspace_proxies WHERE deleted = 0");
    if (!st) return -EIO;
    size_t old_n = h->n, qn = 0, qcap = 0;
    struct target *q = NULL;
    bool *keep = calloc(old_n + 1, sizeof(bool));
    if (!keep) {
        op_db_finalize(st);
        return -ENOMEM;
    }
    while (op_db_step(st) == OP_DB_ROW) {
        const char *id = op_db_col_text(st, 0), *url = op_db_col_text(st, 1);
        for (size_t i = 0; i < old_n; i++)
            if (strcmp(h->entries[i].id, id) == 0) keep[i] = true;
        if (!*url) {
            if (op_health_get(p, id) != OP_HEALTH_UNREGISTERED)
                set_result(h, id, OP_HEALTH_UNREGISTERED, NULL, NULL, NULL);
            continue;
        }
        struct op_replica_ref reps[OP_REPLICAS_MAX];
        char bare[OP_UUID_STR_LEN + 1];
        int nr = op_proxy_live_replicas(p, id, url, reps, OP_REPLICAS_MAX, bare);
        for (int i = 0; i < (nr > 1 ? nr + 1 : 1); i++) { /* several: each replica, then the access URL */
            if (qn == qcap) {
                size_t nc = qcap ? qcap * 2 : 16;
                struct target *nq = realloc(q, nc * sizeof(*nq));
                if (!nq) break;
                q = nq;
                qcap = nc;
            }
            struct target *t = &q[qn++];
            memset(t, 0, sizeof(*t));
            snprintf(t->id, sizeof(t->id), "%s", id);
            t->access = nr > 1 && i == nr;
            if (nr > 1 && !t->access) snprintf(t->replica, sizeof(t->replica), "%s", reps[i].id);
            snprintf(t->url, sizeof(t->url), "%s", nr > 0 && !t->access ? reps[i].url : url);
            snprintf(t->bare, sizeof(t->bare), "%s", bare);
            t->order = i;
        }
    }
    op_db_finalize(st);
    /* Forget deleted proxies; entries added during the scan (index >= old_n) are new and kept. */
    size_t w = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (i >= old_n || keep[i]) {
            h->entries[w++] = h->entries[i];
        } else {
            cJSON_Delete(h->entries[i].errors);
            cJSON_Delete(h->entries[i].warnings);
            cJSON_Delete(h->entries[i].replicas);
        }
    }
    h->n = w;
    free(keep);
    if (qn == 0) { /* nothing to probe: the round is over */
        free(q);
        h->next_round_ms = op_now_ms() + p->health_interval_ms;
        return 0;
    }
    pthread_mutex_lock(&h->mu);
    free(h->in);
    h->in = q;
    h->in_n = qn;
    h->round_done = false;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    h->running = true;
    return 0;
}

/* health_replicas.c's callback: records a combined verdict. */
static void set_combined(void *ctx, const char *id, enum op_health_status st, cJSON *errors, cJSON *warnings,
                         cJSON *replicas)
{
    set_result(ctx, id, st, errors, warnings, replicas);
}

/* Control thread: keeps a per-replica verdict for the end of the round (consumes r's arrays). */
static void keep_replica_result(struct op_health *h, struct op_health_result *r)
{
    if (h->agg_n == h->agg_cap) {
        size_t nc = h->agg_cap ? h->agg_cap * 2 : 16;
        struct op_health_result *na = realloc(h->agg, nc * sizeof(*na));
        if (!na) {
            results_free(r, 1);
            return;
        }
        h->agg = na;
        h->agg_cap = nc;
    }
    h->agg[h->agg_n++] = *r;
}

/* Control thread: applies the verdicts that arrived; ends the round once the prober reported it done. */
/* The replica holding the lease: stores the round's verdicts for the other replicas (one transaction;
 * a failure is logged and the next round tries again). */
static void save_verdicts(struct op_primary *p)
{
    struct op_health *h = p->health;
    if (op_store_begin(p)) return;
    int rc = 0;
    for (size_t i = 0; i < h->n && !rc; i++) {
        const struct entry *e = &h->entries[i];
        struct op_db_stmt *st = op_store_prepare(
            p, "INSERT INTO proxy_health (proxy_id, status, errors, warnings, replicas, checked_at) VALUES "
               "(?, ?,"
               " ?, ?, ?, ?) ON CONFLICT (proxy_id) DO UPDATE SET status = excluded.status, errors ="
               " excluded.errors, warnings = excluded.warnings, replicas = excluded.replicas, checked_at ="
               " excluded.checked_at");
        char *ej = cJSON_PrintUnformatted(e->errors), *wj = cJSON_PrintUnformatted(e->warnings);
        char *rj = e->replicas ? cJSON_PrintUnformatted(e->replicas) : NULL;
        rc = st && ej && wj ? 0 : -EIO;
        if (!rc) {
            op_db_bind_text(st, 1, e->id);
            op_db_bind_int64(st, 2, e->status);
            op_db_bind_text(st, 3, ej);
            op_db_bind_text(st, 4, wj);
            op_db_bind_text(st, 5, rj ? rj : "");
            op_db_bind_int64(st, 6, e->checked_at);
            rc = op_db_step(st) == OP_DB_DONE ? 0 : -EIO;
        }
        op_db_finalize(st);
        free(ej);
        free(wj);
        free(rj);
    }
    if (rc || op_store_commit(p)) {
        op_warn("health", "cannot store the proxies' health for the other replicas: %s", op_db_errmsg(p->db));
        op_store_rollback(p);
    }
}

static void collect(struct op_primary *p)
{
    struct op_health *h = p->health;
    pthread_mutex_lock(&h->mu);
    struct op_health_result *r = h->out;
    size_t n = h->out_n;
    bool done = h->round_done;
    h->out = NULL;
    h->out_n = h->out_cap = 0;
    if (done) h->round_done = false;
    pthread_mutex_unlock(&h->mu);
    for (size_t i = 0; i < n; i++) {
        if (r[i].replica[0] || r[i].access)
            keep_replica_result(h, &r[i]);
        else {
            if (r[i].bare[0] && !r[i].warnings) r[i].warnings = cJSON_CreateArray();
            op_health_warn_bare(r[i].warnings, r[i].bare);
            set_result(h, r[i].id, r[i].status, r[i].errors, r[i].warnings, NULL);
        }
    }
    free(r);
    if (done) {
        op_health_combine(h->agg, h->agg_n, set_combined, h);
        h->agg_n = 0;
        h->running = false;
        if (p->lease_held && p->replicated) save_verdicts(p);
        h->next_round_ms = op_now_ms() + p->health_interval_ms;
    }
}

/* A replica without the lease: takes the verdicts the lease holder stored. */
void op_health_load(struct op_primary *p)
{
    struct op_health *h = p->health;
    struct op_db_stmt *st = op_store_prepare(
        p, "SELECT proxy_id, status, errors, warnings, replicas, checked_at FROM proxy_health");
    while (st && op_db_step(st) == OP_DB_ROW) {
        int s = (int)op_db_col_int64(st, 1);
        if (s < OP_HEALTH_UNKNOWN || s > OP_HEALTH_UNREACHABLE) continue;
        const char *rj = op_db_col_text(st, 4);
        set_result(h, op_db_col_text(st, 0), (enum op_health_status)s, cJSON_Parse(op_db_col_text(st, 2)),
                   cJSON_Parse(op_db_col_text(st, 3)), *rj ? cJSON_Parse(rj) : NULL);
        struct entry *e = find(h, op_db_col_text(st, 0));
        if (e) e->checked_at = op_db_col_int64(st, 5);
    }
    op_db_finalize(st);
}

void op_health_tick(struct op_primary *p)
{
    struct op_health *h = p->health;
    if (!h) return;
    if (!p->lease_held) {
        /* Another replica probes; this one serves what it found, refreshed twice an interval. */
        if (!h->running && op_now_ms() >= h->next_round_ms) {
            op_health_load(p);
            h->next_round_ms = op_now_ms() + OP_MAX(p->health_interval_ms / 2, 250);
        }
        if (!h->running) return;
    }
    if (h->running) collect(p);
    if (!h->running && (h->forced || op_now_ms() >= h->next_round_ms)) {
        h->forced = false;
        if (start_round(p) != 0) h->next_round_ms = op_now_ms() + 1000;
    }
}

/* Probe thread: runs one round (the retries it queues included) to the end, or until quit. */
static void run_round(struct op_health *h)
{
    struct prober *pb = &h->pb;
    for (;;) {
        while (pb->nactive < OP_HEALTH_PARALLEL && pb->qpos < pb->qn)
            start_probe(h, &pb->queue[pb->qpos++]);
        if (pb->nactive == 0 && pb->qpos >= pb->qn) return;
        int still = 0;
        curl_multi_perform(pb->multi, &still);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(pb->multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE) continue;
            struct probe *pr = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&pr);
            CURLcode res = m->data.result;
            for (int i = 0; i < pb->nactive; i++) {
                if (pb->active[i] == pr) {
                    pb->active[i] = pb->active[--pb->nactive];
                    break;
                }
            }
            if (pr) {
                finish_probe(h, pr, res);
                probe_free(pb, pr);
            }
        }
        if (pb->nactive == 0 && pb->qpos >= pb->qn) return;
        if (pb->nactive) curl_multi_poll(pb->multi, NULL, 0, 1000, NULL);
        pthread_mutex_lock(&h->mu);
        bool quit = h->quit;
        pthread_mutex_unlock(&h->mu);
        if (quit) return;
    }
}

static void *prober_main(void *arg)
{
    struct op_health *h = arg;
    struct prober *pb = &h->pb;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (!h->quit && !h->in)
            pthread_cond_wait(&h->cv, &h->mu);
        if (h->quit) break;
        free(pb->queue);
        pb->queue = h->in;
        pb->qn = pb->qcap = h->in_n;
        pb->qpos = 0;
        h->in = NULL;
        h->in_n = 0;
        pthread_mutex_unlock(&h->mu);
        run_round(h);
        pthread_mutex_lock(&h->mu);
        h->round_done = true;
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

void op_primary_force_health(struct op_primary *p)
{
    if (p->health) p->health->forced = true;
}

bool op_primary_health_busy(const struct op_primary *p)
{
    return p->health && (p->health->running || p->health->forced);
}
