/*
 * util/options_load.c — loading a configuration: command-line flags, CODER_* environment variables,
 * the env-file and the YAML file (the one file that includes <yaml.h>), with the precedence of options.h.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <yaml.h>

#include "util/options_int.h"

/* Sets (or, for arrays from repeated flags, appends) a value. */
static int set_val(struct op_conf *c, int id, const char *v, enum op_opt_src src, bool append)
{
    char *nv;
    if (append && c->val[id] && c->src[id] == src && *c->val[id]) {
        size_t a = strlen(c->val[id]), b = strlen(v);
        nv = malloc(a + b + 2);
        if (!nv) return -ENOMEM;
        memcpy(nv, c->val[id], a);
        nv[a] = op_opt_sep(c->set->opts[id].type);
        memcpy(nv + a + 1, v, b + 1);
    } else {
        nv = strdup(v);
        if (!nv) return -ENOMEM;
    }
    free(c->val[id]);
    c->val[id] = nv;
    c->src[id] = src;
    return 0;
}

static int find_flag(const struct op_optset *set, const char *name, size_t len)
{
    for (int i = 0; i < set->count; i++)
        if (strlen(set->opts[i].flag) == len && memcmp(set->opts[i].flag, name, len) == 0) return i;
    if (len == 1 && name[0] == 'v') return set->verbose_id;
    return -1;
}

static int find_env(const struct op_optset *set, const char *name)
{
    for (int i = 0; i < set->count; i++)
        if (set->opts[i].env && strcmp(set->opts[i].env, name) == 0) return i;
    return -1;
}

static int find_yaml(const struct op_optset *set, const char *key)
{
    for (int i = 0; i < set->count; i++)
        if (set->opts[i].yaml && strcmp(set->opts[i].yaml, key) == 0) return i;
    return -1;
}

static int parse_flags(struct op_conf *c, int argc, char **argv, char *err, size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0) a = "--help";
        if (a[0] != '-') {
            op_opt_seterr(err, errlen, "unexpected argument \"%s\" (the %s takes no positional arguments)", a,
                          c->set->noun);
            return EX_USAGE;
        }
        const char *name = a + (a[1] == '-' ? 2 : 1);
        const char *eq = strchr(name, '=');
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        int id = find_flag(c->set, name, nl);
        if (id < 0) {
            op_opt_seterr(err, errlen, "unknown flag \"%s\" (see --help)", a);
            return EX_USAGE;
        }
        const char *v;
        if (eq) {
            v = eq + 1;
        } else if (c->set->opts[id].type == OP_OT_BOOL) {
            v = "true";
        } else if (id == c->set->log_json_id && (i + 1 >= argc || argv[i + 1][0] == '-')) {
            v = "/dev/stderr"; /* a bare --log-json: JSON lines on stderr */
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            op_opt_seterr(err, errlen, "flag --%s needs a value", c->set->opts[id].flag);
            return EX_USAGE;
        }
        if (set_val(c, id, v, OP_OS_FLAG, op_opt_is_array(c->set->opts[id].type)) != 0) {
            op_opt_seterr(err, errlen, "out of memory");
            return EX_OSERR;
        }
    }
    return 0;
}

/* ---- env-file ---------------------------------------------------------------------------------------- */

