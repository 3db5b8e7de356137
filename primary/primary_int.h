/*
 * primary/primary_int.h — internals shared by the files of primary/ only (store, api, auth, proxies,
 * keys, health). Not to be included outside primary/ (tests excepted).
 */
#ifndef OP_PRIMARY_INT_H
#define OP_PRIMARY_INT_H

#include <cjson/cJSON.h>
#include "db/db.h"

#include "primary/crypto.h"
#include "primary/primary.h"
#include "region/region.h"
#include "util/clock.h"

#define OP_PRIMARY_VERSION    "v" OP_VERSION "+outpost"
#define OP_SESSION_LIFETIME_S (24 * 3600)
/* codersdk's answer for a resource that does not exist or that the caller may not see. */
#define OP_NOT_FOUND_MSG "Resource not found or you do not have access to this resource"

struct op_health;

struct op_primary {
    struct op_db *db;
    char *data_dir;
    char *access_url; /* without trailing '/' */
    char
        *wildcard_host; /* the app hostname pattern, the access URL's port appended (Coder does); "" = none */
    uint64_t health_interval_ms;
    uint32_t kdf_iterations;
    char deployment_id[OP_UUID_STR_LEN + 1];
    struct op_health *health;
    uint64_t next_rotate_ms;
    uint64_t agent_heartbeat_ms;       /* how often agents report; missing 2 windows = disconnected */
    uint64_t agent_connect_timeout_ms; /* default for new agents: never connected by then = timeout */
    struct op_region *region;          /* the primary's own region for agent streams (region/) */
    struct op_engine *engine;          /* while running: retires the region's old key sets */
    uint64_t next_region_keys_ms;
    uint8_t region_keys_digest[64]; /* of the key set last given to the region */
    bool disable_path_apps, allow_path_app_sharing, allow_path_app_site_owner; /* from the config */
    uint32_t app_token_lifetime_s;      /* of signed app and terminal tokens; from the config, never 0 */
    struct op_region_app_conf app_conf; /* workspace apps in the primary's own region (primary.c) */
    /* replicas.c: this process as one replica of the deployment */
    char replica_id[OP_UUID_STR_LEN + 1];
    char *relay_url; /* where the other replicas and agents reach this one (--derp-server-relay-url); NULL =
                        the access URL */
    bool replicated; /* PostgreSQL: other replicas may share the database */
    bool lease_held; /* this replica does the once-only work (health checks, key rotation, clean-up) */
    bool db_down;    /* the database connection was lost; requests answer 503 until it is back */
    uint64_t next_beat_ms, next_lease_ms, next_reconnect_ms; /* monotonic */
    uint64_t db_latency_us;                                  /* of the last heartbeat write */
};

/* ---- replicas.c: replicas, the lease, the database connection ---- */
/* Registers this process as a replica (a new id) and, on SQLite, takes the lease. 0 or -EIO. */
int op_replicas_start(struct op_primary *p);
/* Marks this replica stopped (at a clean exit). */
void op_replicas_stop(struct op_primary *p);
/* Heartbeat, lease attempts and reconnection; called on every tick. */
void op_replicas_tick(struct op_primary *p);
/* After a database operation failed: notes a lost connection (the lease goes with it). */
void op_replicas_note_db(struct op_primary *p);
/* False while the database connection is down and could not be made again (tried at most once a second). */
bool op_replicas_db_ok(struct op_primary *p);
/* Adds "replicas" (the live primary replicas with their relay URLs) to the manifest's primary region, so that
 * an agent keeps a control connection on each (PostgreSQL only; with one store file there is one replica). */
void op_replicas_manifest(struct op_primary *p, cJSON *region);
/* codersdk.Replica of the current row of a statement selecting id, hostname, created_at, relay_address,
 * region_id, error, database_latency from replicas (a primary's or a proxy's). */
cJSON *op_replica_json(struct op_db_stmt *st);
/* GET /api/v2/replicas: the live primary replicas. */
void op_api_replicas(struct op_primary *p, struct op_app_response *resp);

/* ---- store.c: SQLite ---- */
/* Opens or creates the database file (mode 0600), sets WAL, foreign keys and a 5 s busy timeout, and applies
 * pending migrations. 0, or a negative errno with a reason in err. */
