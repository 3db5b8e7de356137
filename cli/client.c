/* cli/client.c — config dir, libcurl JSON calls, prompts and table output for the admin CLI. */
#include "cli/client.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <termios.h>
#include <unistd.h>

#include "util/body.h"

bool op_client_global_opt(struct op_client *c, int opt, const char *arg)
{
    switch (opt) {
    case OP_OPT_GLOBAL_CONFIG:
        c->flag_config = arg;
        return true;
    case OP_OPT_URL:
        c->flag_url = arg;
        return true;
    case OP_OPT_TOKEN:
        c->flag_token = arg;
        return true;
    default:
        return false;
    }
}

int op_client_normalize_url(const char *in, char *out, size_t outlen)
{
    while (*in && isspace((unsigned char)*in))
        in++;
    size_t n = strlen(in);
    while (n > 0 && (isspace((unsigned char)in[n - 1]) || in[n - 1] == '/'))
        n--;
    if (n == 0) return -EINVAL;
    bool has_scheme = (n > 7 && strncmp(in, "http://", 7) == 0) || (n > 8 && strncmp(in, "https://", 8) == 0);
    if (!has_scheme && strstr(in, "://")) return -EINVAL;
    int w = snprintf(out, outlen, "%s%.*s", has_scheme ? "" : "https://", (int)n, in);
    if (w < 0 || (size_t)w >= outlen) return -EINVAL;
    for (const char *q = out; *q; q++)
        if ((unsigned char)*q <= ' ') return -EINVAL;
    return 0;
}

/* Reads a small file's first line into out; returns 0, -ENOENT or -EIO. */
static int read_line_file(const char *dir, const char *name, char *out, size_t outlen)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) return errno == ENOENT ? -ENOENT : -EIO;
    if (!fgets(out, (int)outlen, f)) out[0] = '\0';
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

int op_client_load(struct op_client *c, bool need_url, bool need_token)
{
    const char *dir = c->flag_config ? c->flag_config : getenv("CODER_CONFIG_DIR");
    if (dir && *dir) {
        snprintf(c->config_dir, sizeof(c->config_dir), "%s", dir);
    } else {
        const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
        if (xdg && *xdg)
            snprintf(c->config_dir, sizeof(c->config_dir), "%s/outpost", xdg);
        else if (home && *home)
            snprintf(c->config_dir, sizeof(c->config_dir), "%s/.config/outpost", home);
        else
            c->config_dir[0] = '\0';
    }
    const char *url = c->flag_url ? c->flag_url : getenv("CODER_URL");
    char stored[1024] = "";
    if ((!url || !*url) && c->config_dir[0] &&
        read_line_file(c->config_dir, "url", stored, sizeof(stored)) == 0)
        url = stored;
    c->url[0] = '\0';
    if (url && *url && op_client_normalize_url(url, c->url, sizeof(c->url)) != 0) {
        fprintf(stderr, "outpost: invalid primary URL \"%s\"\n", url);
        return EX_USAGE;
    }
    const char *tok = c->flag_token ? c->flag_token : getenv("CODER_SESSION_TOKEN");
    c->token[0] = '\0';
    if (tok && *tok)
        snprintf(c->token, sizeof(c->token), "%s", tok);
    else if (c->config_dir[0])
        read_line_file(c->config_dir, "session", c->token, sizeof(c->token));
    if ((need_url && !c->url[0]) || (need_token && !c->token[0])) {
        fprintf(stderr,
                "outpost: you are not logged in (no %s in %s). Try logging in using 'outpost login <url>', "
                "or set --url and --token (CODER_URL, CODER_SESSION_TOKEN).\n",
                !c->url[0] ? "primary URL" : "session token",
                c->config_dir[0] ? c->config_dir : "the config dir");
        return EX_CONFIG;
    }
    return 0;
}

static int write_secret_file(const char *dir, const char *name, const char *value)
{
    char path[4200], tmp[4300];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -errno;
    size_t n = strlen(value);
    bool ok = fchmod(fd, 0600) == 0 && write(fd, value, n) == (ssize_t)n && fsync(fd) == 0;
    int e = errno;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        e = ok ? errno : e;
        unlink(tmp);
        return -e;
    }
    return 0;
}

