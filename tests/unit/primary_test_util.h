/* Helpers shared by the test_primary_*.c programs: build op_app_requests, call the handler, check. */
#ifndef OP_PRIMARY_TEST_UTIL_H
#define OP_PRIMARY_TEST_UTIL_H

#include <cjson/cJSON.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "db/db.h"
#include "http/app.h"
#include "primary/primary.h"

#define CHECK_PRINT_PASSES 1
#include "tests/unit/check.h"

struct t_resp {
    int status;
    char *body;
    char headers[8192];
    cJSON *json;
};

static void t_free(struct t_resp *r)
{
    free(r->body);
    cJSON_Delete(r->json);
    memset(r, 0, sizeof(*r));
}

/* Calls the handler. hdrs is a NULL-terminated list of "Name: value" strings (may be NULL). */
static struct t_resp t_call_h(struct op_primary *p, const char *method, const char *target, const char *body,
                              const char *const *hdrs)
{
    struct op_app_header h[16];
    int nh = 0;
    char store[16][600];
    for (int i = 0; hdrs && hdrs[i] && nh < 16; i++) {
        snprintf(store[nh], sizeof(store[nh]), "%s", hdrs[i]);
        char *colon = strchr(store[nh], ':');
        *colon = '\0';
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        h[nh].name = op_span(store[nh], strlen(store[nh]));
        h[nh].value = op_span(v, strlen(v));
        nh++;
    }
    struct op_app_request req = {0};
    req.method = op_span(method, strlen(method));
    const char *q = strchr(target, '?');
    req.path = op_span(target, q ? (size_t)(q - target) : strlen(target));
    req.query = q ? op_span(q + 1, strlen(q + 1)) : op_span("", 0);
    req.host = op_span("127.0.0.1:3000", 14);
    req.body = body ? op_span(body, strlen(body)) : op_span("", 0);
    req.headers = h;
    req.nheaders = nh;
    req.remote_ip = "127.0.0.1";
    struct op_app_response resp = {0};
    op_primary_handle(p, &req, &resp);
    struct t_resp r = {0};
    r.status = resp.status;
    if (resp.body) {
        r.body = malloc(resp.body_len + 1);
        memcpy(r.body, resp.body, resp.body_len);
        r.body[resp.body_len] = '\0';
        r.json = cJSON_Parse(r.body);
    }
    memcpy(r.headers, resp.headers, resp.headers_len);
    r.headers[resp.headers_len] = '\0';
    free(resp.body);
    return r;
}

static struct t_resp t_call(struct op_primary *p, const char *method, const char *target, const char *body,
                            const char *session)
{
    char h[300];
    snprintf(h, sizeof(h), "Coder-Session-Token: %s", session ? session : "");
    const char *hdrs[] = {h, NULL};
    return t_call_h(p, method, target, body, session ? hdrs : NULL);
}

static struct t_resp t_proxy_call(struct op_primary *p, const char *method, const char *target,
                                  const char *body, const char *token)
{
    char h[300];
    snprintf(h, sizeof(h), "Coder-External-Proxy-Token: %s", token);
    const char *hdrs[] = {h, NULL};
    return t_call_h(p, method, target, body, token ? hdrs : NULL);
}

/* The value of header name in the response's extra header lines ("" when absent; a static buffer). */
static inline const char *t_header(const struct t_resp *r, const char *name)
{
    static char v[8192];
    v[0] = '\0';
    char pat[64];
    snprintf(pat, sizeof(pat), "%s: ", name);
    const char *h = r->headers;
    while (h && *h) {
        if (strncasecmp(h, pat, strlen(pat)) == 0) {
            const char *e = strstr(h, "\r\n");
            size_t n = e ? (size_t)(e - h) - strlen(pat) : strlen(h) - strlen(pat);
            snprintf(v, sizeof(v), "%.*s", (int)n, h + strlen(pat));
            return v;
        }
        h = strstr(h, "\r\n");
        if (h) h += 2;
    }
    return v;
}

static const char *t_str(const cJSON *o, const char *path)
{
    /* dotted path: "proxy.status.status" */
    char buf[200];
    snprintf(buf, sizeof(buf), "%s", path);
    const cJSON *cur = o;
    for (char *save = NULL, *tok = strtok_r(buf, ".", &save); tok && cur; tok = strtok_r(NULL, ".", &save))
        cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
    return cJSON_IsString(cur) ? cur->valuestring : NULL;
}

static bool t_streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* The secrets (tokens, passwords) a test handed out, to check that none is stored in plaintext. */
struct t_secrets {
    char s[64][200];
    int n;
};

static inline void t_remember(struct t_secrets *k, const char *s)
{
    if (s && k->n < 64) snprintf(k->s[k->n++], sizeof(k->s[0]), "%s", s);
}

/* True if needle occurs in the bytes of file. */
static inline bool t_file_contains(const char *file, const char *needle)
{
    FILE *f = fopen(file, "rb");
    if (!f) return false;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    bool found = memmem(buf, got, needle, strlen(needle)) != NULL;
    free(buf);
    return found;
}

/*
 * The primary's unit tests run on SQLite, and again on PostgreSQL when OUTPOST_TEST_PG_URL names a database
 * (tests/run.sh's "pg" layer): each data directory then gets a schema of its own on that database, named
 * after the directory, so a test that reopens a directory finds its data and a new directory starts empty.
 */
static inline bool t_on_pg(void)
{
    const char *u = getenv("OUTPOST_TEST_PG_URL");
    return u && *u;
}

