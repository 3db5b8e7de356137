/*
 * util/options_check.c — typed reads of loaded values and the per-type validation of every value (a
 * command checks its combinations itself, after op_conf_check).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include "core/engine.h"
#include "util/duration.h"
#include "util/host.h"
#include "util/url.h"
#include "util/options_int.h"

bool op_opt_is_array(enum op_opt_type t)
{
    return t == OP_OT_STRINGS || t == OP_OT_FILES || t == OP_OT_SPECS;
}

char op_opt_sep(enum op_opt_type t)
{
    return t == OP_OT_SPECS ? ';' : ',';
}

void op_opt_seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- typed reads -------------------------------------------------------------------------------------- */

int op_opt_parse_bool(const char *s, bool *out)
{
    static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True", "yes"};
    static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False", "no", ""};
    for (size_t i = 0; i < OP_ARRAY_LEN(t); i++)
        if (strcmp(s, t[i]) == 0) return *out = true, 0;
    for (size_t i = 0; i < OP_ARRAY_LEN(f); i++)
        if (strcmp(s, f[i]) == 0) return *out = false, 0;
    return -EINVAL;
}

int op_opt_parse_int(const char *s, long *out)
{
    if (!*s) return -EINVAL;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end) return -EINVAL;
    *out = v;
    return 0;
}

const char *op_conf_str(const struct op_conf *c, int id)
{
    return c->val[id] ? c->val[id] : "";
}

bool op_conf_bool(const struct op_conf *c, int id)
{
    bool b = false;
    return c->val[id] && op_opt_parse_bool(c->val[id], &b) == 0 && b;
}

long op_conf_int(const struct op_conf *c, int id)
{
    long v = 0;
    if (c->val[id]) op_opt_parse_int(c->val[id], &v);
    return v;
}

long long op_conf_duration_ms(const struct op_conf *c, int id)
{
    uint64_t v;
    return c->val[id] && op_parse_duration_ms(c->val[id], &v) == 0 ? (long long)v : -1;
}

int op_conf_list(const struct op_conf *c, int id, char *buf, size_t buflen, const char **out, int max)
{
    snprintf(buf, buflen, "%s", op_conf_str(c, id));
    int n = 0;
    char *save = NULL;
    const char sep[2] = {op_opt_sep(c->set->opts[id].type), '\0'};
    for (char *t = strtok_r(buf, sep, &save); t && n < max; t = strtok_r(NULL, sep, &save)) {
        while (isspace((unsigned char)*t))
            t++;
        size_t l = strlen(t);
        while (l && isspace((unsigned char)t[l - 1]))
            t[--l] = '\0';
        if (*t) out[n++] = t;
    }
    return n;
}

/* ---- validation --------------------------------------------------------------------------------------- */

static const char *src_name(enum op_opt_src s)
{
    switch (s) {
    case OP_OS_FLAG:
        return "flag";
    case OP_OS_ENV:
        return "environment";
    case OP_OS_ENVFILE:
        return "env-file";
    case OP_OS_YAML:
        return "config file";
    default:
        return "default";
    }
}

/* Names the option for error messages: "--tls-address (CODER_TLS_ADDRESS, from the environment)". */
static void optname(const struct op_conf *c, int id, char *buf, size_t len)
{
    const struct op_opt *o = &c->set->opts[id];
    snprintf(buf, len, "--%s%s%s, from the %s", o->flag, o->env ? " / " : "", o->env ? o->env : "",
             src_name(c->src[id]));
}