static int load_env_file(struct op_conf *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        op_opt_seterr(err, errlen, "--env-file: cannot read \"%s\": %s", path, strerror(errno));
        return EX_CONFIG;
    }
    char line[8192];
    int ln = 0, rc = 0;
    while (fgets(line, sizeof(line), f)) {
        ln++;
        char *s = line;
        while (isspace((unsigned char)*s))
            s++;
        size_t n = strlen(s);
        while (n && isspace((unsigned char)s[n - 1]))
            s[--n] = '\0';
        if (!*s || *s == '#' || *s == ';') continue;
        if (strncmp(s, "export ", 7) == 0) s += 7;
        char *eq = strchr(s, '=');
        if (!eq) {
            op_opt_seterr(err, errlen, "--env-file %s:%d: expected KEY=VALUE", path, ln);
            rc = EX_CONFIG;
            break;
        }
        *eq = '\0';
        char *k = s, *v = eq + 1;
        size_t kl = strlen(k);
        while (kl && isspace((unsigned char)k[kl - 1]))
            k[--kl] = '\0';
        while (isspace((unsigned char)*v))
            v++;
        size_t vl = strlen(v);
        if (vl >= 2 && (v[0] == '"' || v[0] == '\'') && v[vl - 1] == v[0]) {
            v[vl - 1] = '\0';
            v++;
        }
        int id = find_env(c->set, k);
        if (id < 0 || id == c->set->env_file_id)
            continue; /* other variables in a shared EnvironmentFile are not ours */
        if (c->src[id] == OP_OS_FLAG) continue;
        if (set_val(c, id, v, OP_OS_ENVFILE, false) != 0) {
            rc = EX_OSERR;
            break;
        }
    }
    fclose(f);
    return rc;
}

/* ---- YAML --------------------------------------------------------------------------------------------- */

struct yctx {
    yaml_parser_t p;
    struct op_conf *c;
    const char *path;
    char *err;
    size_t errlen;
};

static int ynext(struct yctx *y, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&y->p, ev)) {
        op_opt_seterr(y->err, y->errlen, "config file %s: YAML error at line %zu: %s", y->path,
                      y->p.problem_mark.line + 1, y->p.problem ? y->p.problem : "parse error");
        return EX_CONFIG;
    }
    return 0;
}

static int yset(struct yctx *y, const char *key, const char *v, size_t line)
{
    int id = find_yaml(y->c->set, key);
    if (id < 0) {
        op_opt_seterr(y->err, y->errlen, "config file %s:%zu: unknown key \"%s\"", y->path, line + 1, key);
        return EX_CONFIG;
    }
    if (y->c->src[id] >= OP_OS_ENV) return 0; /* flag and environment win */
    return set_val(y->c, id, v, OP_OS_YAML, false) ? EX_OSERR : 0;
}

/* The type of the option at key (a plain string array when unknown: yset() refuses the key anyway). */
static enum op_opt_type opt_type(const struct yctx *y, const char *key)
{
    int id = find_yaml(y->c->set, key);
    return id < 0 ? OP_OT_STRINGS : y->c->set->opts[id].type;
}

/* Called after MAPPING_START: reads key/value pairs until MAPPING_END. */
static int ymapping(struct yctx *y, const char *prefix, int depth)
{
    if (depth > 8) {
        op_opt_seterr(y->err, y->errlen, "config file %s: nesting too deep", y->path);
        return EX_CONFIG;
    }
    for (;;) {
        yaml_event_t ev;
        int rc = ynext(y, &ev);
        if (rc) return rc;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        if (ev.type != YAML_SCALAR_EVENT) {
            op_opt_seterr(y->err, y->errlen, "config file %s:%zu: expected a key", y->path,
                          ev.start_mark.line + 1);
            yaml_event_delete(&ev);
            return EX_CONFIG;
        }
        char key[256];
        snprintf(key, sizeof(key), "%s%s%s", prefix, *prefix ? "." : "", (const char *)ev.data.scalar.value);
        yaml_event_delete(&ev);
        if ((rc = ynext(y, &ev))) return rc;
        size_t line = ev.start_mark.line;
        if (ev.type == YAML_SCALAR_EVENT) {
            const char *v = (const char *)ev.data.scalar.value;
            bool null =
                ev.data.scalar.plain_implicit && (!*v || strcmp(v, "~") == 0 || strcmp(v, "null") == 0);
            rc = null ? (find_yaml(y->c->set, key) < 0 ? yset(y, key, "", line) : 0) : yset(y, key, v, line);
            yaml_event_delete(&ev);
        } else if (ev.type == YAML_MAPPING_START_EVENT) {
            yaml_event_delete(&ev);
            rc = ymapping(y, key, depth + 1);
        } else if (ev.type == YAML_SEQUENCE_START_EVENT) {
            yaml_event_delete(&ev);
            char *joined = calloc(1, 1);
            size_t jl = 0;
            for (;;) {
                if ((rc = ynext(y, &ev))) break;
                if (ev.type == YAML_SEQUENCE_END_EVENT) {
                    yaml_event_delete(&ev);
                    break;
                }
                if (ev.type != YAML_SCALAR_EVENT) {
                    op_opt_seterr(y->err, y->errlen,
                                  "config file %s:%zu: %s: only lists of plain values are supported", y->path,
                                  ev.start_mark.line + 1, key);
                    yaml_event_delete(&ev);
                    rc = EX_CONFIG;
                    break;
                }
                size_t vl = strlen((const char *)ev.data.scalar.value);
                char *nj = realloc(joined, jl + vl + 2);
                if (!nj) {
                    yaml_event_delete(&ev);
                    rc = EX_OSERR;
                    break;
                }
                joined = nj;
                if (jl) joined[jl++] = op_opt_sep(opt_type(y, key));
                memcpy(joined + jl, ev.data.scalar.value, vl + 1);
                jl += vl;
                yaml_event_delete(&ev);
            }
            if (!rc) {
                int id = find_yaml(y->c->set, key);
                if (id >= 0 && !op_opt_is_array(y->c->set->opts[id].type)) {
                    op_opt_seterr(y->err, y->errlen,
                                  "config file %s:%zu: %s takes a single value, not a list", y->path,
                                  line + 1, key);
                    rc = EX_CONFIG;
                } else {
                    rc = yset(y, key, joined, line);
                }
            }
            free(joined);
        } else {
            op_opt_seterr(y->err, y->errlen,
                          "config file %s:%zu: unsupported YAML construct (aliases are not supported)",
                          y->path, line + 1);
            yaml_event_delete(&ev);
            rc = EX_CONFIG;
        }
        if (rc) return rc;
    }
}