int op_store_open(struct op_primary *p, const char *path, char *err, size_t errlen);
/* Closes the database (idempotent). */
void op_store_close(struct op_primary *p);
/* BEGIN IMMEDIATE / COMMIT / ROLLBACK; 0 or -EIO. */
int op_store_begin(struct op_primary *p);
int op_store_commit(struct op_primary *p);
void op_store_rollback(struct op_primary *p);
/* Prepares sql; NULL on failure (logged). */
struct op_db_stmt *op_store_prepare(struct op_primary *p, const char *sql);
/* The first row of sql (its one "?" bound to key) as JSON, made by row_json; NULL when there is no row or on
 * a database error. */
cJSON *op_store_row_json(struct op_primary *p, const char *sql, const char *key,
                         cJSON *(*row_json)(struct op_primary *p, struct op_db_stmt *st));
/* site_config key/value: get copies into out (returns 0, -ENOENT, -EIO); set upserts (caller's tx). */
int op_store_get_config(struct op_primary *p, const char *key, char *out, size_t outlen);
int op_store_set_config(struct op_primary *p, const char *key, const char *value);
/* Deletes expired sessions and replicas not heard from for 30 minutes (one transaction). 0 or -EIO. */
int op_store_gc(struct op_primary *p);

/* ---- api.c: responses and request helpers ---- */
void op_api_error(struct op_app_response *resp, int status, const char *message, const char *detail);
/* Answers a failed lookup or access check: 404 (OP_NOT_FOUND_MSG) for -ENOENT, else 500 "Internal error.". */
void op_api_lookup_error(struct op_app_response *resp, int rc);
/* Ends the transaction of a change: commits when rc is 0. Otherwise, or when the commit fails, rolls back and
 * answers 500 with message (the detail: the database's error message when db_detail, else none) and
 * returns false. */
bool op_api_commit(struct op_primary *p, int rc, struct op_app_response *resp, const char *message,
                   bool db_detail);
/* Error with one validation {field, detail}. */
void op_api_validation(struct op_app_response *resp, int status, const char *message, const char *field,
                       const char *detail);
/* Serialises obj (consumed) as the body with the status. */
void op_api_json(struct op_app_response *resp, int status, cJSON *obj);
/* Parses the request body as a JSON object; on failure answers 400 and returns NULL. */
cJSON *op_api_body_object(const struct op_app_request *req, struct op_app_response *resp);
/* Value of field name in an application/x-www-form-urlencoded text (a query or a form body),
 * percent-decoded ('+' = space) into out; returns 0, -ENOENT, -ENOSPC. */
int op_api_form_value(op_span_t form, const char *name, char *out, size_t outlen);
/* String field of a JSON object: NULL if absent; sets *bad when present but not a string. */
const char *op_json_str(const cJSON *obj, const char *name, bool *bad);
/* Query parameter value, percent-decoded into out; returns 0, -ENOENT, -ENOSPC. */
int op_api_query(const struct op_app_request *req, const char *name, char *out, size_t outlen);
/* True if s is a valid Coder-style name: [a-zA-Z0-9]+(-[a-zA-Z0-9]+)*, at most 32 characters. */
bool op_name_valid(const char *s);

/* ---- auth.c: users and sessions ---- */
#define OP_API_KEY_LEN 33 /* "<10 alphanumerics>-<22 alphanumerics>" */
struct op_user {
    char id[OP_UUID_STR_LEN + 1];
    char username[64];
    char email[256];
    bool owner;
    bool app_connect;       /* authenticated by an application_connect-scoped key (app-token issuance only) */
    int64_t key_expires_ms; /* when the key that authenticated expires (after any sliding refresh) */
};
/* Resolves the session of the request (scope "all" only); on failure answers 401 and returns false. */
bool op_auth_session(struct op_primary *p, const struct op_app_request *req, struct op_app_response *resp,
                     struct op_user *user);
/* Why op_auth_token refused a token: the codersdk message and detail of the 401. */
struct op_auth_why {
    const char *message;
    char detail[128];
};
/* Checks an API key: 0 with user filled; -EACCES when it is malformed, unknown, wrong, expired, of a
 * suspended user, or application_connect-scoped while app_connect_ok is false (why says which); -EIO. A
 * scope "all" key's expiry slides (at most one write a minute). */