static int check_value(const struct op_conf *c, int id, char *err, size_t errlen)
{
    const struct op_opt *o = &c->set->opts[id];
    const char *v = c->val[id];
    char on[160];
    optname(c, id, on, sizeof(on));
    if (!v) return 0;
    switch (o->type) {
    case OP_OT_URL:
        if (*v && !op_url_http_host(v).p) {
            op_opt_seterr(err, errlen, "%s (%s): \"%s\" is not an http:// or https:// URL with a host",
                          o->flag, on, v);
            return EX_CONFIG;
        }
        break;
    case OP_OT_HOSTPORT:
        if (*v) {
            struct sockaddr_storage ss;
            socklen_t sl;
            char e2[256];
            const char *colon = strrchr(v, ':');
            if (!colon || !colon[1] || op_parse_hostport(v, &ss, &sl, e2, sizeof(e2)) != 0) {
                op_opt_seterr(err, errlen, "%s (%s): \"%s\" is not a valid host:port address", o->flag, on,
                              v);
                return EX_CONFIG;
            }
        }
        break;
    case OP_OT_BOOL: {
        bool b;
        if (op_opt_parse_bool(v, &b) != 0) {
            op_opt_seterr(err, errlen, "%s (%s): \"%s\" is not a boolean (true or false)", o->flag, on, v);
            return EX_CONFIG;
        }
        break;
    }
    case OP_OT_INT: {
        long l;
        if (op_opt_parse_int(v, &l) != 0 || l < -1000000000L || l > 1000000000L) {
            op_opt_seterr(err, errlen, "%s (%s): \"%s\" is not an integer", o->flag, on, v);
            return EX_CONFIG;
        }
        break;
    }
    case OP_OT_DURATION: {
        uint64_t ms;
        if (op_parse_duration_ms(v, &ms) != 0) {
            op_opt_seterr(err, errlen, "%s (%s): \"%s\" is not a duration (e.g. 500ms, 10s, 1m)", o->flag, on,
                          v);
            return EX_CONFIG;
        }
        break;
    }
    case OP_OT_ENUM: {
        size_t vl = strlen(v);
        const char *ch = o->choices;
        bool found = false;
        while (*ch) {
            size_t l = strcspn(ch, "|");
            if (l == vl && strncmp(ch, v, l) == 0) found = true;
            ch += l + (ch[l] == '|');
        }
        if (!found) {
            op_opt_seterr(err, errlen, "%s (%s): \"%s\" is not one of %s", o->flag, on, v, o->choices);
            return EX_CONFIG;
        }
        break;
    }
    case OP_OT_FILE:
    case OP_OT_FILES: {
        char buf[4096];
        const char *items[16];
        int n = op_conf_list(c, id, buf, sizeof(buf), items, 16);
        for (int i = 0; i < n; i++)
            if (access(items[i], R_OK) != 0) {
                op_opt_seterr(err, errlen, "%s (%s): cannot read \"%s\": %s", o->flag, on, items[i],
                              strerror(errno));
                return EX_CONFIG;
            }
        break;
    }
    case OP_OT_WILDCARD:
        if (*v) {
            char pat[256];
            snprintf(pat, sizeof(pat), "%s", v);
            char *colon = strchr(pat, ':');
            bool bad = strlen(v) >= sizeof(pat) || strstr(v, "http:") || strstr(v, "https:");
            if (colon && !bad) {
                char *e;
                long port = strtol(colon + 1, &e, 10);
                bad = *e || port < 1 || port > 65535;
                *colon = '\0';
            }
            if (bad || !op_wildcard_valid(pat)) {
                op_opt_seterr(
                    err, errlen,
                    "%s (%s): \"%s\" is not a valid wildcard hostname: it needs exactly one '*' at the "
                    "start, "
                    "at least two DNS labels, no scheme, e.g. \"*.eu.example.com\"",
                    o->flag, on, v);
                return EX_CONFIG;
            }
        }
        break;
    default:
        break;
    }
    return 0;
}

int op_conf_check(const struct op_conf *c, char *err, size_t errlen)
{
    char missing[256] = "";
    for (int i = 0; i < c->set->count; i++)
        if ((c->set->opts[i].flags & OP_OF_REQUIRED) && (!c->val[i] || !*c->val[i]))
            snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing), "%s%s",
                     *missing ? ", " : "", c->set->opts[i].flag);
    if (*missing) {
        op_opt_seterr(err, errlen, "Missing values for the required flags: %s", missing);
        return EX_CONFIG;
    }
    for (int i = 0; i < c->set->count; i++) {
        int rc = check_value(c, i, err, errlen);
        if (rc) return rc;
    }
    return 0;
}