static int load_yaml(struct op_conf *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        op_opt_seterr(err, errlen, "--config: cannot read \"%s\": %s", path, strerror(errno));
        return EX_CONFIG;
    }
    struct yctx y = {.c = c, .path = path, .err = err, .errlen = errlen};
    yaml_parser_initialize(&y.p);
    yaml_parser_set_input_file(&y.p, f);
    int rc = 0;
    bool done = false;
    while (!rc && !done) {
        yaml_event_t ev;
        if ((rc = ynext(&y, &ev))) break;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            break;
        case YAML_MAPPING_START_EVENT:
            rc = ymapping(&y, "", 0);
            break;
        case YAML_SCALAR_EVENT:
            if (ev.data.scalar.length == 0) break; /* empty document */
            /* fallthrough */
        default:
            op_opt_seterr(err, errlen, "config file %s: the top level must be a mapping of keys", path);
            rc = EX_CONFIG;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&y.p);
    fclose(f);
    return rc;
}

/* ---- load --------------------------------------------------------------------------------------------- */

int op_conf_load(struct op_conf *c, const struct op_optset *set, int argc, char **argv, char *err,
                 size_t errlen)
{
    memset(c, 0, sizeof(*c));
    c->set = set;
    int rc = parse_flags(c, argc, argv, err, errlen);
    if (rc) return rc;
    for (int i = 0; i < set->count; i++) {
        if (c->src[i] || !set->opts[i].env) continue;
        const char *v = getenv(set->opts[i].env);
        if (v && set_val(c, i, v, OP_OS_ENV, false) != 0) return EX_OSERR;
    }
    int ef = set->env_file_id, cf = set->config_id;
    if (ef >= 0 && c->val[ef] && *c->val[ef] && (rc = load_env_file(c, c->val[ef], err, errlen))) return rc;
    if (cf >= 0 && c->val[cf] && *c->val[cf] && (rc = load_yaml(c, c->val[cf], err, errlen))) return rc;
    for (int i = 0; i < set->count; i++)
        if (!c->src[i] && set->opts[i].def) {
            if (set_val(c, i, set->opts[i].def, OP_OS_DEFAULT, false) != 0) return EX_OSERR;
        }
    return 0;
}

void op_conf_free(struct op_conf *c)
{
    for (int i = 0; i < OP_CONF_MAX; i++)
        free(c->val[i]);
    memset(c, 0, sizeof(*c));
}
