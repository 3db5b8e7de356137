/*
 * agent/options.h — the configuration of `outpost agent`: one option table (flags, CODER_AGENT_*
 * environment, YAML, --help, --check, --write-config, docs/agent.md) over the shared machinery of
 * util/options.h, and the agent's own rules (a token or a token file, the app specs, the limits).
 */
#ifndef OP_AGENT_OPTIONS_H
#define OP_AGENT_OPTIONS_H

#include "agent/apps.h"
#include "util/options.h"

enum op_agent_opt_id {
    OP_AO_URL,
    OP_AO_TOKEN,
    OP_AO_TOKEN_FILE,
    OP_AO_APP,
    OP_AO_CA_FILE,
    OP_AO_SPARES,
    OP_AO_MAX_SPARES,
    OP_AO_MAX_STREAMS,
    OP_AO_MAX_REGIONS,
    OP_AO_DIAL_TIMEOUT,
    OP_AO_MANIFEST_INTERVAL,
    OP_AO_PORTS_INTERVAL,
    OP_AO_BACKOFF_MAX,
    OP_AO_DRAIN_TIMEOUT,
    OP_AO_DATA_DIR,
    OP_AO_SSH_MAX_SESSIONS,
    OP_AO_PTY_TIMEOUT,
    OP_AO_MAX_PTY_SESSIONS,
    OP_AO_LOG_LEVEL,
    OP_AO_LOG_JSON,
    OP_AO_CONFIG,
    OP_AO_WRITE_CONFIG,
    OP_AO_CHECK,
    OP_AO_HELP,
    OP_AO_DOCS_MARKDOWN,
    OP_AO_COUNT
};

extern const struct op_opt op_agent_opts[OP_AO_COUNT];
extern const struct op_optset op_agent_optset;

#define OP_AGENT_TOKEN_LEN 101 /* "<agent uuid>:<64 alphanumerics>" */

/* Checks a loaded configuration: every value against its type, then the agent's rules; parses the apps
 * into apps[0..*napps) (may be NULL to only check). Returns 0 or EX_CONFIG with the reason in err. */
int op_agent_conf_validate(const struct op_conf *c, struct op_agent_app *apps, int *napps, char *err,
                           size_t errlen);

/* The agent token: --agent-token, else the first line of --agent-token-file (surrounding whitespace
 * removed). Returns 0, or EX_CONFIG with the reason in err. */
int op_agent_conf_token(const struct op_conf *c, char *out, size_t outlen, char *err, size_t errlen);

#endif
