/*
 * agent/agent.c — the control thread of `outpost agent` (see agent.h): configuration, the calls to
 * the primary, the region list handed to the relay, the reports, signals and the exit codes.
 */
#include "agent/agent.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sysexits.h>
#include <time.h>

#include "agent/options.h"
#include "agent/primary.h"
#include "agent/procnet.h"
#include "agent/pty.h"
#include "agent/tcp_ws.h"
#include "agent/relay.h"
#include "agent/ssh.h"
#include "core/log.h"
#include "util/url.h"

#define CREDENTIAL_REFRESH_MS 120000 /* the credential lives 5 minutes: fetch a new one well before */
#define MAX_REGIONS_LISTED    OP_RELAY_MAX_REGIONS_HARD

struct agent {
    struct op_conf conf;
    struct op_agent_app apps[OP_AGENT_MAX_APPS];
    int napps;
    char token[128];
    char url[1024];
    struct op_agent_http http;
    struct op_relay *relay;
    struct op_agent_ssh *ssh;
    struct op_agent_pty *pty;
    struct op_agent_tcpws *tcpws;
    sigset_t sigs;
    long long report_interval_ms;
    char arch[72];
    /* what the last report sent, to report changes at once */
    struct op_port_set ports;
    char regions_sent[2048];
    bool stopping;
    int exit_code;
    char agent_name[128];
};

static void arch_name(char *out, size_t len)
{
    struct utsname u;
    const char *m = uname(&u) == 0 ? u.machine : "unknown";
    if (strcmp(m, "x86_64") == 0) m = "amd64";
    if (strcmp(m, "aarch64") == 0) m = "arm64";
    snprintf(out, len, "%s", m);
}

/* Waits up to ms for SIGTERM/SIGINT (true when one came). */
static bool wait_signal(struct agent *a, long long ms)
{
    if (ms < 0) ms = 0;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    for (;;) {
        int s = sigtimedwait(&a->sigs, NULL, &ts);
        if (s == SIGTERM || s == SIGINT) {
            op_info("agent", "%s received: shutting down", s == SIGTERM ? "SIGTERM" : "SIGINT");
            a->stopping = true;
            return true;
        }
        if (s < 0 && errno == EINTR) continue;
        return false;
    }
}

/* A call the primary refused with 401/403: the token is wrong or was revoked. */
static bool token_refused(struct agent *a, const char *what, const struct op_agent_resp *r)
{
    if (r->status != 401 && r->status != 403) return false;
    char msg[400];
    op_agent_resp_message(r, msg, sizeof(msg));
    op_error("agent", "the primary refused the agent token (%s: HTTP %ld): %s", what, r->status, msg);
    a->exit_code = EX_NOPERM;
    return true;
}

/* The relay entries of one manifest region: one per listed replica with a usable relay URL (each reached on
 * its own, docs/agent-protocol.md §2), else the access URL. A replica whose relay URL is the access URL is
 * listed without its id. Returns the count (at most max). */
static int region_entries(const cJSON *it, const char *name, const char *access, struct op_relay_region *out,
                          int max)
{
    char au[sizeof(out->url)];
    snprintf(au, sizeof(au), "%s", access);
    op_url_trim_slashes(au);
    int n = 0;
    const cJSON *rep;
    cJSON_ArrayForEach(rep, cJSON_GetObjectItemCaseSensitive(it, "replicas"))
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(rep, "id");
        const cJSON *ru = cJSON_GetObjectItemCaseSensitive(rep, "relay_url");
        if (n == max || !cJSON_IsString(id) || !cJSON_IsString(ru) || !op_url_http_host(ru->valuestring).p)
            continue;
        struct op_relay_region *e = &out[n];
        snprintf(e->name, sizeof(e->name), "%s", name);
        snprintf(e->url, sizeof(e->url), "%s", ru->valuestring);
        op_url_trim_slashes(e->url);
        snprintf(e->replica, sizeof(e->replica), "%s", strcmp(e->url, au) == 0 ? "" : id->valuestring);
        bool dup = false;
        for (int i = 0; i < n && !dup; i++)
            dup = strcmp(out[i].url, e->url) == 0;
        if (!dup) n++;
    }
    if (n == 0 && max > 0) {
        snprintf(out[0].name, sizeof(out[0].name), "%s", name);
        snprintf(out[0].url, sizeof(out[0].url), "%s", au);
        out[0].replica[0] = '\0';
        n = 1;
    }
    return n;
}