static int mkdir_p(const char *dir)
{
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", dir);
    for (char *q = buf + 1;; q++) {
        if (*q == '/' || *q == '\0') {
            char ch = *q;
            *q = '\0';
            if (mkdir(buf, 0700) != 0 && errno != EEXIST) return -errno;
            *q = ch;
            if (!ch) break;
        }
    }
    return 0;
}

int op_client_save(const struct op_client *c)
{
    if (!c->config_dir[0]) {
        fprintf(stderr, "outpost: no config directory (set --global-config or CODER_CONFIG_DIR)\n");
        return EX_CONFIG;
    }
    int rc = mkdir_p(c->config_dir);
    if (!rc) rc = write_secret_file(c->config_dir, "url", c->url);
    if (!rc) rc = write_secret_file(c->config_dir, "session", c->token);
    if (rc) {
        fprintf(stderr, "outpost: cannot write the config in %s: %s\n", c->config_dir, strerror(-rc));
        return EX_CANTCREAT;
    }
    return 0;
}

void op_client_forget_session(const struct op_client *c)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/session", c->config_dir);
    unlink(path);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct op_client_resp *r = arg;
    return op_body_append(&r->body, &r->len, 16u << 20, data, size * nmemb) == 0 ? size * nmemb : 0;
}

int op_client_call(const struct op_client *c, const char *method, const char *path, const cJSON *body,
                   struct op_client_resp *out)
{
    memset(out, 0, sizeof(*out));
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *e = curl_easy_init();
    if (!e) {
        fprintf(stderr, "outpost: out of memory\n");
        return EX_OSERR;
    }
    char url[2048], errbuf[CURL_ERROR_SIZE] = "", auth[300];
    snprintf(url, sizeof(url), "%s%s", c->url, path);
    struct curl_slist *hdrs = NULL;
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (c->token[0]) {
        snprintf(auth, sizeof(auth), "Coder-Session-Token: %s", c->token);
        hdrs = curl_slist_append(hdrs, auth);
    }
    char *json = body ? cJSON_PrintUnformatted(body) : NULL;
    if (json) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, json);
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "outpost-cli/" OP_VERSION);
    /* A private CA for the primary: the conventional variables of curl and OpenSSL. */
    const char *ca = getenv("CURL_CA_BUNDLE");
    if (!ca || !*ca) ca = getenv("SSL_CERT_FILE");
    if (ca && *ca) curl_easy_setopt(e, CURLOPT_CAINFO, ca);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, out);
    CURLcode res = curl_easy_perform(e);
    if (res == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(e);
    if (json) {
        memset(json, 0, strlen(json));
        cJSON_free(json);
    }
    memset(auth, 0, sizeof(auth));
    if (res != CURLE_OK) {
        fprintf(stderr, "outpost: cannot reach the primary at %s: %s\n", c->url,
                errbuf[0] ? errbuf : curl_easy_strerror(res));
        op_client_resp_free(out);
        return EX_UNAVAILABLE;
    }
    if (out->body) out->json = cJSON_ParseWithLength(out->body, out->len);
    return 0;
}