int op_auth_token(struct op_primary *p, const char *token, bool app_connect_ok, struct op_user *user,
                  struct op_auth_why *why);
/* The session token of a request: Coder-Session-Token header, coder_session_token cookie, then (query_ok)
 * the query parameter of that name. Its length (copied into out), 0 when absent. */
size_t op_session_token(const struct op_app_request *req, char *out, size_t outlen, bool query_ok);
/* Inserts an API key of user_id with scope ("all" or "application_connect"), lifetime_s (for the sliding
 * refresh) and first expiry, in its own transaction; token receives "<id>-<secret>". 0 or -EIO. */
int op_api_key_create(struct op_primary *p, const char *user_id, const char *scope, int64_t lifetime_s,
                      int64_t expires_ms, char token[OP_API_KEY_LEN + 1]);
/* Password sign-in of who (e-mail or username, case-insensitive): 0 with a new session token; -EACCES
 * (wrong credentials or suspended; *message for the 401) or -EIO (*message for the 500). */
int op_login_password(struct op_primary *p, const char *who, const char *password,
                      char token[OP_API_KEY_LEN + 1], const char **message);
/* Adds "Set-Cookie: coder_session_token=<token>; Path=/; Max-Age; HttpOnly; SameSite=Lax[; Secure]". */
void op_session_cookie(struct op_app_response *resp, const char *token, bool tls);
/* GET /api/v2/users/first: 200 when the first user exists, 404 otherwise. */
void op_api_users_first_get(struct op_primary *p, struct op_app_response *resp);
/* POST /api/v2/users/first: creates the first user as an owner (201), 409 once one exists, 400 on bad input.
 */
void op_api_users_first_post(struct op_primary *p, const struct op_app_request *req,
                             struct op_app_response *resp);
/* POST /api/v2/users/login: email or username + password -> 201 {"session_token"} and the session cookie. */
void op_api_users_login(struct op_primary *p, const struct op_app_request *req, struct op_app_response *resp);
/* GET /api/v2/users/me: the authenticated user. */
void op_api_users_me(struct op_primary *p, const struct op_user *u, struct op_app_response *resp);
/* POST /api/v2/users/logout: deletes the session's key and expires the cookie. */
void op_api_users_logout(struct op_primary *p, const struct op_app_request *req,
                         struct op_app_response *resp);
/* True if e looks like an e-mail address (one '@', something on each side, no spaces). */
bool op_email_valid(const char *e);
/* Hashes a password into "pbkdf2-sha256$<iter>$<salt hex>$<hash hex>" (out >= 160 bytes). 0 or -errno. */
int op_password_hash(const char *password, uint32_t iterations, char *out, size_t outlen);
/* Constant-time check of password against a stored encoded hash. */
bool op_password_verify(const char *password, const char *encoded);

/* ---- proxies.c: admin and proxy-facing workspace proxy API ---- */
struct op_proxy_auth {
    char id[OP_UUID_STR_LEN + 1];
    char name[64];
};
/* Validates Coder-External-Proxy-Token; on failure answers 401 and returns false. */
bool op_auth_proxy(struct op_primary *p, const struct op_app_request *req, struct op_app_response *resp,
                   struct op_proxy_auth *proxy);
/* GET /api/v2/workspaceproxies (owners): RegionsResponse[WorkspaceProxy], the synthetic primary first. */
void op_api_proxies_list(struct op_primary *p, struct op_app_response *resp);
/* GET /api/v2/regions (any user): RegionsResponse[Region] without deleted and DERP-only proxies. */
void op_api_regions(struct op_primary *p, struct op_app_response *resp);
/* POST /api/v2/workspaceproxies: 201 {"proxy","proxy_token"}; 400 reserved/invalid name; 409 duplicate. */
void op_api_proxy_create(struct op_primary *p, const struct op_app_request *req,
                         struct op_app_response *resp);
