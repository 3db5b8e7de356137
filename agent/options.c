/*
 * agent/options.c — the option table of `outpost agent` and its rules (see options.h).
 */
#include "agent/options.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#define S OP_OT_STRING
const struct op_opt op_agent_opts[OP_AO_COUNT] = {
    [OP_AO_URL] = {"agent-url", "CODER_AGENT_URL", "agent.url", NULL, OP_OT_URL, NULL, OP_OF_REQUIRED,
                   "URL of the primary (http or https), as printed by `outpost create`."},
    [OP_AO_TOKEN] = {"agent-token", "CODER_AGENT_TOKEN", "agent.token", NULL, S, NULL, OP_OF_SECRET,
                     "The agent token printed once by `outpost create` (or `outpost agent-token`)."},
    [OP_AO_TOKEN_FILE] = {"agent-token-file", "CODER_AGENT_TOKEN_FILE", "agent.tokenFile", NULL, OP_OT_FILE,
                          NULL, 0, "A file holding the agent token (instead of --agent-token)."},
    [OP_AO_APP] = {"app", "CODER_AGENT_APPS", "apps", NULL, OP_OT_SPECS, NULL, 0,
                   "A workspace app: 'slug=web,url=http://127.0.0.1:8000,name=Web,share=owner|authenticated|"
                   "public,subdomain=true,icon=/icon/web.svg' (slug and url required). Repeatable; several "
                   "in the environment are separated by ';'."},
    [OP_AO_CA_FILE] = {"ca-file", "CODER_AGENT_CA_FILE", "agent.caFile", NULL, OP_OT_FILE, NULL, 0,
                       "PEM CA bundle that signs the primary's and the https regions' certificates (default: "
                       "the system's trust store)."},
    [OP_AO_SPARES] = {"spares", "CODER_AGENT_SPARES", "limits.spares", "2", OP_OT_INT, NULL, 0,
                      "Spare stream connections kept parked at each region (a region may ask for more, up to "
                      "--max-spares)."},
    [OP_AO_MAX_SPARES] = {"max-spares", "CODER_AGENT_MAX_SPARES", "limits.maxSpares", "8", OP_OT_INT, NULL, 0,
                          "At most this many spare connections per region."},
    [OP_AO_MAX_STREAMS] = {"max-streams", "CODER_AGENT_MAX_STREAMS", "limits.maxStreams", "512", OP_OT_INT,
                           NULL, 0,
                           "Streams at once, all regions together (each holds two 64 KiB buffers); more are "
                           "refused with a 'limit' error."},
    [OP_AO_MAX_REGIONS] = {"max-regions", "CODER_AGENT_MAX_REGIONS", "limits.maxRegions", "16", OP_OT_INT,
                           NULL, 0,
                           "Control connections at once (the primary and the first proxies listed)."},
    [OP_AO_DIAL_TIMEOUT] = {"dial-timeout", "CODER_AGENT_DIAL_TIMEOUT", "limits.dialTimeout", "5s",
                            OP_OT_DURATION, NULL, 0,
                            "How long a connection to a region or to a stream's target may take."},
    [OP_AO_MANIFEST_INTERVAL] = {"manifest-interval", "CODER_AGENT_MANIFEST_INTERVAL",
                                 "agent.manifestInterval", "5s", OP_OT_DURATION, NULL, 0,
                                 "How often the region list is re-read from the primary."},
    [OP_AO_PORTS_INTERVAL] = {"ports-interval", "CODER_AGENT_PORTS_INTERVAL", "agent.portsInterval", "5s",
                              OP_OT_DURATION, NULL, 0,
                              "How often the listening ports (/proc/net/tcp, tcp6) are read and reported."},
    [OP_AO_BACKOFF_MAX] = {"reconnect-backoff-max", "CODER_AGENT_RECONNECT_BACKOFF_MAX",
                           "limits.reconnectBackoffMax", "30s", OP_OT_DURATION, NULL, 0,
                           "Cap of the jittered exponential backoff between reconnections to a region."},
    [OP_AO_DRAIN_TIMEOUT] = {"drain-timeout", "CODER_AGENT_DRAIN_TIMEOUT", "agent.drainTimeout", "5s",
                             OP_OT_DURATION, NULL, 0,
                             "On SIGTERM, how long open streams may take to finish after their FIN."},
    [OP_AO_DATA_DIR] =
        {"data-dir", "CODER_AGENT_DATA_DIR", "agent.dataDir", "~/.local/share/outpost-agent", OP_OT_STRING,
         NULL, 0,
         "Where the agent keeps its state: the SSH host key ssh_host_ed25519_key, generated on "
         "first start (directory 0700, key 0600)."},
    [OP_AO_SSH_MAX_SESSIONS] = {"ssh-max-sessions", "CODER_AGENT_SSH_MAX_SESSIONS", "limits.sshMaxSessions",
                                "64", OP_OT_INT, NULL, 0,
                                "SSH sessions at once (each is a stream to the agent's own SSH server, "
                                "reached as port 1; one thread each); more are refused with a 'limit' "
                                "error. 0 turns the SSH server off (port 1 is then dialed like any port)."},
    [OP_AO_PTY_TIMEOUT] = {"reconnecting-pty-timeout", "CODER_AGENT_RECONNECTING_PTY_TIMEOUT",
                           "limits.reconnectingPTYTimeout", "5m", OP_OT_DURATION, NULL, 0,
                           "How long a web terminal's session (its shell and scrollback) outlives its last "
                           "connection, so a reconnect with the same ID continues it; then the shell is "
                           "hung up."},
    [OP_AO_MAX_PTY_SESSIONS] = {"max-pty-sessions", "CODER_AGENT_MAX_PTY_SESSIONS", "limits.maxPTYSessions",
                                "64", OP_OT_INT, NULL, 0,
                                "Web terminal sessions at once (reached as port 2, served by one thread "
                                "with a 64 KiB scrollback each); a new one over the limit is refused with "
                                "503. 0 turns the terminal server off (port 2 is then dialed like any "
                                "port)."},
    [OP_AO_LOG_LEVEL] = {"log-level", "CODER_AGENT_LOG_LEVEL", "agent.logLevel", "info", OP_OT_ENUM,
                         "debug|info|warn|error", 0, "Log level."},
    [OP_AO_LOG_JSON] = {"log-json", "CODER_AGENT_LOG_JSON", "agent.logJSON", "false", OP_OT_BOOL, NULL, 0,
                        "Log JSON lines on stderr instead of text."},
    [OP_AO_CONFIG] = {"config", "CODER_AGENT_CONFIG", NULL, NULL, OP_OT_FILE, NULL, 0,
                      "YAML config file (dotted keys as listed here)."},
    [OP_AO_WRITE_CONFIG] = {"write-config", NULL, NULL, NULL, OP_OT_BOOL, NULL, OP_OF_ACTION,
                            "Write the effective configuration as YAML to stdout, then exit."},
    [OP_AO_CHECK] = {"check", NULL, NULL, NULL, OP_OT_BOOL, NULL, OP_OF_ACTION,
                     "Validate the configuration without connecting; exit 78 on error."},
    [OP_AO_HELP] = {"help", NULL, NULL, NULL, OP_OT_BOOL, NULL, OP_OF_ACTION, "Show this help."},
    [OP_AO_DOCS_MARKDOWN] = {"docs-markdown", NULL, NULL, NULL, OP_OT_BOOL, NULL, OP_OF_ACTION | OP_OF_HIDDEN,
                             "Print the option reference as Markdown (docs/agent.md)."},
};
#undef S

