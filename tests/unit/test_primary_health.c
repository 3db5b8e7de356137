/*
 * The proxy health checker against real HTTP servers on loopback (one Python process, one server per
 * behaviour): a healthy proxy (with a warning), one reporting errors, one answering 500 with a Coder
 * error body, one answering HTML, a primary look-alike, one that is down, one that hangs past the 5 s
 * timeout (twice: a failed request is tried once more), one that drops the first probe without a reply
 * and answers the second (stays ok), and one that turns unhealthy later (proves the interval re-probe).
 * Two more primaries: one shows the cap of 5 probes in flight, one that a control thread stalled past
 * the probe timeout does not fail proxies that answer in 1.5 s. A fourth has proxies with several replicas.
 * op_primary_tick is driven until every status settles, within a bounded time; each tick must return quickly
 * (never blocks).
 */
#include <ftw.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "primary/primary_int.h"
#include "tests/unit/primary_test_util.h"

static const char server_py[] =
    "import http.server, json, socketserver, sys, threading, time\n"
    "hits = {'flip': 0, 'blip': 0}\n"
    "active = [0, 0]\n"
    "lock = threading.Lock()\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def log_message(self, *a): pass\n"
    "    def send(self, code, ctype, body, extra=None):\n"
    "        b = body.encode()\n"
    "        self.send_response(code)\n"
    "        self.send_header('Content-Type', ctype)\n"
    "        self.send_header('Content-Length', str(len(b)))\n"
    "        for k, v in (extra or {}).items(): self.send_header(k, v)\n"
    "        self.end_headers()\n"
    "        self.wfile.write(b)\n"
    "    def do_GET(self):\n"
    "        kind = self.server.kind\n"
    "        if self.path != '/healthz-report': return self.send(404, 'text/plain', 'no')\n"
    "        if kind == 'ok': return self.send(200, 'application/json', json.dumps({'errors': [], "
    "'warnings': ['version mismatch: primary coderd (v2) != workspace proxy (v1)']}))\n"
    "        if kind == 'errs': return self.send(200, 'application/json', json.dumps({'errors': ['failed to "
    "get build info: boom'], 'warnings': []}))\n"
    "        if kind == 'e500': return self.send(500, 'application/json', json.dumps({'message': 'boom', "
    "'detail': 'kaput'}))\n"
    "        if kind == 'html': return self.send(200, 'text/html; charset=utf-8', '<html>hello</html>')\n"
    "        if kind == 'coder': return self.send(200, 'application/json', '{\"message\": 1', "
    "{'X-Coder-Build-Version': 'v2.0.0'})\n"
    "        if kind == 'slow':\n"
    "            time.sleep(8); return self.send(200, 'application/json', '{}')\n"
    "        if kind == 'conc':\n"
    "            with lock: active[0] += 1; active[1] = max(active[1], active[0])\n"
    "            time.sleep(0.6)\n"
    "            with lock: active[0] -= 1\n"
    "            return self.send(200, 'application/json', json.dumps({'errors': [], 'warnings': [], 'max': "
    "active[1]}))\n"
    "        if kind == 'blip':\n"
    "            hits['blip'] += 1\n"
    "            if hits['blip'] == 1: self.close_connection = True; return\n"
    "            return self.send(200, 'application/json', '{\"errors\":[],\"warnings\":[]}')\n"
    "        if kind == 'lag':\n"
    "            time.sleep(1.5); return self.send(200, 'application/json', "
    "'{\"errors\":[],\"warnings\":[]}')\n"
    "        if kind == 'flip':\n"
    "            hits['flip'] += 1\n"
    "            if hits['flip'] == 1: return self.send(200, 'application/json', "
    "'{\"errors\":[],\"warnings\":[]}')\n"
    "            return self.send(503, 'text/plain', 'maintenance')\n"
    "class S(socketserver.ThreadingMixIn, http.server.HTTPServer):\n"
    "    daemon_threads = True\n"
    "for kind in ['ok', 'errs', 'e500', 'html', 'coder', 'slow', 'flip', 'blip', 'lag', 'conc']:\n"
    "    s = S(('127.0.0.1', 0), H); s.kind = kind\n"
    "    threading.Thread(target=s.serve_forever, daemon=True).start()\n"
    "    print(kind, s.server_address[1], flush=True)\n"
    "print('ready', 0, flush=True)\n"
    "time.sleep(120)\n";