/* GET /api/v2/workspaceproxies/{id|name|primary|deployment id}. */
void op_api_proxy_get(struct op_primary *p, const char *ref, struct op_app_response *resp);
/* PATCH: name, display_name, icon, regenerate_token (the new token is returned once). */
void op_api_proxy_patch(struct op_primary *p, const char *ref, const struct op_app_request *req,
                        struct op_app_response *resp);
/* DELETE: soft delete (the token stops working), 400 for the primary. */
void op_api_proxy_delete(struct op_primary *p, const char *ref, struct op_app_response *resp);
/* POST /me/register: records URL, wildcard, DERP flags, version and the replica (one transaction); 201 with
 * mesh key, region id, DERP map and live siblings; 500 for a stopped replica. Forces a health refresh. */
void op_api_proxy_register(struct op_primary *p, const struct op_proxy_auth *px,
                           const struct op_app_request *req, struct op_app_response *resp);
/* A live replica of a proxy: registered within the last 3 heartbeats (15 s) and not stopped. url is the
 * replica's relay address (--derp-server-relay-url), or the proxy's access URL when it sent none. */
struct op_replica_ref {
    char id[OP_UUID_STR_LEN + 1];
    char url[512];
};
#define OP_REPLICAS_MAX 16
/* Fills out (at most max, oldest first, URLs without trailing slashes, each URL once) with the live replicas
 * of proxy_id. Returns the count (0 on a database error). *no_relay (if not NULL) gets the id of a live
 * replica without a relay address when the proxy has several live replicas ("" otherwise): agents reach
 * that one only through the access URL. */
int op_proxy_live_replicas(struct op_primary *p, const char *proxy_id, const char *access_url,
                           struct op_replica_ref *out, int max, char *no_relay);
/* POST /me/deregister: marks the replica stopped (204); 404 unknown, 500 already stopped. */
void op_api_proxy_deregister(struct op_primary *p, const struct op_proxy_auth *px,
                             const struct op_app_request *req, struct op_app_response *resp);
/* POST /me/app-stats: stores the batch (204). */
void op_api_proxy_app_stats(struct op_primary *p, const struct op_proxy_auth *px,
                            const struct op_app_request *req, struct op_app_response *resp);
/* Generates a proxy secret: 64 alphanumerics + NUL into secret, and its SHA-256 into hash. 0 or -errno. */
int op_proxy_new_secret(char secret[65], uint8_t hash[OP_SHA256_LEN]);

/* ---- apps.c, apps_auth.c: workspace app authorization, the app auth redirect, the login page ---- */
#define OP_APP_REDIRECT_URI_MAX 2048 /* the longest redirect_uri the auth redirect takes */
/* A growable string (malloc'd, NUL-terminated); oom sticks after the first failed growth. */
struct op_strbuf {
    char *p;
    size_t len, cap;
    bool oom;
};
void op_sb_add(struct op_strbuf *b, const char *s, size_t n);
void op_sb_str(struct op_strbuf *b, const char *s);
void op_sb_html(struct op_strbuf *b, const char *s);   /* HTML-escaped (&<>"') */
void op_sb_urlenc(struct op_strbuf *b, const char *s); /* percent-encoded as a query component */
void op_sb_free(struct op_strbuf *b);
/* Answers status with a self-contained HTML page: title, body_html (trusted markup) and a link back to the
 * dashboard (the access URL). */
void op_html_page_raw(struct op_primary *p, struct op_app_response *resp, int status, const char *title,
                      const char *body_html);
/* The same with a plain-text message (escaped). */
void op_html_page(struct op_primary *p, struct op_app_response *resp, int status, const char *title,
                  const char *message);
/* Answers status (303, 307) with Location and a one-link HTML body; 500 when the header does not fit. */
void op_redirect(struct op_app_response *resp, int status, const char *location);
/* POST /api/v2/workspaceproxies/me/issue-signed-app-token (proxy already authenticated). */
void op_api_issue_app_token(struct op_primary *p, const struct op_app_request *req,
                            struct op_app_response *resp);
struct op_wsapp_token;
/* Signs the claims of t as a compact JWS with the current workspace_apps_token key. 0 or -errno. */
int op_primary_sign_app_token(struct op_primary *p, const struct op_wsapp_token *t, char *out, size_t outlen);
/* POST /api/v2/applications/reconnecting-pty-signed-token (session authenticated, pty.c): a terminal app
 * token for a proxy's PTY URL. */
