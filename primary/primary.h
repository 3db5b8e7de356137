/*
 * primary/primary.h — the primary control plane (`outpost server`): users and sessions, workspace
 * proxies and their tokens, the proxy-facing API (register, deregister, crypto keys, app stats) and
 * the proxy health checker. State lives in SQLite under the data dir; health statuses live in memory.
 *
 * Threading: every function here runs on the engine's control thread (the handler and the tick are
 * both called there), so the primary needs no locks. The handler may block on SQLite.
 */
#ifndef OP_PRIMARY_H
#define OP_PRIMARY_H

#include <cjson/cJSON.h>

#include "core/common.h"
#include "http/app.h"
#include "runner/runner.h"

#define OP_PRIMARY_DEFAULT_HEALTH_MS          60000u
#define OP_PRIMARY_DEFAULT_KDF_ITER           120000u
#define OP_PRIMARY_DEFAULT_AGENT_HEARTBEAT_MS 15000u  /* agents report this often */
#define OP_PRIMARY_DEFAULT_AGENT_TIMEOUT_MS   120000u /* never connected after this = "timeout" */

struct op_primary_config {
    const char *data_dir;     /* directory holding outpost.db (created 0700 if missing) */
    const char *postgres_url; /* the PostgreSQL database instead of outpost.db; NULL = SQLite */
    const char *relay_url;  /* this replica's own URL for agents and the other replicas; NULL = access URL */
    const char *access_url; /* e.g. "https://coder.example.com"; required */
    const char *wildcard_access_url; /* e.g. "*.coder.example.com"; NULL/"" = none */
    uint64_t health_interval_ms;     /* proxy health probe interval; 0 = 1 minute */
    uint32_t kdf_iterations;         /* PBKDF2 iterations for new passwords; 0 = default (tests lower it) */
    uint64_t agent_heartbeat_ms;     /* agent report interval; 2 missed = disconnected; 0 = 15 s */
    uint64_t agent_connection_timeout_ms; /* default agent connection timeout; 0 = 2 min */
    const char *agent_stream_limits;      /* the region's limits (op_region_limits_parse); NULL = defaults */
    bool disable_path_apps;               /* path apps answer a 403 page (--disable-path-apps) */
    bool allow_path_app_sharing; /* path apps keep their share level (--dangerous-allow-path-app-sharing) */
    bool allow_path_app_site_owner; /* site owners pass others' path apps (--dangerous-...-site-owner-access)
                                     */
    uint32_t app_token_lifetime_s;  /* signed app and terminal tokens (--app-token-lifetime); 0 = 1 minute */
    struct op_listen_opts listen;   /* listeners, used by op_cmd_server */
};

struct op_primary;

/* True when url names a PostgreSQL server (postgres:// or postgresql://). */
bool op_primary_is_postgres_url(const char *url);
/* Copies the SQLite database at sqlite_path (an outpost.db, migrated first to this build's schema) into
 * the PostgreSQL database at pg_url, which must hold no deployment yet, in one transaction. 0 with a
 * summary in msg ("copied N rows of M tables ..."), or a negative errno with the reason in msg. */
int op_primary_copy_sqlite(const char *sqlite_path, const char *pg_url, char *msg, size_t msglen);
/* Opens (creating and migrating if needed) <data_dir>/outpost.db, or the database of postgres_url, and
 * prepares the health checker.
 * On failure returns a negative errno and writes a human-readable reason into err. */
int op_primary_open(const struct op_primary_config *cfg, struct op_primary **out, char *err, size_t errlen);

/* The application handler (op_app_handler_fn): answers one API request; ctx is the struct op_primary. */
void op_primary_handle(void *ctx, const struct op_app_request *req, struct op_app_response *resp);

/* Advances the health checker without blocking (non-blocking libcurl multi) and runs periodic key
 * rotation; call about every 100 ms. */
void op_primary_tick(void *primary);

/* The handler the runner mounts (op_app_handler_fn): the slow path of workspace apps (region/apps_slow.c
 * with op_primary_issue_app_token in-process), everything else op_primary_handle. */
void op_primary_app_handle(void *ctx, const struct op_app_request *req, struct op_app_response *resp);

/* The route mounted before the handler (runner's route hook): the region's agent endpoints on the
 * workers; everything else goes to op_primary_handle. */
void op_primary_route(void *primary, struct op_conn *c, const struct op_h1_request *req,
                      struct op_route *out);
/* The runner's engine hook: the region publishes key sets through the running engine. */
void op_primary_on_engine(void *primary, struct op_engine *e);

/*
 * Workspace app authorization (primary/apps.c): issue_req is the body of
 * POST /api/v2/workspaceproxies/me/issue-signed-app-token ({"app_request":{...},"path_app_base_url",
 * "app_hostname","app_path","app_query","session_token"}); real_ip the visitor's address (logged). Resolves
 * user, workspace, agent and app, authorizes the session by the share level rules and fills resp with the
 * answer to relay to the browser. Returns 0 when resp is 201 {"signed_token_str":"<JWS>"} (HS512 with the
 * newest workspace_apps_token key, claims of wsapp/token.h, 1 minute), otherwise the status of what resp
 * holds instead: a 303 to the auth redirect or the login page, or an HTML page (400 bad port, 403 path apps
 * disabled, 404 not found or not allowed, 502 agent offline), or a JSON 400 for a malformed request, 500.
 * Control thread (may block on SQLite). The endpoint and the primary's own region both call it.
 */
int op_primary_issue_app_token(struct op_primary *p, const cJSON *issue_req, const char *real_ip,
                               struct op_app_response *resp);

/* Forces a health refresh at the next tick (used after create/patch/delete/register/deregister). */
void op_primary_force_health(struct op_primary *p);

/* True while a health round is in progress or a forced refresh is pending (tests use it). */
bool op_primary_health_busy(const struct op_primary *p);

/* Stops probes in flight and closes the database. NULL is allowed. */
void op_primary_close(struct op_primary *p);

/* `outpost server`: parses flags and CODER_* env, opens the primary and runs the engine with it. */
int op_cmd_server(int argc, char **argv);

#endif