struct target {
    const char *kind;
    int port;
    char id[40];
    char *token;
};

static struct target targets[] = {
    {"ok", 0, "", NULL},           {"errs", 0, "", NULL}, {"e500", 0, "", NULL}, {"html", 0, "", NULL},
    {"coder", 0, "", NULL},        {"slow", 0, "", NULL}, {"flip", 0, "", NULL}, {"down", 0, "", NULL},
    {"unregistered", 0, "", NULL}, {"blip", 0, "", NULL},
};
static int conc_port, lag_port;

static pid_t py_pid;

static int start_servers(void)
{
    int fds[2];
    if (pipe(fds) != 0) return -1;
    py_pid = fork();
    if (py_pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execlp("python3", "python3", "-c", server_py, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char kind[32];
    int port;
    while (fscanf(f, "%31s %d", kind, &port) == 2) {
        if (strcmp(kind, "ready") == 0) break;
        for (size_t i = 0; i < OP_ARRAY_LEN(targets); i++)
            if (strcmp(targets[i].kind, kind) == 0) targets[i].port = port;
        if (strcmp(kind, "conc") == 0) conc_port = port;
        if (strcmp(kind, "lag") == 0) lag_port = port;
    }
    fclose(f);
    return 0;
}

/* A loopback port with nothing listening: bind port 0, read it back, close. */
static int dead_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    bind(s, (struct sockaddr *)&a, sizeof(a));
    getsockname(s, (struct sockaddr *)&a, &l);
    close(s);
    return ntohs(a.sin_port);
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* A blocking tick would take >= 0.6 s (the slow servers); 0.4 s leaves room for a loaded 2-core CI box. */
static uint64_t max_tick_us;

/* Ticks every 20 ms until the health checker is idle and pred holds, or the deadline passes. */
static bool drive(struct op_primary *p, int max_ms, bool (*pred)(struct op_primary *))
{
    uint64_t end = now_us() + (uint64_t)max_ms * 1000;
    while (now_us() < end) {
        uint64_t t0 = now_us();
        op_primary_tick(p);
        uint64_t dt = now_us() - t0;
        max_tick_us = dt > max_tick_us ? dt : max_tick_us;
        if (!op_primary_health_busy(p) && (!pred || pred(p))) return true;
        usleep(20000);
    }
    return false;
}

static cJSON *list(struct op_primary *p, const char *tok)
{
    struct t_resp r = t_call(p, "GET", "/api/v2/workspaceproxies", NULL, tok);
    cJSON *regions = cJSON_DetachItemFromObject(r.json, "regions");
    t_free(&r);
    return regions;
}

static const cJSON *find(const cJSON *regions, const char *name)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, regions) if (t_streq(t_str(it, "name"), name)) return it;
    return NULL;
}

static const char *first_error(const cJSON *proxy)
{
    const cJSON *errs =
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(proxy, "status"), "report"), "errors");
    const cJSON *e = cJSON_GetArrayItem(errs, 0);
    return cJSON_IsString(e) ? e->valuestring : "";
}

static char *g_tok;

static bool flip_unhealthy(struct op_primary *p)
{
    cJSON *regions = list(p, g_tok);
    bool done = t_streq(t_str(find(regions, "flip"), "status.status"), "unhealthy");
    cJSON_Delete(regions);
    return done;
}

/* Another primary in dir (a mkdtemp template) with an admin signed in (*tok, owned by the caller), its
 * startup round done. NULL on failure (reported as a failed check). */
static struct op_primary *other_primary(char *dir, char **tok)
{
    mkdtemp(dir);
    struct op_primary_config cfg = {0};
    cfg.data_dir = dir;
    cfg.postgres_url = t_pg_url(dir, true);
    cfg.access_url = "http://127.0.0.1:3000";
    cfg.kdf_iterations = 1000;
    cfg.health_interval_ms = 60000;
    struct op_primary *p = NULL;
    char err[256];
    if (op_primary_open(&cfg, &p, err, sizeof(err)) != 0) {
        CHECK(false, "open another primary: %s", err);
        return NULL;
    }
    struct t_resp r =
        t_call(p, "POST", "/api/v2/users/first",
               "{\"username\":\"admin\",\"email\":\"a@example.com\",\"password\":\"password1\"}", NULL);
    t_free(&r);
    r = t_call(p, "POST", "/api/v2/users/login", "{\"email\":\"a@example.com\",\"password\":\"password1\"}",
               NULL);
    *tok = strdup(t_str(r.json, "session_token"));
    t_free(&r);
    drive(p, 2000, NULL); /* the startup round (nothing to probe yet) */
    return p;
}