void op_api_pty_token(struct op_primary *p, const struct op_user *u, const struct op_app_request *req,
                      struct op_app_response *resp);
/* The primary's own GET /api/v2/workspaceagents/{agent}/pty (pty.c, session authenticated): the access
 * check on the control thread; on success resp carries the grant (op_app_response.grant) the region routes
 * with. */
void op_api_pty_authorize(struct op_primary *p, const struct op_user *u, const char *agent_id,
                          struct op_app_response *resp);
/* GET /api/v2/applications/auth-redirect?redirect_uri=... (§6.7 steps 4-6). */
void op_api_app_auth_redirect(struct op_primary *p, const struct op_app_request *req,
                              struct op_app_response *resp);
/* GET /login (the form) and POST /login (form fields email or username, password, redirect). */
void op_api_login_page(struct op_primary *p, const struct op_app_request *req, struct op_app_response *resp);
void op_api_login_post(struct op_primary *p, const struct op_app_request *req, struct op_app_response *resp);

/* ---- web.c: the dashboard (docs/dashboard.md) ---- */
struct op_web_asset;
/* The embedded file of web/ with that name ("app.css"), or NULL. */
const struct op_web_asset *op_web_asset_named(const char *name);
/* Answers the dashboard's routes (the hashed files under /assets/, the page routes); false for any other
 * path. path is percent-decoded, without trailing '/'. */
bool op_web_route(struct op_primary *p, const char *path, const struct op_app_request *req,
                  struct op_app_response *resp);
/* A server-rendered page in the dashboard's look and with its headers: title and body_html (trusted). */
void op_web_page(struct op_primary *p, struct op_app_response *resp, int status, const char *title,
                 const char *body_html);
/* The headers of every dashboard page: Content-Security-Policy, nosniff, frame and referrer policies,
 * Cache-Control: no-cache. */
void op_web_headers(struct op_primary *p, struct op_app_response *resp);
/* True when some user exists (or the database cannot tell). */
bool op_web_has_users(struct op_primary *p);
/* The same-origin rule for state-changing requests (not GET/HEAD/OPTIONS) that a browser could make: when
 * the session comes from the cookie (or is_login: a sign-in endpoint), Sec-Fetch-Site, if sent, must be
 * same-origin and Origin, if sent, the access URL's origin. Header-token clients always pass. */
bool op_web_csrf_ok(struct op_primary *p, const struct op_app_request *req, bool is_login);

/* ---- keys.c: crypto keys for app tokens ---- */
/* Ensures every feature has a valid key and rotates keys near expiry (own transaction). 0 or -EIO. */
int op_keys_rotate(struct op_primary *p);
/* GET /me/crypto-keys?feature=...: every not-yet-deleted key of the feature (rotating first). */
void op_api_crypto_keys(struct op_primary *p, const struct op_app_request *req, struct op_app_response *resp);

/* ---- health.c: proxy health checker ---- */
enum op_health_status {
    OP_HEALTH_UNKNOWN = 0,
    OP_HEALTH_UNREGISTERED,
    OP_HEALTH_OK,
    OP_HEALTH_UNHEALTHY,
    OP_HEALTH_UNREACHABLE,
};
/* "unknown", "unregistered", "ok", "unhealthy" or "unreachable". */
const char *op_health_status_name(enum op_health_status s);
/* Allocates the checker and its libcurl multi handle; the first round starts at the first tick. 0 or -ENOMEM.
 */
int op_health_init(struct op_primary *p);
/* Aborts probes in flight and frees the cache (NULL-safe). */
void op_health_free(struct op_primary *p);
/* Takes the verdicts stored by the replica holding the lease (a replica without it serves those; a new
 * holder starts from them). */
void op_health_load(struct op_primary *p);
/* One non-blocking step of the checker (see health.c for the round state machine). */
void op_health_tick(struct op_primary *p);
/* Adds the cached status of proxy id to a JSON object as "status": {status, report, checked_at}.
 * A proxy with an empty url is always unregistered. Returns the status. */
enum op_health_status op_health_status_json(struct op_primary *p, const char *id, const char *url,
                                            cJSON *obj);