void op_client_resp_free(struct op_client_resp *r)
{
    cJSON_Delete(r->json);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

int op_client_get_object(const struct op_client *c, const char *path, const char *cmd, const char *failcmd,
                         const char *what, const char *ref, cJSON **obj)
{
    struct op_client_resp r;
    int rc = op_client_call(c, "GET", path, NULL, &r);
    if (rc) return rc;
    if (r.status == 404) {
        fprintf(stderr, "%s: %s \"%s\" not found\n", cmd, what, ref);
        rc = EX_DATAERR;
    } else if (r.status != 200 || !cJSON_IsObject(r.json)) {
        char msg[128];
        snprintf(msg, sizeof(msg), "fetching the %s failed", what);
        rc = op_client_fail(failcmd, msg, &r);
    } else {
        *obj = r.json;
        r.json = NULL;
    }
    op_client_resp_free(&r);
    return rc;
}

int op_client_delete(const struct op_client *c, const char *path, const char *failcmd, const char *what,
                     const char *done)
{
    struct op_client_resp r;
    int rc = op_client_call(c, "DELETE", path, NULL, &r);
    if (rc) return rc;
    if (r.status != 200) {
        char msg[128];
        snprintf(msg, sizeof(msg), "deleting the %s failed", what);
        rc = op_client_fail(failcmd, msg, &r);
    } else {
        printf("%s\n", done);
    }
    op_client_resp_free(&r);
    return rc;
}

int op_client_fail(const char *cmd, const char *what, const struct op_client_resp *r)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(r->json, "message");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(r->json, "detail");
    fprintf(stderr, "outpost %s: %s: ", cmd, what);
    if (cJSON_IsString(m)) {
        fprintf(stderr, "%s", m->valuestring);
        if (cJSON_IsString(d) && d->valuestring[0]) fprintf(stderr, " (%s)", d->valuestring);
    } else {
        fprintf(stderr, "unexpected HTTP status %ld from the primary", r->status);
    }
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(r->json, "validations"))
    {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(v, "field");
        const cJSON *dd = cJSON_GetObjectItemCaseSensitive(v, "detail");
        if (cJSON_IsString(f) && cJSON_IsString(dd))
            fprintf(stderr, "; %s: %s", f->valuestring, dd->valuestring);
    }
    fputc('\n', stderr);
    if (r->status == 401 && strcmp(cmd, "login") != 0)
        fprintf(stderr, "hint: the session token is invalid or expired; run 'outpost login <url>' again\n");
    if (r->status == 401 || r->status == 403) return EX_NOPERM;
    if (r->status == 400 || r->status == 404 || r->status == 409) return EX_DATAERR;
    if (r->status >= 500) return EX_UNAVAILABLE;
    return EX_PROTOCOL;
}

bool op_stdin_is_tty(void)
{
    return isatty(STDIN_FILENO) == 1;
}

int op_prompt(const char *question, const char *dflt, bool secret, char *out, size_t outlen)
{
    if (!op_stdin_is_tty()) return -ENOTTY;
    /* Echo goes off before the question is shown, and without flushing: an answer typed (or sent)
     * as soon as the question appears must never be discarded. */
    struct termios old, raw;
    bool restore = false;
    if (secret && tcgetattr(STDIN_FILENO, &old) == 0) {
        raw = old;
        raw.c_lflag &= ~(tcflag_t)ECHO;
        restore = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    }
    if (dflt && *dflt)
        fprintf(stderr, "> %s (%s) ", question, dflt);
    else
        fprintf(stderr, "> %s ", question);
    fflush(stderr);
    char *got = fgets(out, (int)outlen, stdin);
    if (restore) {
        tcsetattr(STDIN_FILENO, TCSANOW, &old);
        fputc('\n', stderr);
    }
    if (!got) return -EIO;
    out[strcspn(out, "\r\n")] = '\0';
    if (!*out && dflt) snprintf(out, outlen, "%s", dflt);
    return 0;
}

int op_confirm(const char *cmd, const char *question)
{
    char ans[16];
    int pr = op_prompt(question, NULL, false, ans, sizeof(ans));
    if (pr == -ENOTTY) {
        fprintf(stderr, "%s: stdin is not a terminal; pass --yes to confirm\n", cmd);
        return EX_USAGE;
    }
    if (pr != 0 || (strcasecmp(ans, "yes") != 0 && strcasecmp(ans, "y") != 0)) {
        fprintf(stderr, "%s: canceled\n", cmd);
        return EX_TEMPFAIL;
    }
    return 0;
}

int op_subcmd_run(const char *group, const char *help, const struct op_subcmd *subs, size_t nsubs, int argc,
                  char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(help, argc < 2 ? stderr : stdout);
        return argc < 2 ? EX_USAGE : 0;
    }
    for (size_t i = 0; i < nsubs; i++)
        if (strcmp(argv[1], subs[i].name) == 0 || (subs[i].alias && strcmp(argv[1], subs[i].alias) == 0))
            return subs[i].run(argc - 1, argv + 1);
    fprintf(stderr, "%s: unknown subcommand \"%s\"\n\n%s", group, argv[1], help);
    return EX_USAGE;
}