/* Creates proxy `name` and registers it with the access URL http://127.0.0.1:port. */
static void add_proxy(struct op_primary *p, const char *tok, const char *name, int port)
{
    char body[300], rep[37];
    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
    struct t_resp r = t_call(p, "POST", "/api/v2/workspaceproxies", body, tok);
    char *ptok = strdup(t_str(r.json, "proxy_token"));
    t_free(&r);
    op_uuid_v4(rep);
    snprintf(body, sizeof(body),
             "{\"access_url\":\"http://127.0.0.1:%d\",\"derp_enabled\":true,\"replica_id\":\"%s\","
             "\"hostname\":\"h\"}",
             port, rep);
    r = t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", body, ptok);
    t_free(&r);
    free(ptok);
}

/* A second primary with 9 proxies that all point at one server which holds each probe 0.6 s and records
 * the highest number of probes it saw at once: the checker must never run more than 5 in parallel. */
static void test_parallel_cap(void)
{
    char dir[] = "/tmp/outpost-primary-health2-XXXXXX", *tok = NULL;
    struct op_primary *p = other_primary(dir, &tok);
    if (!p) return;
    for (int i = 0; i < 9; i++) {
        char name[16];
        snprintf(name, sizeof(name), "c%d", i);
        add_proxy(p, tok, name, conc_port);
    }
    uint64_t t0 = now_us();
    bool settled = drive(p, 8000, NULL);
    double took = (double)(now_us() - t0) / 1e6;
    /* The last probe's answer carries the highest concurrency the server saw. */
    cJSON *regions = list(p, tok);
    int ok_count = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, regions) ok_count += t_streq(t_str(it, "status.status"), "ok");
    cJSON_Delete(regions);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "curl -s http://127.0.0.1:%d/healthz-report", conc_port);
    FILE *f = popen(cmd, "r");
    char buf[200] = "";
    if (f) {
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = '\0';
        pclose(f);
    }
    cJSON *j = cJSON_Parse(buf);
    const cJSON *mx = cJSON_GetObjectItem(j, "max");
    int max = cJSON_IsNumber(mx) ? mx->valueint : -1;
    cJSON_Delete(j);
    CHECK(settled && ok_count == 10, "9 proxies on one slow server all ok (%.2f s, %d ok incl. primary)",
          took, ok_count);
    CHECK(max == 5, "at most 5 probes in parallel, and the cap is used (server saw %d at once)", max);
    CHECK(took >= 1.1, "9 probes of 0.6 s with 5 slots need two waves (%.2f s)", took);
    op_primary_close(p);
    free(tok);
    t_rm_rf(dir);
}

/* The control thread stalls (a burst of API requests) for longer than a probe's timeout right after a
 * round starts, twice: the probes run on their own thread, so two proxies that answer after 1.5 s stay ok.
 * Probes driven by the ticks would see no answer in the first tick after each stall, time out, and the
 * retry would meet the second stall. */
static void test_control_stall(void)
{
    char dir[] = "/tmp/outpost-primary-health3-XXXXXX", *tok = NULL;
    struct op_primary *p = other_primary(dir, &tok);
    if (!p) return;
    add_proxy(p, tok, "lag1", lag_port);
    add_proxy(p, tok, "lag2", lag_port);
    op_primary_tick(p);                       /* the forced round starts */
    for (int stall = 0; stall < 2; stall++) { /* 5.5 s without a tick, then 200 ms of normal ticks */
        usleep(5500000);
        for (int i = 0; i < 10; i++) {
            op_primary_tick(p);
            usleep(20000);
        }
    }
    bool settled = drive(p, 9000, NULL);
    cJSON *regions = list(p, tok);
    const cJSON *a = find(regions, "lag1"), *b = find(regions, "lag2");
    CHECK(
        settled && t_streq(t_str(a, "status.status"), "ok") && t_streq(t_str(b, "status.status"), "ok"),
        "two 5.5 s stalls of the control thread in one round: proxies answering after 1.5 s stay ok [%s %s]",
        t_str(a, "status.status"), first_error(a));
    cJSON_Delete(regions);
    op_primary_close(p);
    free(tok);
    t_rm_rf(dir);
}