const struct op_optset op_agent_optset = {
    .opts = op_agent_opts,
    .count = OP_AO_COUNT,
    .command = "outpost agent",
    .summary = "Run the workspace agent: dial out to every region and carry streams to ports of this "
               "workspace",
    .noun = "agent",
    .md_intro =
        "Generated from the option table in `agent/options.c` (`outpost agent --docs-markdown`).\n"
        "Precedence, highest first: flag, environment, the YAML file of `--config` (dotted keys below, "
        "nested), default. `--app` repeats on the command line; in `CODER_AGENT_APPS` several apps are "
        "separated by `;` (an app spec contains commas); in YAML `apps` is a sequence of specs. "
        "`--check` validates everything without connecting (exit 78 on error). The agent opens no "
        "listening socket; the limits bound what it holds: per region one control connection and "
        "`--spares` parked stream connections, and `--max-streams` streams in all. Two stream ports are "
        "served inside the agent instead of dialed: 1, its SSH server (docs/ssh.md), and 2, its web-terminal "
        "server of reconnecting PTY sessions over WebSocket (docs/terminal.md). A stream opened as "
        "`OPEN ws:127.0.0.1:PORT` (the WebSocket variant of the tcp endpoint, docs/agent-protocol.md §5) "
        "goes to its in-process WebSocket server, which dials the port and carries its bytes in binary "
        "messages; `--max-streams` bounds those too.",
    .config_id = OP_AO_CONFIG,
    .env_file_id = -1,
    .verbose_id = -1,
    .log_json_id = -1,
};

static bool token_valid(const char *t)
{
    if (strlen(t) != OP_AGENT_TOKEN_LEN || t[36] != ':') return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? t[i] != '-' : !isxdigit((unsigned char)t[i])) return false;
    }
    for (int i = 37; i < OP_AGENT_TOKEN_LEN; i++)
        if (!isalnum((unsigned char)t[i])) return false;
    return true;
}