/* The cached status of a proxy (OP_HEALTH_UNKNOWN if never checked). */
enum op_health_status op_health_get(const struct op_primary *p, const char *id);

/* ---- users.c: users besides the first owner ---- */
/* Resolves "me", a user id or a username (case-insensitive) into out. 0, -ENOENT or -EIO. */
int op_user_lookup(struct op_primary *p, const struct op_user *self, const char *ref, struct op_user *out);
/* Inserts a user (in the caller's transaction) with an already hashed password, as an owner or a member.
 * 0 or -EIO. */
int op_user_insert(struct op_primary *p, const char *id, const char *username, const char *email,
                   const char *name, const char *hashed, bool owner);
/* codersdk.User of user id (NULL if it does not exist or on a database error). */
cJSON *op_user_json(struct op_primary *p, const char *id);
/* POST /api/v2/users (owners): 201 User; 400 validation, 409 duplicate. */
void op_api_users_create(struct op_primary *p, const struct op_user *u, const struct op_app_request *req,
                         struct op_app_response *resp);
/* GET /api/v2/users: {"users":[User...],"count":N}, ordered by username. */
void op_api_users_list(struct op_primary *p, struct op_app_response *resp);
/* GET /api/v2/users/{user|me}. */
void op_api_user_get(struct op_primary *p, const struct op_user *u, const char *ref,
                     struct op_app_response *resp);
/* PUT /api/v2/users/{user}/roles {"roles":["owner"]|[]} (owners, not on themselves): 200 User. */
void op_api_user_roles(struct op_primary *p, const struct op_user *u, const char *ref,
                       const struct op_app_request *req, struct op_app_response *resp);
/* DELETE /api/v2/users/{user} (owners): 200; 403 for oneself, 417 while the user owns workspaces. */
void op_api_user_delete(struct op_primary *p, const struct op_user *u, const char *ref,
                        struct op_app_response *resp);

/* ---- workspaces.c: external workspaces and their agents ---- */
#define OP_AGENT_TOKEN_SECRET_LEN 64
#define OP_AGENT_TOKEN_LEN        (OP_UUID_STR_LEN + 1 + OP_AGENT_TOKEN_SECRET_LEN)
#define OP_MAX_AGENTS_PER_WS      16
/* Access of a user to a workspace: 0 (owner of it, or a site owner), -ENOENT (absent or not visible: the
 * caller answers 404 either way), -EIO. owner_id may be NULL. */
int op_workspace_access(struct op_primary *p, const struct op_user *u, const char *ws_id, char *owner_id);
/* The agent's status now, by Coder's rules (docs/coder-compat.md): "connecting" until the first contact
 * ("timeout" once connect_timeout_ms passed since creation without one), "disconnected" after an explicit
 * disconnect or when the last contact is older than two heartbeat windows, else "connected". */
const char *op_agent_status(const struct op_primary *p, int64_t now, int64_t created, int64_t timeout_ms,
                            int64_t first, int64_t last, int64_t disconnected);
/* WorkspaceAgent JSON of the row selected by agent id (NULL if absent). */
cJSON *op_agent_json(struct op_primary *p, const char *agent_id);
/* POST /api/v2/users/{user}/workspaces: 201 Workspace plus "agent_tokens" (shown once). */
void op_api_workspace_create(struct op_primary *p, const struct op_user *u, const char *user_ref,
                             const struct op_app_request *req, struct op_app_response *resp);
/* GET /api/v2/workspaces[?q=owner:<user>|owner=<user>]: {"workspaces":[...],"count":N}, visible ones only. */
void op_api_workspaces_list(struct op_primary *p, const struct op_user *u, const struct op_app_request *req,
                            struct op_app_response *resp);
/* GET /api/v2/users/{user}/workspace/{name}; GET/DELETE /api/v2/workspaces/{id}. 404 when not visible. */
void op_api_workspace_by_name(struct op_primary *p, const struct op_user *u, const char *user_ref,
                              const char *name, struct op_app_response *resp);
void op_api_workspace_get(struct op_primary *p, const struct op_user *u, const char *id,
                          struct op_app_response *resp);