/* GET me/manifest. Returns 0 (regions handed to the relay), -EAGAIN (retry later, logged) or -EPERM. */
static int fetch_manifest(struct agent *a, bool first)
{
    struct op_agent_resp r;
    char err[512];
    if (op_agent_call(&a->http, "GET", "/api/v2/workspaceagents/me/manifest", NULL, &r, err, sizeof(err))) {
        op_warn("agent", "cannot reach the primary at %s: %s", a->url, err);
        return -EAGAIN;
    }
    if (token_refused(a, "manifest", &r)) {
        op_agent_resp_free(&r);
        return -EPERM;
    }
    cJSON *j = r.status == 200 ? cJSON_Parse(r.body) : NULL;
    const cJSON *regions = cJSON_GetObjectItemCaseSensitive(j, "regions");
    if (!cJSON_IsArray(regions)) {
        char msg[400];
        op_agent_resp_message(&r, msg, sizeof(msg));
        op_warn("agent", "the primary's manifest is unusable (HTTP %ld): %s", r.status, msg);
        cJSON_Delete(j);
        op_agent_resp_free(&r);
        return -EAGAIN;
    }
    const cJSON *ri = cJSON_GetObjectItemCaseSensitive(j, "report_interval_ms");
    if (cJSON_IsNumber(ri) && ri->valuedouble >= 100) a->report_interval_ms = (long long)ri->valuedouble;
    if (first) {
        const cJSON *an = cJSON_GetObjectItemCaseSensitive(j, "agent_name");
        const cJSON *wn = cJSON_GetObjectItemCaseSensitive(j, "workspace_name");
        const cJSON *on = cJSON_GetObjectItemCaseSensitive(j, "owner_name");
        snprintf(a->agent_name, sizeof(a->agent_name), "%s/%s.%s", cJSON_IsString(on) ? on->valuestring : "?",
                 cJSON_IsString(wn) ? wn->valuestring : "?", cJSON_IsString(an) ? an->valuestring : "?");
        op_info("agent", "agent %s: the primary at %s accepted the token", a->agent_name, a->url);
    }
    struct op_relay_region list[MAX_REGIONS_LISTED];
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, regions)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
        const cJSON *url = cJSON_GetObjectItemCaseSensitive(it, "access_url");
        const cJSON *healthy = cJSON_GetObjectItemCaseSensitive(it, "healthy");
        if (!cJSON_IsString(name) || !cJSON_IsString(url) || !op_url_http_host(url->valuestring).p) continue;
        if (cJSON_IsFalse(healthy) || n == MAX_REGIONS_LISTED) continue;
        n += region_entries(it, name->valuestring, url->valuestring, list + n, MAX_REGIONS_LISTED - n);
    }
    cJSON_Delete(j);
    op_agent_resp_free(&r);
    op_relay_set_regions(a->relay, list, n);
    return 0;
}

/* POST me/credential: a fresh credential for the relay. 0, -EAGAIN or -EPERM. */
static int fetch_credential(struct agent *a)
{
    struct op_agent_resp r;
    char err[512];
    if (op_agent_call(&a->http, "POST", "/api/v2/workspaceagents/me/credential", "{}", &r, err,
                      sizeof(err))) {
        op_warn("agent", "cannot reach the primary at %s for a credential: %s", a->url, err);
        return -EAGAIN;
    }
    if (token_refused(a, "credential", &r)) {
        op_agent_resp_free(&r);
        return -EPERM;
    }
    cJSON *j = r.status == 200 ? cJSON_Parse(r.body) : NULL;
    const cJSON *cred = cJSON_GetObjectItemCaseSensitive(j, "credential");
    int rc = 0;
    if (cJSON_IsString(cred)) {
        op_relay_set_credential(a->relay, cred->valuestring);
    } else {
        char msg[400];
        op_agent_resp_message(&r, msg, sizeof(msg));
        op_warn("agent", "the primary gave no credential (HTTP %ld): %s", r.status, msg);
        rc = -EAGAIN;
    }
    cJSON_Delete(j);
    op_agent_resp_free(&r);
    return rc;
}

