/*
 * region/apps_int.h — what region/apps.c (the worker side of workspace apps) and region/apps_slow.c (the
 * control thread's slow path) share: which app a request names, and the HTML pages both answer with.
 */
#ifndef OP_REGION_APPS_INT_H
#define OP_REGION_APPS_INT_H

#include "region/region_int.h"
#include "wsapp/appurl.h"

#define APP_SIGNED_COOKIE  "coder_signed_app_token"
#define APP_PATH_COOKIE    "coder_path_app_session_token"
#define APP_SMUGGLE_PARAM  "coder_application_connect_api_key_35e783"
#define APP_SIGNED_COOKIES 4 /* signed-token cookies tried per request */

enum app_kind {
    APP_NONE = 0, /* not an app request */
    APP_REQ,      /* an app request: m->req, m->rest_off */
    APP_ANSWER,   /* answered at once: m->status with an HTML page (title, msg) or a redirect (location) */
};

struct app_match {
    struct op_wsapp_req req; /* normalised */
    size_t rest_off;         /* path apps: where the path under the app starts (0 for subdomain apps) */
    bool on_access_host;     /* the Host is the role's access host (path apps there) */
    int status;
    const char *title, *msg; /* APP_ANSWER page; msg NULL with location set = a redirect */
    bool json;               /* APP_ANSWER as {"message": msg} */
    char location[OP_WSAPP_BASE_MAX + 1100];
};

/* Decides what a request for host/path/query names (§6.2 host-handling order, then the path form). Pure:
 * any thread. */
enum app_kind op_region_app_match(const struct op_region_app_conf *conf, op_span_t host, op_span_t path,
                                  op_span_t query, struct app_match *m);

/* A self-contained HTML page (title, message escaped, a link to dashboard) into out; returns its length. */
size_t op_region_app_page(char *out, size_t outlen, const char *dashboard, const char *title,
                          const char *msg);

/* The value of cookie name in the request's Cookie headers: the idx-th occurrence (0 first). */
bool op_region_app_cookie(const op_span_t *cookie_hdrs, int n, const char *name, int idx, op_span_t *out);

/* The value of a query parameter (raw, not decoded). */
bool op_region_app_query(op_span_t q, const char *name, op_span_t *out);

/* Target of an app URL "http://host[:port][/...]": "host:port" into out (port 80 when absent). 0, -EINVAL,
 * -EPROTONOSUPPORT (https: the region cannot speak TLS to the app). */
int op_region_app_target(const char *app_url, char *out, size_t outlen);

/* Equality of a host header (port and trailing dots ignored, case-insensitive) and a URL's host. */
bool op_region_app_host_is(op_span_t host, const char *url);

/* True when host (any case) is an app's own host under the region's wildcard, not its access host: a
 * region endpoint's path there is the app's path. */
bool op_region_on_app_host(const struct op_region_app_conf *conf, op_span_t host);

/* Makes out a dial route to agent through one of its parked streams (the broker's spare, or a wait for the
 * next one; failures answer a 502/503 page): kind and the dial callbacks. The preamble and the request
 * rewriting are the caller's. Worker thread, inside the route function. */
void op_region_dial_route(struct op_region *r, const char *agent, struct op_route *out);
/* The keep-alive key of an upstream leg: FNV-1a over the fields, each followed by a separator, so that
 * ("ab","c") and ("a","bc") differ. Start with h = OP_REGION_FNV_BASIS. */
#define OP_REGION_FNV_BASIS 0xcbf29ce484222325ull
uint64_t op_region_fnv(uint64_t h, const char *s);
/* The origin-form target of req split at '?' (query empty when there is none). */
void op_region_split_target(const struct op_h1_request *req, op_span_t *path, op_span_t *query);
/* CORS of subdomain apps (region/apps_cors.c). */
#define APP_CORS_ORIGIN_MAX  255 /* longer Origins are never allowed */
#define APP_CORS_HEADERS_MAX 150 /* a longer Access-Control-Request-Headers gets no Allow-Headers */
enum app_cors {
    APP_CORS_NONE = 0,  /* no CORS headers: not a subdomain app, no Origin, or an Origin not allowed */
    APP_CORS_ALLOWED,   /* an allowed Origin: extra holds Allow-Origin, -Credentials, Vary: Origin */
    APP_CORS_PREFLIGHT, /* OPTIONS with Access-Control-Request-Method on a subdomain app: answer 204 with
                         * extra (the Allow-* headers only for an allowed Origin and method) */
};
/* Whether origin ("scheme://host[:port]") is a subdomain app URL under conf's wildcard of want's username
 * (want a subdomain app request). Pure. */
bool op_region_app_cors_origin_ok(const struct op_region_app_conf *conf, op_span_t origin,
                                  const struct op_wsapp_req *want);
/* The CORS decision for req to the app want, and the header lines (each ending CRLF) into extra (cap >=
 * 512 holds any). Pure. */
enum app_cors op_region_app_cors(const struct op_region_app_conf *conf, const struct op_h1_request *req,
                                 const struct op_wsapp_req *want, char *extra, size_t cap);
/* App usage per worker (region/app_stats.c): the worker bumps t[cur] only, the control thread flips cur
 * and reads the other table once busy shows no bump in progress. */
#define REGION_STAT_SLOTS  128
#define REGION_STAT_PROBES 16
struct app_stat {
    bool used;
    uint8_t access; /* enum op_wsapp_access */
    uint64_t hash, requests;
    int64_t first_ms, last_ms; /* wall clock of the first and last request */
    char user_id[37], workspace_id[37], agent_id[37], slug[OP_WSAPP_NAME_MAX + 1];
};
struct app_stat_table {
    struct app_stat slot[REGION_STAT_SLOTS];
    uint64_t dropped; /* requests not counted: no free slot */
};
struct app_stat_worker {
    _Atomic uint64_t busy; /* odd while the worker bumps */
    _Atomic int cur;
    _Atomic bool active; /* the worker has counted at least once */
    struct app_stat_table t[2];
} __attribute__((aligned(64)));
/* Counts one proxied request of the token's visitor and app on worker (its index). Worker thread. */
struct op_wsapp_token;
void op_region_app_stat(struct op_region *r, int worker, const struct op_wsapp_token *t);

/* The Coder cookies a workspace (an app or the agent's terminal) never sees (§6.8); NULL-terminated. */
extern const char *const op_region_coder_cookies[];

#endif