int op_agent_conf_token(const struct op_conf *c, char *out, size_t outlen, char *err, size_t errlen)
{
    const char *tok = op_conf_str(c, OP_AO_TOKEN), *file = op_conf_str(c, OP_AO_TOKEN_FILE);
    char buf[512] = "";
    if (*tok && *file) {
        snprintf(err, errlen, "agent-token / agent-token-file: give one of them, not both");
        return EX_CONFIG;
    }
    if (!*tok && !*file) {
        snprintf(err, errlen,
                 "agent-token: missing (set CODER_AGENT_TOKEN or CODER_AGENT_TOKEN_FILE to the token "
                 "printed by `outpost create`)");
        return EX_CONFIG;
    }
    if (*file) {
        FILE *f = fopen(file, "r");
        if (!f || !fgets(buf, sizeof(buf), f)) {
            snprintf(err, errlen, "agent-token-file: cannot read a token from \"%s\": %s", file,
                     f ? "the file is empty" : strerror(errno));
            if (f) fclose(f);
            return EX_CONFIG;
        }
        fclose(f);
        tok = buf;
    } else {
        snprintf(buf, sizeof(buf), "%s", tok);
        tok = buf;
    }
    char *s = buf;
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    if (!token_valid(s)) {
        snprintf(err, errlen,
                 "%s: expected \"<agent-id>:<64-character secret>\" as printed by `outpost create` "
                 "(CODER_AGENT_TOKEN=...)",
                 *file ? "agent-token-file" : "agent-token");
        memset(buf, 0, sizeof(buf));
        return EX_CONFIG;
    }
    snprintf(out, outlen, "%s", s);
    memset(buf, 0, sizeof(buf));
    return 0;
}

struct range {
    int id;
    long lo, hi;
};

int op_agent_conf_validate(const struct op_conf *c, struct op_agent_app *apps, int *napps, char *err,
                           size_t errlen)
{
    int rc = op_conf_check(c, err, errlen);
    if (rc) return rc;
    char tok[128];
    rc = op_agent_conf_token(c, tok, sizeof(tok), err, errlen);
    memset(tok, 0, sizeof(tok));
    if (rc) return rc;
    static const struct range ints[] = {
        {OP_AO_SPARES, 0, 64},      {OP_AO_MAX_SPARES, 1, 64},         {OP_AO_MAX_STREAMS, 1, 100000},
        {OP_AO_MAX_REGIONS, 1, 64}, {OP_AO_SSH_MAX_SESSIONS, 0, 4096}, {OP_AO_MAX_PTY_SESSIONS, 0, 4096},
    };
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        long v = op_conf_int(c, ints[i].id);
        if (v < ints[i].lo || v > ints[i].hi) {
            snprintf(err, errlen, "%s: must be between %ld and %ld (got %ld)", op_agent_opts[ints[i].id].flag,
                     ints[i].lo, ints[i].hi, v);
            return EX_CONFIG;
        }
    }
    if (op_conf_int(c, OP_AO_SPARES) > op_conf_int(c, OP_AO_MAX_SPARES)) {
        snprintf(err, errlen, "spares: %ld is more than max-spares (%ld)", op_conf_int(c, OP_AO_SPARES),
                 op_conf_int(c, OP_AO_MAX_SPARES));
        return EX_CONFIG;
    }
    static const struct range durs[] = {
        {OP_AO_DIAL_TIMEOUT, 100, 60000},     {OP_AO_MANIFEST_INTERVAL, 100, 3600000},
        {OP_AO_PORTS_INTERVAL, 100, 3600000}, {OP_AO_BACKOFF_MAX, 500, 3600000},
        {OP_AO_DRAIN_TIMEOUT, 0, 3600000},    {OP_AO_PTY_TIMEOUT, 100, 7 * 86400000L},
    };
    for (size_t i = 0; i < sizeof(durs) / sizeof(durs[0]); i++) {
        long long v = op_conf_duration_ms(c, durs[i].id);
        if (v < durs[i].lo || v > durs[i].hi) {
            snprintf(err, errlen, "%s: must be between %ldms and %ldms", op_agent_opts[durs[i].id].flag,
                     durs[i].lo, durs[i].hi);
            return EX_CONFIG;
        }
    }
    char buf[OP_AGENT_MAX_APPS * 1200];
    const char *items[OP_AGENT_MAX_APPS + 1];
    int n = op_conf_list(c, OP_AO_APP, buf, sizeof(buf), items, OP_AGENT_MAX_APPS + 1);
    if (n > OP_AGENT_MAX_APPS) {
        snprintf(err, errlen, "app: at most %d apps", OP_AGENT_MAX_APPS);
        return EX_CONFIG;
    }
    struct op_agent_app tmp;
    for (int i = 0; i < n; i++) {
        struct op_agent_app *a = apps ? &apps[i] : &tmp;
        char why[400];
        if (op_agent_app_parse(items[i], a, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "app: %s", why);
            return EX_CONFIG;
        }
        for (int j = 0; apps && j < i; j++)
            if (strcmp(apps[j].slug, a->slug) == 0) {
                snprintf(err, errlen, "app: the slug \"%s\" is used twice", a->slug);
                return EX_CONFIG;
            }
    }
    if (napps) *napps = n;
    return 0;
}
