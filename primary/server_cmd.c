/*
 * primary/server_cmd.c — `outpost server`: flags and CODER_* environment (flag > env > default), then
 * the engine with the primary's handler and tick.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "core/log.h"
#include "primary/primary.h"
#include "region/region.h"
#include "util/duration.h"

static const char server_help[] =
    "USAGE:\n"
    "  outpost server [flags]\n"
    "\n"
    "  Start the primary control plane: users, workspace proxies and their health.\n"
    "\n"
    "OPTIONS:\n"
    "      --access-url url, $CODER_ACCESS_URL\n"
    "          The URL that users and workspace proxies use to reach this\n"
    "          primary. Defaults to http://<http-address>.\n"
    "\n"
    "      --agent-connection-timeout duration, $CODER_AGENT_CONNECTION_TIMEOUT (default: 2m)\n"
    "          How long a new workspace agent may take to connect before its\n"
    "          status turns to timeout.\n"
    "\n"
    "      --agent-heartbeat-interval duration, $CODER_AGENT_HEARTBEAT_INTERVAL (default: 15s)\n"
    "          How often workspace agents report; an agent silent for two\n"
    "          intervals is disconnected.\n"
    "\n"
    "      --agent-stream-limits string, $CODER_AGENT_STREAM_LIMITS\n"
    "          Agent stream limits of this region, name=value pairs separated by\n"
    "          commas: agents (1024), control connections per agent (4), spares\n"
    "          wanted per agent (8), max-spares parked per agent (64), waiters per\n"
    "          agent (256), wait for a spare (5s), heartbeat (15s), idle timeout\n"
    "          of a stream (0s = none). E.g. spares=4,wait=3s.\n"
    "\n"
    "      --data-dir path, $CODER_DATA_DIR\n"
    "          Where the database (outpost.db) is kept. Defaults to\n"
    "          $XDG_DATA_HOME/outpost or ~/.local/share/outpost.\n"
    "\n"
    "      --derp-server-relay-url url, $CODER_DERP_SERVER_RELAY_URL\n"
    "          An HTTP URL of this replica that agents and the other replicas can\n"
    "          reach (not the load balancer's): with several replicas on one\n"
    "          PostgreSQL database, agents keep a connection to each. Defaults to\n"
    "          --access-url.\n"
    "\n"
    "      --disable-path-apps bool, $CODER_DISABLE_PATH_APPS\n"
    "          Disable workspace apps that are not served from subdomains.\n"
    "          Path-based apps can make requests to the Coder API and pose a\n"
    "          security risk when the workspace serves malicious JavaScript. This\n"
    "          is recommended for security purposes if a --wildcard-access-url is\n"
    "          configured.\n"
    "\n"
    "      --migrate-from-sqlite path\n"
    "          Copy the embedded SQLite database at path (an outpost.db) into the\n"
    "          empty PostgreSQL database of --postgres-url, then exit.\n"
    "\n"
    "      --postgres-url string, $CODER_PG_CONNECTION_URL\n"
    "          URL of a PostgreSQL database (postgres://user:password@host:port/db)\n"
    "          to keep the deployment in instead of the embedded SQLite file;\n"
    "          several servers on one database are replicas of one deployment.\n"
    "          $CODER_PG_CONNECTION_URL_FILE names a file holding the URL.\n"
    "\n"
    "      --proxy-health-interval duration, $CODER_PROXY_HEALTH_INTERVAL (default: 1m)\n"
    "          The interval in which workspace proxy health is checked.\n"
    "\n"
    "      --wildcard-access-url string, $CODER_WILDCARD_ACCESS_URL\n"
    "          Specifies the wildcard hostname to use for workspace applications\n"
    "          in the form \"*.example.com\".\n"
    "\n"
    "  -v, --verbose bool, $CODER_VERBOSE\n"
    "          Output debug-level logs.\n"
    "\n"
    "DANGEROUS OPTIONS:\n"
    "      --dangerous-allow-path-app-sharing bool, $CODER_DANGEROUS_ALLOW_PATH_APP_SHARING\n"
    "          Allow workspace apps that are not served from subdomains to be\n"
    "          shared. Path-based app sharing is DISABLED by default for security\n"
    "          purposes. Path-based apps can make requests to the Coder API and\n"
    "          pose a security risk when the workspace serves malicious\n"
    "          JavaScript. Path-based apps can be disabled entirely with\n"
    "          --disable-path-apps for further security.\n"
    "\n"
    "      --dangerous-allow-path-app-site-owner-access bool, "
    "$CODER_DANGEROUS_ALLOW_PATH_APP_SITE_OWNER_ACCESS\n"
    "          Allow site-owners to access workspace apps from workspaces they do\n"
    "          not own. Owners cannot access path-based apps they do not own by\n"
    "          default. Path-based apps can make requests to the Coder API and\n"
    "          pose a security risk when the workspace serves malicious\n"
    "          JavaScript. Path-based apps can be disabled entirely with\n"
    "          --disable-path-apps for further security.\n"
    "\n"
    "NETWORKING OPTIONS:\n"
    "      --http-address string, $CODER_HTTP_ADDRESS (default: 127.0.0.1:3000)\n"
    "          HTTP bind address of the server. Unset to disable the HTTP\n"
    "          endpoint.\n"
    "\n"
    "NETWORKING / TLS OPTIONS:\n"
    "      --tls-address host:port, $CODER_TLS_ADDRESS (default: 127.0.0.1:3443)\n"
    "          HTTPS bind address of the server.\n"
    "\n"
    "      --tls-cert-file string-array, $CODER_TLS_CERT_FILE\n"
    "          Path to each certificate for TLS. It requires a PEM-encoded file.\n"
    "          Repeat the flag (or separate with commas) for several certificates.\n"
    "\n"
    "      --tls-enable bool, $CODER_TLS_ENABLE\n"
    "          Whether TLS will be enabled.\n"
    "\n"
    "      --tls-key-file string-array, $CODER_TLS_KEY_FILE\n"
    "          Paths to the private keys for each of the certificates. It\n"
    "          requires a PEM-encoded file.\n"
    "\n"
    "      --tls-min-version string, $CODER_TLS_MIN_VERSION (default: tls12)\n"
    "          Minimum supported version of TLS. Accepted values are \"tls12\"\n"
    "          or \"tls13\".\n";

enum {
    O_ACCESS_URL = 1000,
    O_WILDCARD,
    O_DATA_DIR,
    O_HEALTH,
    O_HTTP,
    O_TLS_ENABLE,
    O_TLS_ADDRESS,
    O_TLS_CERT,
    O_TLS_KEY,
    O_TLS_MIN,
    O_AGENT_HEARTBEAT,
    O_AGENT_LIMITS,
    O_AGENT_TIMEOUT,
    O_DISABLE_PATH_APPS,
    O_PATH_APP_SHARING,
    O_PATH_APP_SITE_OWNER,
    O_APP_TOKEN_LIFETIME,
    O_POSTGRES_URL,
    O_MIGRATE_FROM_SQLITE,
    O_RELAY_URL,
};

static bool parse_bool(const char *s, bool *out)
{
    if (!s || !*s || !strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes")) {
        *out = true;
        return true;
    }
    if (!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "no")) {
        *out = false;
        return true;
    }
    return false;
}

/* The first line of a file holding a secret URL (CODER_PG_CONNECTION_URL_FILE), trailing white space
 * dropped. 0, or -1 with err saying why. */