void op_api_workspace_delete(struct op_primary *p, const struct op_user *u, const char *id,
                             struct op_app_response *resp);
/* GET /api/v2/workspaceagents/{id} and .../{id}/listening-ports. */
void op_api_agent_get(struct op_primary *p, const struct op_user *u, const char *id,
                      struct op_app_response *resp);
/* ---- port_share.c: workspace port sharing ---- */
/* GET/POST/DELETE /api/v2/workspaces/{ws_id}/port-share (the owner or a site owner; 404 otherwise). */
void op_api_port_share(struct op_primary *p, const struct op_user *u, const char *ws_id,
                       const struct op_app_request *req, struct op_app_response *resp);
/* The share level of (workspace, agent name case-insensitively, port) into level. 0, -ENOENT (no share:
 * the port is "owner"), -EIO. */
int op_port_share_level(struct op_primary *p, const char *ws_id, const char *agent_name, int port,
                        char *level, size_t levellen);
void op_api_agent_ports(struct op_primary *p, const struct op_user *u, const char *id,
                        struct op_app_response *resp);
/* Makes a new agent token "<agent id>:<64 alphanumerics>" and the SHA-256 of its secret. 0 or -errno. */
int op_agent_new_token(const char *agent_id, char token[OP_AGENT_TOKEN_LEN + 1], uint8_t hash[OP_SHA256_LEN]);

/* ---- agents.c: the agent-facing API, agent credentials and connect tokens ---- */
struct op_agent_auth {
    char id[OP_UUID_STR_LEN + 1];
    char name[64];
    char workspace_id[OP_UUID_STR_LEN + 1];
    char workspace_name[64];
    char owner_id[OP_UUID_STR_LEN + 1];
    char owner_name[64];
};
/* Validates the agent token in Coder-Session-Token; on failure answers 401 and returns false. */
bool op_auth_agent(struct op_primary *p, const struct op_app_request *req, struct op_app_response *resp,
                   struct op_agent_auth *a);
/* GET /api/v2/workspaceagents/me/manifest: identity and the regions to dial (primary + healthy proxies). */
void op_api_agent_manifest(struct op_primary *p, const struct op_agent_auth *a, struct op_app_response *resp);
/* POST /api/v2/workspaceagents/me/report: apps, listening ports, regions, lifecycle (204); counts as contact.
 */
void op_api_agent_report(struct op_primary *p, const struct op_agent_auth *a,
                         const struct op_app_request *req, struct op_app_response *resp);
/* POST /api/v2/workspaceagents/me/credential: {"credential","expires_at"}, an HS512 JWS for the regions. */
void op_api_agent_credential(struct op_primary *p, const struct op_agent_auth *a,
                             struct op_app_response *resp);
/* POST /api/v2/workspaceagents/{id}/connect-token {"port","region"}: {"signed_token"} for the caller. */
void op_api_agent_connect_token(struct op_primary *p, const struct op_user *u, const char *agent_id,
                                const struct op_app_request *req, struct op_app_response *resp);
/* POST /api/v2/workspaces/{id}/external-agent/{agent}/credentials: a new token replaces the old one. */
void op_api_agent_regen_token(struct op_primary *p, const struct op_user *u, const char *ws_id,
                              const char *agent_name, struct op_app_response *resp);
/* Parses tok and checks its MAC with the workspace_apps_token key its kid names (one that can verify):
 * 0, the op_jws_parse errors, -ENOKEY (no such key, or deleted), -EPERM (bad MAC), -EIO. The claims are
 * then read with proto/agent_token.h. */
struct op_jws;
int op_keys_verify_jws(struct op_primary *p, const char *tok, size_t len, struct op_jws *out);
/* The current signing key of workspace_apps_token: its sequence and 64-byte secret. 0, -ENOENT, -EIO. */
/* The newest key of feature that can be used now (starts_at passed, not deleted), rotating once when there
 * is none: its sequence and keylen secret bytes. 0, -ENOENT, -EIO. */
int op_keys_newest(struct op_primary *p, const char *feature, int64_t *seq, uint8_t *key, size_t keylen);
int op_keys_signing(struct op_primary *p, int64_t *seq, uint8_t key[64]);

#endif