/* Registers one more replica of the proxy whose token is ptok: access URL on port access, relay URL on port
 * relay (0 = none). */
static void add_replica(struct op_primary *p, const char *ptok, int access, int relay)
{
    char body[400], rep[37], rel[64] = "";
    op_uuid_v4(rep);
    if (relay) snprintf(rel, sizeof(rel), ",\"replica_relay_address\":\"http://127.0.0.1:%d/\"", relay);
    snprintf(body, sizeof(body),
             "{\"access_url\":\"http://127.0.0.1:%d\",\"replica_id\":\"%s\",\"hostname\":\"h\"%s}", access,
             rep, rel);
    usleep(2000); /* replicas are ordered oldest first (ms), ties by id: keep the order of registration */
    struct t_resp r = t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", body, ptok);
    CHECK(r.status == 201, "register a replica (access port %d, relay port %d)", access, relay);
    t_free(&r);
}

static char *new_proxy(struct op_primary *p, const char *tok, const char *name)
{
    char body[100];
    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
    struct t_resp r = t_call(p, "POST", "/api/v2/workspaceproxies", body, tok);
    char *ptok = strdup(t_str(r.json, "proxy_token"));
    t_free(&r);
    return ptok;
}

static const cJSON *report_item(const cJSON *proxy, const char *which)
{
    return cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(proxy, "status"), "report"), which);
}

static bool any_string_has(const cJSON *arr, const char *a, const char *b)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) if (cJSON_IsString(it) && strstr(it->valuestring, a) &&
                                    (!b || strstr(it->valuestring, b))) return true;
    return false;
}

/* Proxies with several replicas are probed per replica at their relay URLs: "multi" (one replica ok, one
 * down, the access URL dead) is ok with a warning naming the down one; "allbad" (one reporting errors, one
 * down, the access URL dead) is unhealthy with both named in its errors; "bare" (two replicas, one without a
 * relay URL) is probed once and warns about the missing relay URL; "lbonly" (both relay URLs dead, the access
 * URL ok) is ok with a warning. */