static int read_url_file(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    bool got = fgets(out, (int)outlen, f) != NULL;
    fclose(f);
    size_t n = got ? strlen(out) : 0;
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' ' || out[n - 1] == '\t'))
        out[--n] = '\0';
    if (!n) {
        snprintf(err, errlen, "%s is empty", path);
        return -1;
    }
    return 0;
}

/* Splits a comma-separated env value into the cert/key list. Returns the count or -1 on overflow. */
static int split_list(char *s, const char **list, int max)
{
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (!*tok) continue;
        if (n == max) return -1;
        list[n++] = tok;
    }
    return n;
}

int op_cmd_server(int argc, char **argv)
{
    static const struct option opts[] = {
        {"access-url", required_argument, NULL, O_ACCESS_URL},
        {"wildcard-access-url", required_argument, NULL, O_WILDCARD},
        {"data-dir", required_argument, NULL, O_DATA_DIR},
        {"proxy-health-interval", required_argument, NULL, O_HEALTH},
        {"agent-heartbeat-interval", required_argument, NULL, O_AGENT_HEARTBEAT},
        {"agent-stream-limits", required_argument, NULL, O_AGENT_LIMITS},
        {"agent-connection-timeout", required_argument, NULL, O_AGENT_TIMEOUT},
        {"disable-path-apps", optional_argument, NULL, O_DISABLE_PATH_APPS},
        {"dangerous-allow-path-app-sharing", optional_argument, NULL, O_PATH_APP_SHARING},
        {"dangerous-allow-path-app-site-owner-access", optional_argument, NULL, O_PATH_APP_SITE_OWNER},
        /* Hidden (not in --help, as in Coder, where the lifetime is a constant): tests shorten it. */
        {"app-token-lifetime", required_argument, NULL, O_APP_TOKEN_LIFETIME},
        {"http-address", required_argument, NULL, O_HTTP},
        {"tls-enable", optional_argument, NULL, O_TLS_ENABLE},
        {"tls-address", required_argument, NULL, O_TLS_ADDRESS},
        {"tls-cert-file", required_argument, NULL, O_TLS_CERT},
        {"tls-key-file", required_argument, NULL, O_TLS_KEY},
        {"tls-min-version", required_argument, NULL, O_TLS_MIN},
        {"postgres-url", required_argument, NULL, O_POSTGRES_URL},
        {"derp-server-relay-url", required_argument, NULL, O_RELAY_URL},
        {"migrate-from-sqlite", required_argument, NULL, O_MIGRATE_FROM_SQLITE},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *access_url = getenv("CODER_ACCESS_URL");
    const char *wildcard = getenv("CODER_WILDCARD_ACCESS_URL");
    const char *data_dir = getenv("CODER_DATA_DIR");
    const char *pg_url = getenv("CODER_PG_CONNECTION_URL"), *migrate_from = NULL;
    const char *relay_url = getenv("CODER_DERP_SERVER_RELAY_URL");
    char pg_url_buf[2048];
    const char *interval = getenv("CODER_PROXY_HEALTH_INTERVAL");
    const char *agent_hb = getenv("CODER_AGENT_HEARTBEAT_INTERVAL");
    const char *agent_to = getenv("CODER_AGENT_CONNECTION_TIMEOUT");
    const char *agent_limits = getenv("CODER_AGENT_STREAM_LIMITS");
    const char *app_token_lifetime = getenv("CODER_APP_TOKEN_LIFETIME");
    const char *http = getenv("CODER_HTTP_ADDRESS");
    const char *tls_addr = getenv("CODER_TLS_ADDRESS");
    const char *tls_min = getenv("CODER_TLS_MIN_VERSION");
    bool tls_enable = false, verbose = false;
    if (getenv("CODER_TLS_ENABLE") && !parse_bool(getenv("CODER_TLS_ENABLE"), &tls_enable)) {
        fprintf(stderr, "outpost server: CODER_TLS_ENABLE must be true or false\n");
        return EX_USAGE;
    }
    if (getenv("CODER_VERBOSE")) parse_bool(getenv("CODER_VERBOSE"), &verbose);
    /* The app security switches: env first, a flag overrides. */
    static const struct {
        int opt;
        const char *env, *flag;
    } bools[] = {
        {O_DISABLE_PATH_APPS, "CODER_DISABLE_PATH_APPS", "--disable-path-apps"},
        {O_PATH_APP_SHARING, "CODER_DANGEROUS_ALLOW_PATH_APP_SHARING", "--dangerous-allow-path-app-sharing"},
        {O_PATH_APP_SITE_OWNER, "CODER_DANGEROUS_ALLOW_PATH_APP_SITE_OWNER_ACCESS",
         "--dangerous-allow-path-app-site-owner-access"},
    };
    bool bval[OP_ARRAY_LEN(bools)] = {false};
    for (size_t i = 0; i < OP_ARRAY_LEN(bools); i++) {
        const char *v = getenv(bools[i].env);
        if (v && !parse_bool(v, &bval[i])) {
            fprintf(stderr, "outpost server: %s must be true or false\n", bools[i].env);
            return EX_USAGE;
        }
    }
    const char *certs[OP_MAX_TLS_CERTS], *keys[OP_MAX_TLS_CERTS];
    int ncert = 0, nkey = 0;
    char *env_certs = getenv("CODER_TLS_CERT_FILE") ? strdup(getenv("CODER_TLS_CERT_FILE")) : NULL;
    char *env_keys = getenv("CODER_TLS_KEY_FILE") ? strdup(getenv("CODER_TLS_KEY_FILE")) : NULL;
    bool flag_certs = false, flag_keys = false;
    int rc = EX_USAGE;
    optind = 0;
    argv[0] = (char *)"outpost server"; /* getopt's own messages name the command */
    int c;
    while ((c = getopt_long(argc, argv, "+vh", opts, NULL)) != -1) {
        switch (c) {
        case O_ACCESS_URL:
            access_url = optarg;
            break;
        case O_WILDCARD:
            wildcard = optarg;
            break;
        case O_DATA_DIR:
            data_dir = optarg;
            break;
        case O_POSTGRES_URL:
            pg_url = optarg;
            break;
        case O_RELAY_URL:
            relay_url = optarg;
            break;
        case O_MIGRATE_FROM_SQLITE:
            migrate_from = optarg;
            break;
        case O_HEALTH:
            interval = optarg;
            break;
        case O_AGENT_HEARTBEAT:
            agent_hb = optarg;
            break;
        case O_AGENT_TIMEOUT:
            agent_to = optarg;
            break;
        case O_AGENT_LIMITS:
            agent_limits = optarg;
            break;
        case O_APP_TOKEN_LIFETIME:
            app_token_lifetime = optarg;
            break;
        case O_HTTP:
            http = optarg;
            break;
        case O_TLS_ADDRESS:
            tls_addr = optarg;
            break;
        case O_TLS_MIN:
            tls_min = optarg;
            break;
        case O_TLS_ENABLE:
            if (!parse_bool(optarg, &tls_enable)) {
                fprintf(stderr, "outpost server: --tls-enable takes true or false, not \"%s\"\n", optarg);
                goto out;
            }
            break;
        case O_TLS_CERT:
            if (!flag_certs) ncert = 0;
            flag_certs = true;
            if (ncert == OP_MAX_TLS_CERTS) {
                fprintf(stderr, "outpost server: at most %d certificates\n", OP_MAX_TLS_CERTS);
                goto out;
            }
            certs[ncert++] = optarg;
            break;
        case O_TLS_KEY:
            if (!flag_keys) nkey = 0;
            flag_keys = true;
            if (nkey == OP_MAX_TLS_CERTS) {
                fprintf(stderr, "outpost server: at most %d keys\n", OP_MAX_TLS_CERTS);
                goto out;
            }
            keys[nkey++] = optarg;
            break;
        case O_DISABLE_PATH_APPS:
        case O_PATH_APP_SHARING:
        case O_PATH_APP_SITE_OWNER: {
            size_t i = (size_t)(c - O_DISABLE_PATH_APPS);
            if (!parse_bool(optarg, &bval[i])) {
                fprintf(stderr, "outpost server: %s takes true or false, not \"%s\"\n", bools[i].flag,
                        optarg);
                goto out;
            }
            break;
        }
        case 'v':
            verbose = true;
            break;
        case 'h':
            fputs(server_help, stdout);
            rc = 0;
            goto out;
        default:
            fprintf(stderr, "Run 'outpost server --help' for usage.\n");
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr,
                "outpost server: unexpected argument \"%s\"\nRun 'outpost server --help' for usage.\n",
                argv[optind]);
        goto out;
    }
    if (!flag_certs && env_certs && (ncert = split_list(env_certs, certs, OP_MAX_TLS_CERTS)) < 0) {
        fprintf(stderr, "outpost server: too many certificates in CODER_TLS_CERT_FILE\n");
        goto out;
    }
    if (!flag_keys && env_keys && (nkey = split_list(env_keys, keys, OP_MAX_TLS_CERTS)) < 0) {
        fprintf(stderr, "outpost server: too many keys in CODER_TLS_KEY_FILE\n");
        goto out;
    }
    if (verbose) op_log_set_level(OP_LOG_DEBUG);
    if ((!pg_url || !*pg_url) && getenv("CODER_PG_CONNECTION_URL_FILE") &&
        *getenv("CODER_PG_CONNECTION_URL_FILE")) {
        char ferr[300];
        if (read_url_file(getenv("CODER_PG_CONNECTION_URL_FILE"), pg_url_buf, sizeof(pg_url_buf), ferr,
                          sizeof(ferr)) != 0) {
            fprintf(stderr, "outpost server: CODER_PG_CONNECTION_URL_FILE: %s\n", ferr);
            rc = EX_CONFIG;
            goto out;
        }
        pg_url = pg_url_buf;
    }
    if (pg_url && *pg_url && !op_primary_is_postgres_url(pg_url)) {
        fprintf(stderr, "outpost server: --postgres-url must be a postgres:// or postgresql:// URL\n");
        goto out;
    }
    if (migrate_from) {
        if (!pg_url || !*pg_url) {
            fprintf(stderr, "outpost server: --migrate-from-sqlite needs --postgres-url (the target)\n");
            goto out;
        }
        char merr[512];
        rc = op_primary_copy_sqlite(migrate_from, pg_url, merr, sizeof(merr)) == 0 ? 0 : EX_DATAERR;
        fprintf(rc ? stderr : stdout, "outpost server: %s\n", merr);
        goto out;
    }

    struct op_primary_config cfg = {0};
    uint64_t ms = OP_PRIMARY_DEFAULT_HEALTH_MS;
    /* Go durations may be negative; as in Coder, a value <= 0 means the 1 minute default. */
    if (interval && *interval == '-' && op_parse_duration_ms(interval + 1, &ms) == 0)
        ms = 0;
    else if (interval && *interval && op_parse_duration_ms(interval, &ms) != 0) {
        fprintf(stderr, "outpost server: invalid --proxy-health-interval \"%s\" (use e.g. 1m, 30s, 500ms)\n",
                interval);
        goto out;
    }
    cfg.health_interval_ms = ms ? ms : OP_PRIMARY_DEFAULT_HEALTH_MS; /* <= 0 means 1 minute */
    if (agent_hb && *agent_hb &&
        (op_parse_duration_ms(agent_hb, &cfg.agent_heartbeat_ms) != 0 || cfg.agent_heartbeat_ms == 0)) {
        fprintf(stderr, "outpost server: invalid --agent-heartbeat-interval \"%s\" (use e.g. 15s, 500ms)\n",
                agent_hb);
        goto out;
    }
    struct op_region_limits lim = {0};
    char lerr[256];
    if (op_region_limits_parse(agent_limits, &lim, lerr, sizeof(lerr)) != 0) {
        fprintf(stderr, "outpost server: invalid --agent-stream-limits (%s)\n", lerr);
        goto out;
    }
    if (agent_to && *agent_to &&
        (op_parse_duration_ms(agent_to, &cfg.agent_connection_timeout_ms) != 0 ||
         cfg.agent_connection_timeout_ms == 0)) {
        fprintf(stderr, "outpost server: invalid --agent-connection-timeout \"%s\" (use e.g. 2m, 30s)\n",
                agent_to);
        goto out;
    }
    if (app_token_lifetime && *app_token_lifetime) {
        uint64_t lt = 0;
        if (op_parse_duration_ms(app_token_lifetime, &lt) != 0 || lt < 1000 || lt > 24 * 3600 * 1000ull) {
            fprintf(stderr, "outpost server: invalid --app-token-lifetime \"%s\" (1s to 24h, e.g. 1m, 3s)\n",
                    app_token_lifetime);
            goto out;
        }
        cfg.app_token_lifetime_s = (uint32_t)(lt / 1000);
    }
    if (!http) http = "127.0.0.1:3000";
    if (!tls_addr) tls_addr = "127.0.0.1:3443";
    cfg.listen.http_address = http;
    cfg.listen.tls_min_version = 12;
    if (tls_min && *tls_min) {
        if (!strcasecmp(tls_min, "tls12"))
            cfg.listen.tls_min_version = 12;
        else if (!strcasecmp(tls_min, "tls13"))
            cfg.listen.tls_min_version = 13;
        else {
            fprintf(stderr, "outpost server: --tls-min-version must be tls12 or tls13\n");
            goto out;
        }
    }
    if (tls_enable) {
        if (ncert == 0 || ncert != nkey) {
            fprintf(stderr,
                    "outpost server: --tls-enable needs as many --tls-key-file as --tls-cert-file (got %d "
                    "certificates, %d keys)\n",
                    ncert, nkey);
            goto out;
        }
        cfg.listen.tls_address = tls_addr;
        for (int i = 0; i < ncert; i++) {
            cfg.listen.tls_cert_files[i] = certs[i];
            cfg.listen.tls_key_files[i] = keys[i];
        }
        cfg.listen.ntls = ncert;
    }
    if ((!http || !*http) && !tls_enable) {
        fprintf(stderr, "outpost server: no listener: set --http-address or --tls-enable\n");
        goto out;
    }
    char default_url[300], default_dir[4096];
    if (!access_url || !*access_url) {
        const char *addr = http && *http ? http : tls_addr;
        const char *scheme = http && *http ? "http" : "https";
        if (strncmp(addr, "0.0.0.0:", 8) == 0 || addr[0] == ':')
            snprintf(default_url, sizeof(default_url), "%s://127.0.0.1%s", scheme, strchr(addr, ':'));
        else
            snprintf(default_url, sizeof(default_url), "%s://%s", scheme, addr);
        access_url = default_url;
        op_warn("server", "--access-url is not set; using %s (workspace proxies must be able to reach it)",
                access_url);
    }
    if (!data_dir || !*data_dir) {
        const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
        if (xdg && *xdg)
            snprintf(default_dir, sizeof(default_dir), "%s/outpost", xdg);
        else if (home && *home)
            snprintf(default_dir, sizeof(default_dir), "%s/.local/share/outpost", home);
        else {
            fprintf(stderr, "outpost server: set --data-dir (neither XDG_DATA_HOME nor HOME is set)\n");
            rc = EX_CONFIG;
            goto out;
        }
        data_dir = default_dir;
    }
    cfg.data_dir = data_dir;
    cfg.postgres_url = pg_url && *pg_url ? pg_url : NULL;
    cfg.relay_url = relay_url;
    cfg.access_url = access_url;
    cfg.wildcard_access_url = wildcard;
    cfg.agent_stream_limits = agent_limits;
    cfg.disable_path_apps = bval[0];
    cfg.allow_path_app_sharing = bval[1];
    cfg.allow_path_app_site_owner = bval[2];
    if (cfg.allow_path_app_sharing || cfg.allow_path_app_site_owner)
        op_warn("server", "path-based app sharing or site-owner access is enabled: path apps run on the "
                          "dashboard origin and can call the API as their visitor");

    struct op_primary *p = NULL;
    char err[512];
    if (op_primary_open(&cfg, &p, err, sizeof(err)) != 0) {
        fprintf(stderr, "outpost server: %s\n", err);
        rc = EX_CONFIG;
        goto out;
    }
    struct op_app_server_opts so = {0};
    so.listen = cfg.listen;
    so.handler = op_primary_app_handle;
    so.handler_ctx = p;
    so.tick = op_primary_tick;
    so.tick_ctx = p;
    so.max_body = 1u << 20;
    so.server_name = "primary";
    so.route = op_primary_route;
    so.route_ctx = p;
    so.upgrade_tokens = op_region_upgrade_tokens;
    so.on_engine = op_primary_on_engine;
    so.on_engine_ctx = p;
    rc = op_app_server_run(&so);
    op_primary_close(p);
out:
    free(env_certs);
    free(env_keys);
    return rc;
}