/* The PostgreSQL URL for dir (its schema made afresh when fresh), or NULL when the tests run on SQLite. The
 * string stays valid for the test's life. */
static inline const char *t_pg_url(const char *dir, bool fresh)
{
    static char urls[16][700];
    static int next;
    if (!t_on_pg()) return NULL;
    const char *base = getenv("OUTPOST_TEST_PG_URL"), *slash = strrchr(dir, '/');
    char schema[64] = "t_";
    size_t n = 2;
    for (const char *c = slash ? slash + 1 : dir; *c && n < sizeof(schema) - 1; c++)
        schema[n++] = (char)((*c >= 'A' && *c <= 'Z')                                 ? *c + 32
                             : ((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9')) ? *c
                                                                                      : '_');
    schema[n] = '\0';
    if (fresh) {
        struct op_db *db = NULL;
        char err[300], sql[200];
        snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", schema, schema);
        if (op_db_open(base, &db, err, sizeof(err)) != 0 || op_db_exec(db, sql) != 0) {
            printf("FAIL PostgreSQL schema %s: %s\n", schema, db ? op_db_errmsg(db) : err);
            exit(1);
        }
        op_db_close(db);
    }
    char *u = urls[next++ % 16];
    snprintf(u, sizeof(urls[0]), "%s%coptions=-csearch_path%%3D%s", base, strchr(base, '?') ? '&' : '?',
             schema);
    return u;
}

/* PostgreSQL: how many times a remembered secret occurs in the text of any row of dir's schema. */
static inline int t_plaintext_hits_pg(const struct t_secrets *k, const char *dir)
{
    struct op_db *db = NULL;
    char err[300];
    if (op_db_open(t_pg_url(dir, false), &db, err, sizeof(err)) != 0) {
        printf("FAIL open %s: %s\n", dir, err);
        return 1000;
    }
    static const char *const tables[] = {
        "site_config", "users",           "api_keys",   "workspace_proxies", "replicas",
        "crypto_keys", "app_usage_stats", "workspaces", "workspace_agents",  "workspace_agent_port_shares"};
    int hits = 0, rows = 0;
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
        char sql[160];
        snprintf(sql, sizeof(sql), "SELECT CAST(x AS TEXT) FROM %s x", tables[t]);
        struct op_db_stmt *st = op_db_prepare(db, sql);
        while (st && op_db_step(st) == OP_DB_ROW) {
            rows++;
            for (int i = 0; i < k->n; i++)
                if (strstr(op_db_col_text(st, 0), k->s[i])) {
                    printf("    secret #%d found in table %s\n", i, tables[t]);
                    hits++;
                }
        }
        if (!st) hits = 1000;
        op_db_finalize(st);
    }
    op_db_close(db);
    return rows ? hits : 1000; /* no rows at all: not the database the test used */
}

/* How many times a remembered secret occurs in the database files of dir (each one printed); on
 * PostgreSQL, in the rows of its schema. */
static inline int t_plaintext_hits(const struct t_secrets *k, const char *dir)
{
    if (t_on_pg()) return t_plaintext_hits_pg(k, dir);
    const char *files[] = {"outpost.db", "outpost.db-wal", "outpost.db-shm"};
    int hits = 0;
    for (int i = 0; i < k->n; i++) {
        for (size_t f = 0; f < 3; f++) {
            char path[400];
            snprintf(path, sizeof(path), "%s/%s", dir, files[f]);
            if (t_file_contains(path, k->s[i])) {
                printf("    secret #%d found in %s\n", i, files[f]);
                hits++;
            }
        }
    }
    return hits;
}

/* POST /api/v2/users/login as who (an e-mail): checks the 201 and the session token's shape and remembers
 * its secret in k. Returns the token (the caller frees it) or NULL; *cookie (when given) tells whether the
 * session cookie was set. */
static inline char *t_login(struct op_primary *p, struct t_secrets *k, const char *who, const char *password,
                            bool *cookie)
{
    char body[300];
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"%s\"}", who, password);
    struct t_resp r = t_call(p, "POST", "/api/v2/users/login", body, NULL);
    const char *tok = t_str(r.json, "session_token");
    char *out = tok ? strdup(tok) : NULL;
    CHECK(r.status == 201 && out && strlen(out) == 33 && out[10] == '-', "login as %s -> 201 session token",
          who);
    if (cookie) *cookie = strstr(r.headers, "Set-Cookie: coder_session_token=") != NULL;
    t_free(&r);
    t_remember(k, out ? out + 11 : NULL);
    return out;
}

static inline int t_rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* Removes dir and everything below it. */
static inline void t_rm_rf(const char *dir)
{
    nftw(dir, t_rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

/* Opens a primary on a new directory made from the mkdtemp template dir (rewritten in place), with the
 * given config (data_dir is set here; kdf_iterations defaults to 1000 for speed). NULL, with the reason
 * printed as a failure, when it cannot. */
static inline struct op_primary *t_open(char *dir, struct op_primary_config *cfg)
{
    if (!mkdtemp(dir)) {
        printf("FAIL mkdtemp %s\n", dir);
        return NULL;
    }
    cfg->data_dir = dir;
    cfg->postgres_url = t_pg_url(dir, true);
    if (!cfg->kdf_iterations) cfg->kdf_iterations = 1000;
    struct op_primary *p = NULL;
    char err[256] = "";
    if (op_primary_open(cfg, &p, err, sizeof(err)) != 0) {
        printf("FAIL open: %s\n", err);
        return NULL;
    }
    return p;
}

#endif