static void test_replicas(void)
{
    char dir[] = "/tmp/outpost-primary-health4-XXXXXX", *tok = NULL;
    struct op_primary *p = other_primary(dir, &tok);
    if (!p) return;
    int okp = targets[0].port, errp = targets[1].port, down = dead_port(), down2 = dead_port();
    char *m = new_proxy(p, tok, "multi"), *a = new_proxy(p, tok, "allbad"), *b = new_proxy(p, tok, "bare");
    char *l = new_proxy(p, tok, "lbonly");
    add_replica(p, m, down, okp);
    add_replica(p, m, down, down);
    add_replica(p, a, down, errp);
    add_replica(p, a, down, down);
    add_replica(p, b, okp, okp);
    add_replica(p, b, okp, 0);
    add_replica(p, l, okp, down);
    add_replica(p, l, okp, down2);
    bool settled = drive(p, 9000, NULL);
    cJSON *regions = list(p, tok);
    char durl[64];
    snprintf(durl, sizeof(durl), "(http://127.0.0.1:%d): request to proxy failed", down);
    const cJSON *x = find(regions, "multi"), *reps = report_item(x, "replicas");
    CHECK(settled && t_streq(t_str(x, "status.status"), "ok") && cJSON_GetArraySize(reps) == 2 &&
              cJSON_GetArraySize(report_item(x, "errors")) == 0 &&
              any_string_has(report_item(x, "warnings"), "replica ", durl),
          "one replica ok, one down, the access URL dead: ok, 2 replicas in the report, a warning names the "
          "down one [%s]",
          t_str(x, "status.status"));
    const cJSON *r0 = cJSON_GetArrayItem(reps, 0), *r1 = cJSON_GetArrayItem(reps, 1);
    CHECK(t_streq(t_str(r0, "status"), "ok") && t_streq(t_str(r1, "status"), "unreachable") &&
              strlen(t_str(r0, "id")) == 36,
          "each replica's report: id, status (ok, unreachable)");
    x = find(regions, "allbad");
    CHECK(t_streq(t_str(x, "status.status"), "unhealthy") &&
              any_string_has(report_item(x, "errors"), "failed to get build info: boom", NULL) &&
              any_string_has(report_item(x, "errors"), durl, NULL),
          "one replica reporting errors, one down: unhealthy, both named in the errors [%s]", first_error(x));
    x = find(regions, "bare");
    CHECK(t_streq(t_str(x, "status.status"), "ok") && !report_item(x, "replicas") &&
              any_string_has(report_item(x, "warnings"), "has no relay URL (--derp-server-relay-url)", NULL),
          "two replicas, one without a relay URL: probed once, ok, with a warning about it");
    x = find(regions, "lbonly");
    CHECK(t_streq(t_str(x, "status.status"), "ok") && cJSON_GetArraySize(report_item(x, "replicas")) == 2 &&
              any_string_has(report_item(x, "warnings"), "no replica answered at its relay URL", NULL),
          "no replica reachable at its relay URL but the access URL ok: ok, with a warning [%s]",
          t_str(x, "status.status"));
    cJSON_Delete(regions);
    free(l);
    free(m);
    free(a);
    free(b);
    op_primary_close(p);
    free(tok);
    t_rm_rf(dir);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (start_servers() != 0 || targets[0].port == 0) {
        printf("cannot start python3 http.server helpers\n");
        return 77;
    }
    for (size_t i = 0; i < OP_ARRAY_LEN(targets); i++)
        if (strcmp(targets[i].kind, "down") == 0) targets[i].port = dead_port();

    char dir[] = "/tmp/outpost-primary-health-XXXXXX";
    mkdtemp(dir);
    struct op_primary_config cfg = {0};
    cfg.data_dir = dir;
    cfg.postgres_url = t_pg_url(dir, true);
    cfg.access_url = "http://127.0.0.1:3000";
    cfg.kdf_iterations = 1000;
    cfg.health_interval_ms = 1500;
    struct op_primary *p = NULL;
    char err[256];
    CHECK(op_primary_open(&cfg, &p, err, sizeof(err)) == 0, "open primary (health interval 1.5 s)");
    struct t_resp r =
        t_call(p, "POST", "/api/v2/users/first",
               "{\"username\":\"admin\",\"email\":\"a@example.com\",\"password\":\"password1\"}", NULL);
    t_free(&r);
    r = t_call(p, "POST", "/api/v2/users/login", "{\"email\":\"a@example.com\",\"password\":\"password1\"}",
               NULL);
    g_tok = strdup(t_str(r.json, "session_token"));
    t_free(&r);

    for (size_t i = 0; i < OP_ARRAY_LEN(targets); i++) {
        struct target *t = &targets[i];
        char body[200];
        snprintf(body, sizeof(body), "{\"name\":\"%s\"}", t->kind);
        r = t_call(p, "POST", "/api/v2/workspaceproxies", body, g_tok);
        t->token = strdup(t_str(r.json, "proxy_token"));
        snprintf(t->id, sizeof(t->id), "%s", t_str(r.json, "proxy.id"));
        t_free(&r);
        if (strcmp(t->kind, "unregistered") == 0) continue;
        char rep[37];
        op_uuid_v4(rep);
        snprintf(body, sizeof(body),
                 "{\"access_url\":\"http://127.0.0.1:%d\",\"derp_enabled\":true,\"replica_id\":\"%s\","
                 "\"hostname\":\"h\",\"version\":\"v2.9.0\"}",
                 t->port, rep);
        r = t_proxy_call(p, "POST", "/api/v2/workspaceproxies/me/register", body, t->token);
        CHECK(r.status == 201, "register %s on port %d", t->kind, t->port);
        t_free(&r);
    }
    CHECK(op_primary_health_busy(p), "register forced a health refresh");

    uint64_t t0 = now_us();
    bool settled = drive(p, 14000, NULL);
    double took = (double)(now_us() - t0) / 1e6;
    CHECK(settled && took < 12.5, "first round settles within two probe timeouts (%.2f s)", took);
    CHECK(max_tick_us < 400000, "no tick blocks (longest %.1f ms)", (double)max_tick_us / 1000);

    cJSON *regions = list(p, g_tok);
    const cJSON *x;
    x = find(regions, "primary");
    CHECK(t_streq(t_str(x, "status.status"), "ok"), "primary: ok");
    x = find(regions, "ok");
    const cJSON *warns =
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(x, "status"), "report"), "warnings");
    CHECK(t_streq(t_str(x, "status.status"), "ok") && cJSON_IsTrue(cJSON_GetObjectItem(x, "healthy")) &&
              cJSON_GetArraySize(warns) == 1 &&
              strstr(cJSON_GetArrayItem(warns, 0)->valuestring, "version mismatch"),
          "healthy proxy: ok, healthy=true, its warning kept");
    x = find(regions, "errs");
    CHECK(t_streq(t_str(x, "status.status"), "unhealthy") &&
              t_streq(first_error(x), "failed to get build info: boom") &&
              cJSON_IsFalse(cJSON_GetObjectItem(x, "healthy")),
          "proxy reporting errors: unhealthy with its errors");
    x = find(regions, "e500");
    char want[300];
    snprintf(want, sizeof(want),
             "unexpected status code 500. \nEncountered error, send a request to "
             "\"http://127.0.0.1:%d/healthz-report\""
             " from the Coderd environment to debug this issue.\nError Message: boom\nError Detail: kaput",
             targets[2].port);
    CHECK(t_streq(t_str(x, "status.status"), "unhealthy") && t_streq(first_error(x), want),
          "500 proxy: unhealthy, 'unexpected status code 500' with message and detail [%s]", first_error(x));
    x = find(regions, "html");
    CHECK(t_streq(t_str(x, "status.status"), "unhealthy") &&
              strstr(first_error(x), "is not a coder proxy instance") &&
              strstr(first_error(x), "incorrect content type"),
          "HTML proxy: unhealthy, wrong content type [%s]", first_error(x));
    x = find(regions, "coder");
    CHECK(t_streq(t_str(x, "status.status"), "unhealthy") &&
              strstr(first_error(x), "Could this be a primary coderd and not a proxy?") &&
              strstr(first_error(x), "failed to decode health report body"),
          "primary look-alike: unhealthy, 'Could this be a primary coderd' [%s]", first_error(x));
    x = find(regions, "down");
    CHECK(t_streq(t_str(x, "status.status"), "unreachable") &&
              strncmp(first_error(x), "request to proxy failed: ", 25) == 0,
          "down proxy: unreachable [%s]", first_error(x));
    x = find(regions, "slow");
    CHECK(t_streq(t_str(x, "status.status"), "unreachable") &&
              strstr(first_error(x), "request to proxy failed: ") && strstr(first_error(x), "timed out"),
          "hanging proxy: unreachable after two 5 s timeouts [%s]", first_error(x));
    x = find(regions, "unregistered");
    CHECK(t_streq(t_str(x, "status.status"), "unregistered"), "never registered: unregistered");
    x = find(regions, "flip");
    CHECK(t_streq(t_str(x, "status.status"), "ok"), "flip proxy: ok on the first probe");
    x = find(regions, "blip");
    CHECK(t_streq(t_str(x, "status.status"), "ok"),
          "a proxy that drops one probe without a reply stays ok: the failed request is tried once more");
    const char *checked = t_str(find(regions, "ok"), "status.checked_at");
    CHECK(checked && strncmp(checked, "0001", 4) != 0, "checked_at is set");
    cJSON_Delete(regions);

    /* Without any forced refresh, the next interval re-probes: flip turns unhealthy. */
    max_tick_us = 0;
    t0 = now_us();
    settled = drive(p, 12000, flip_unhealthy);
    took = (double)(now_us() - t0) / 1e6;
    CHECK(settled, "interval re-probe turns the flip proxy unhealthy (%.2f s)", took);
    CHECK(max_tick_us < 400000, "no tick blocks in the second round (longest %.1f ms)",
          (double)max_tick_us / 1000);

    /* Deleting forces a refresh and drops the proxy from the cache and the list. */
    r = t_call(p, "DELETE", "/api/v2/workspaceproxies/down", NULL, g_tok);
    t_free(&r);
    CHECK(op_primary_health_busy(p), "delete forces a refresh");
    drive(p, 9000, NULL);
    regions = list(p, g_tok);
    CHECK(!find(regions, "down") && op_health_get(p, targets[7].id) == OP_HEALTH_UNKNOWN,
          "deleted proxy: gone from the list and the health cache");
    cJSON_Delete(regions);

    op_primary_close(p);
    test_parallel_cap();
    test_control_stall();
    test_replicas();
    kill(py_pid, SIGTERM);
    waitpid(py_pid, NULL, 0);
    for (size_t i = 0; i < OP_ARRAY_LEN(targets); i++)
        free(targets[i].token);
    free(g_tok);
    t_rm_rf(dir);
    return check_report("primary health checker");
}