int op_out_parse(const char *s, enum op_out_format *out)
{
    if (strcmp(s, "text") == 0)
        *out = OP_OUT_TEXT;
    else if (strcmp(s, "json") == 0)
        *out = OP_OUT_JSON;
    else if (strcmp(s, "table") == 0)
        *out = OP_OUT_TABLE;
    else
        return -EINVAL;
    return 0;
}

void op_table_init(struct op_table *t)
{
    memset(t, 0, sizeof(*t));
}

void op_table_col(struct op_table *t, const char *header)
{
    if (t->ncols < 16) t->head[t->ncols++] = strdup(header);
}

void op_table_row(struct op_table *t)
{
    if (t->nrows == t->cap) {
        int nc = t->cap ? t->cap * 2 : 8;
        char **n = realloc(t->cells, (size_t)nc * (size_t)t->ncols * sizeof(char *));
        if (!n) return;
        t->cells = n;
        t->cap = nc;
    }
    for (int i = 0; i < t->ncols; i++)
        t->cells[t->nrows * t->ncols + i] = NULL;
    t->nrows++;
}

void op_table_cell(struct op_table *t, const char *text)
{
    if (t->nrows == 0) return;
    char **row = &t->cells[(t->nrows - 1) * t->ncols];
    for (int i = 0; i < t->ncols; i++) {
        if (!row[i]) {
            row[i] = strdup(text ? text : "");
            return;
        }
    }
}

void op_table_print(const struct op_table *t, FILE *out)
{
    size_t w[16] = {0}, total = 0;
    for (int c = 0; c < t->ncols; c++) {
        w[c] = strlen(t->head[c]);
        for (int r = 0; r < t->nrows; r++) {
            const char *s = t->cells[r * t->ncols + c];
            w[c] = OP_MAX(w[c], s ? strlen(s) : 0);
        }
        total += w[c] + 2;
    }
    char *line = malloc(total + 2);
    if (!line) return;
    for (int r = -1; r < t->nrows; r++) {
        size_t o = 0;
        for (int c = 0; c < t->ncols; c++) {
            const char *s = r < 0 ? t->head[c] : t->cells[r * t->ncols + c];
            s = s ? s : "";
            size_t n = strlen(s);
            for (size_t i = 0; i < n; i++)
                line[o++] = r < 0 ? (char)toupper((unsigned char)s[i]) : s[i];
            if (c + 1 < t->ncols)
                for (size_t i = n; i < w[c] + 2; i++)
                    line[o++] = ' ';
        }
        while (o > 0 && line[o - 1] == ' ')
            o--;
        line[o++] = '\n';
        fwrite(line, 1, o, out);
    }
    free(line);
}

void op_table_free(struct op_table *t)
{
    for (int c = 0; c < t->ncols; c++)
        free(t->head[c]);
    for (int i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}

static void json_indent(FILE *out, int depth)
{
    for (int i = 0; i < depth; i++)
        fputs("  ", out);
}

static void json_value(FILE *out, const cJSON *v, int depth)
{
    if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
        bool obj = cJSON_IsObject(v);
        if (!v->child) {
            fputs(obj ? "{}" : "[]", out);
            return;
        }
        fputc(obj ? '{' : '[', out);
        fputc('\n', out);
        for (const cJSON *c = v->child; c; c = c->next) {
            json_indent(out, depth + 1);
            if (obj) {
                cJSON *k = cJSON_CreateString(c->string ? c->string : "");
                char *ks = cJSON_PrintUnformatted(k);
                fprintf(out, "%s: ", ks ? ks : "\"\"");
                cJSON_free(ks);
                cJSON_Delete(k);
            }
            json_value(out, c, depth + 1);
            fputs(c->next ? ",\n" : "\n", out);
        }
        json_indent(out, depth);
        fputc(obj ? '}' : ']', out);
        return;
    }
    char *s = cJSON_PrintUnformatted(v);
    fputs(s ? s : "null", out);
    cJSON_free(s);
}

void op_json_print(FILE *out, const cJSON *v)
{
    json_value(out, v, 0);
    fputc('\n', out);
}