static void add_apps(struct agent *a, cJSON *o)
{
    cJSON *apps = cJSON_AddArrayToObject(o, "apps");
    for (int i = 0; i < a->napps; i++) {
        const struct op_agent_app *p = &a->apps[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "slug", p->slug);
        cJSON_AddStringToObject(x, "display_name", p->name);
        cJSON_AddStringToObject(x, "url", p->url);
        cJSON_AddStringToObject(x, "icon", p->icon);
        cJSON_AddStringToObject(x, "sharing_level", p->share);
        cJSON_AddBoolToObject(x, "subdomain", p->subdomain);
        cJSON_AddItemToArray(apps, x);
    }
}

/* The connected regions as "a,b," (what the last report sent is kept in regions_sent). */
static void regions_now(struct agent *a, char *out, size_t len)
{
    char names[MAX_REGIONS_LISTED][OP_RELAY_NAME_MAX];
    int n = op_relay_connected(a->relay, names, MAX_REGIONS_LISTED);
    size_t off = 0;
    out[0] = '\0';
    for (int i = 0; i < n && off + strlen(names[i]) + 2 < len; i++)
        off += (size_t)snprintf(out + off, len - off, "%s,", names[i]);
}

/* POST me/report: lifecycle, apps, listening ports, connected regions. 0, -EAGAIN or -EPERM. */
static int report(struct agent *a, const char *lifecycle, bool final)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "lifecycle_state", lifecycle);
    cJSON_AddStringToObject(o, "version", OP_VERSION);
    cJSON_AddStringToObject(o, "operating_system", "linux");
    cJSON_AddStringToObject(o, "architecture", a->arch);
    if (a->ssh) cJSON_AddStringToObject(o, "ssh_host_key", op_agent_ssh_pubkey(a->ssh));
    add_apps(a, o);
    cJSON *ports = cJSON_AddArrayToObject(o, "listening_ports");
    for (int i = 0; !final && i < a->ports.n; i++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "port", a->ports.port[i]);
        cJSON_AddStringToObject(p, "network", "tcp");
        if (a->ports.name[i][0]) cJSON_AddStringToObject(p, "process_name", a->ports.name[i]);
        cJSON_AddItemToArray(ports, p);
    }
    char names[MAX_REGIONS_LISTED][OP_RELAY_NAME_MAX];
    int n = final ? 0 : op_relay_connected(a->relay, names, MAX_REGIONS_LISTED);
    cJSON *regs = cJSON_AddArrayToObject(o, "regions");
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(regs, cJSON_CreateString(names[i]));
    if (!final) regions_now(a, a->regions_sent, sizeof(a->regions_sent));
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    struct op_agent_resp r;
    char err[512];
    int rc = op_agent_call(&a->http, "POST", "/api/v2/workspaceagents/me/report", body, &r, err, sizeof(err));
    cJSON_free(body);
    if (rc) {
        op_warn("agent", "cannot reach the primary at %s to report: %s", a->url, err);
        return -EAGAIN;
    }
    if (token_refused(a, "report", &r)) {
        op_agent_resp_free(&r);
        return -EPERM;
    }
    if (r.status != 204 && r.status != 200) {
        char msg[400];
        op_agent_resp_message(&r, msg, sizeof(msg));
        op_warn("agent", "the primary refused the report (HTTP %ld): %s", r.status, msg);
        rc = -EAGAIN;
    }
    op_agent_resp_free(&r);
    return rc;
}

static int run(struct agent *a)
{
    long long manifest_ms = op_conf_duration_ms(&a->conf, OP_AO_MANIFEST_INTERVAL);
    long long ports_ms = op_conf_duration_ms(&a->conf, OP_AO_PORTS_INTERVAL);
    uint64_t backoff = 1000;
    /* Start-up: the token must be accepted before anything else (exit 77 otherwise). */
    for (;;) {
        int rc = fetch_manifest(a, true);
        if (rc == 0) rc = fetch_credential(a);
        if (rc == -EPERM) return EX_NOPERM;
        if (rc == 0) break;
        op_info("agent", "retrying in %.1fs", (double)backoff / 1000.0);
        if (wait_signal(a, (long long)backoff)) return 0;
        backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
    }
    op_procnet_read(&a->ports);
    op_procnet_names(&a->ports);
    if (report(a, "ready", false) == -EPERM) return EX_NOPERM;
    uint64_t now = op_now_ms();
    uint64_t next_manifest = now + (uint64_t)manifest_ms, next_ports = now + (uint64_t)ports_ms;
    uint64_t next_cred = now + CREDENTIAL_REFRESH_MS, last_report = now;
    while (!a->stopping) {
        now = op_now_ms();
        int rc = 0;
        bool need = false;
        if (now >= next_manifest) {
            rc = fetch_manifest(a, false);
            next_manifest = now + (uint64_t)manifest_ms;
        }
        if (rc != -EPERM && now >= next_cred) {
            rc = fetch_credential(a);
            next_cred = now + (rc == 0 ? CREDENTIAL_REFRESH_MS : 5000);
        }
        char why[400];
        if (rc != -EPERM && op_relay_revoked(a->relay, why, sizeof(why))) {
            op_warn("agent", "%s; asking the primary whether the token still holds", why);
            next_manifest = now;
            next_cred = now;
        }
        if (now >= next_ports) {
            struct op_port_set ps;
            op_procnet_read(&ps);
            need = ps.n != a->ports.n || memcmp(ps.port, a->ports.port, sizeof(ps.port[0]) * (size_t)ps.n);
            /* The process walk only when a socket came or went (a port reopened has a new inode). */
            if (op_procnet_same(&ps, &a->ports))
                memcpy(ps.name, a->ports.name, sizeof(ps.name));
            else
                op_procnet_names(&ps);
            need = need || memcmp(ps.name, a->ports.name, sizeof(ps.name[0]) * (size_t)ps.n) != 0;
            a->ports = ps;
            next_ports = now + (uint64_t)ports_ms;
        }
        char regs[sizeof(a->regions_sent)];
        regions_now(a, regs, sizeof(regs));
        need = need || strcmp(regs, a->regions_sent) != 0;
        /* Report what changed at once, and at least twice per report interval (contact for the status). */
        if (rc != -EPERM && (need || now - last_report >= (uint64_t)(a->report_interval_ms / 2))) {
            rc = report(a, "ready", false);
            last_report = now;
        }
        if (rc == -EPERM) return EX_NOPERM;
        if (wait_signal(a, 250)) break;
    }
    return 0;
}

static int start(struct agent *a, char *err, size_t errlen)
{
    snprintf(a->url, sizeof(a->url), "%s", op_conf_str(&a->conf, OP_AO_URL));
    op_url_trim_slashes(a->url);
    a->http.base = a->url;
    a->http.token = a->token;
    a->http.ca_file = op_conf_str(&a->conf, OP_AO_CA_FILE);
    a->http.timeout_ms = 10000;
    a->report_interval_ms = 15000;
    arch_name(a->arch, sizeof(a->arch));
    long max_ssh = op_conf_int(&a->conf, OP_AO_SSH_MAX_SESSIONS);
    if (max_ssh > 0) {
        const char *dir = op_conf_str(&a->conf, OP_AO_DATA_DIR), *home = getenv("HOME");
        char path[1024];
        if (strncmp(dir, "~/", 2) == 0 && home && *home)
            snprintf(path, sizeof(path), "%s/%s", home, dir + 2);
        else
            snprintf(path, sizeof(path), "%s", dir);
        int rc = op_agent_ssh_start(path, (int)max_ssh, &a->ssh, err, errlen);
        if (rc) return rc;
    }
    long max_pty = op_conf_int(&a->conf, OP_AO_MAX_PTY_SESSIONS);
    if (max_pty > 0) {
        struct op_agent_pty_conf pc = {
            .max_sessions = (int)max_pty,
            .timeout_ms = (int)op_conf_duration_ms(&a->conf, OP_AO_PTY_TIMEOUT),
        };
        int rc = op_agent_pty_start(&pc, &a->pty, err, errlen);
        if (rc) return rc;
    }
    struct op_agent_tcpws_conf tc = {
        .max_conns = (int)op_conf_int(&a->conf, OP_AO_MAX_STREAMS),
        .dial_timeout_ms = (int)op_conf_duration_ms(&a->conf, OP_AO_DIAL_TIMEOUT),
    };
    int trc = op_agent_tcpws_start(&tc, &a->tcpws, err, errlen);
    if (trc) return trc;
    struct op_relay_conf rc = {
        .spares = (int)op_conf_int(&a->conf, OP_AO_SPARES),
        .max_spares = (int)op_conf_int(&a->conf, OP_AO_MAX_SPARES),
        .max_streams = (int)op_conf_int(&a->conf, OP_AO_MAX_STREAMS),
        .max_regions = (int)op_conf_int(&a->conf, OP_AO_MAX_REGIONS),
        .dial_timeout_ms = (int)op_conf_duration_ms(&a->conf, OP_AO_DIAL_TIMEOUT),
        .backoff_max_ms = (int)op_conf_duration_ms(&a->conf, OP_AO_BACKOFF_MAX),
        .ca_file = op_conf_str(&a->conf, OP_AO_CA_FILE),
        .apps = a->apps,
        .napps = a->napps,
        .version = OP_VERSION,
        .ssh = a->ssh,
        .pty = a->pty,
        .tcpws = a->tcpws,
    };
    return op_relay_start(&rc, &a->relay, err, errlen);
}

int op_agent_main(int argc, char **argv)
{
    static struct agent ag;
    struct agent *a = &ag;
    memset(a, 0, sizeof(*a));
    char err[768];
    int rc = op_conf_load(&a->conf, &op_agent_optset, argc, argv, err, sizeof(err));
    if (rc == 0 && op_conf_bool(&a->conf, OP_AO_HELP)) {
        op_conf_print_help(&op_agent_optset, stdout);
        op_conf_free(&a->conf);
        return 0;
    }
    if (rc == 0 && op_conf_bool(&a->conf, OP_AO_DOCS_MARKDOWN)) {
        op_conf_print_markdown(&op_agent_optset, stdout);
        op_conf_free(&a->conf);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "outpost agent: %s\n", err);
        op_conf_free(&a->conf);
        return rc;
    }
    if (op_conf_bool(&a->conf, OP_AO_WRITE_CONFIG)) {
        op_conf_write_yaml(&a->conf, stdout);
        op_conf_free(&a->conf);
        return 0;
    }
    rc = op_agent_conf_validate(&a->conf, a->apps, &a->napps, err, sizeof(err));
    if (rc == 0) rc = op_agent_conf_token(&a->conf, a->token, sizeof(a->token), err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "outpost agent: invalid configuration: %s\n", err);
        op_conf_free(&a->conf);
        return rc;
    }
    if (op_conf_bool(&a->conf, OP_AO_CHECK)) {
        printf("configuration OK\n");
        op_conf_free(&a->conf);
        return 0;
    }
    enum op_log_level lvl = OP_LOG_INFO;
    (void)op_log_parse_level(op_conf_str(&a->conf, OP_AO_LOG_LEVEL), &lvl);
    op_log_set_level(lvl);
    op_log_set_json(op_conf_bool(&a->conf, OP_AO_LOG_JSON));
    /* Signals are taken synchronously by the control thread; the relay thread inherits the mask. */
    sigemptyset(&a->sigs);
    sigaddset(&a->sigs, SIGTERM);
    sigaddset(&a->sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &a->sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = start(a, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "outpost agent: %s\n", err);
        op_conf_free(&a->conf);
        return EX_OSERR;
    }
    op_info("agent", "outpost agent %s: primary %s, %d app%s, outbound connections only", OP_VERSION, a->url,
            a->napps, a->napps == 1 ? "" : "s");
    rc = run(a);
    long long drain = op_conf_duration_ms(&a->conf, OP_AO_DRAIN_TIMEOUT);
    op_relay_stop(a->relay, rc == 0 ? (int)drain : 0);
    a->relay = NULL;
    op_agent_ssh_stop(a->ssh, rc == 0 ? (int)drain : 0);
    a->ssh = NULL;
    op_agent_pty_stop(a->pty);
    a->pty = NULL;
    op_agent_tcpws_stop(a->tcpws);
    a->tcpws = NULL;
    if (rc == 0) {
        /* The last word: "off" marks the agent disconnected at once. */
        if (report(a, "off", true) == 0) op_info("agent", "reported the agent disconnected; bye");
    }
    op_agent_http_close(&a->http);
    curl_global_cleanup();
    memset(a->token, 0, sizeof(a->token));
    op_conf_free(&a->conf);
    return rc;
}
