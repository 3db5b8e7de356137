/*
 * cli/region.c — the regions of the primary, their latency and the stored default (see region.h).
 */
#include "cli/region.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

int op_cli_regions(const struct op_client *c, const char *cmd, struct op_cli_region *out, int max, int *n)
{
    struct op_client_resp r;
    int rc = op_client_call(c, "GET", "/api/v2/regions", NULL, &r);
    if (rc) return rc;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(r.json, "regions");
    if (r.status != 200 || !cJSON_IsArray(list)) {
        rc = op_client_fail(cmd, "listing the regions failed", &r);
        op_client_resp_free(&r);
        return rc;
    }
    *n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, list)
    {
        if (*n == max) break;
        struct op_cli_region *g = &out[(*n)++];
        memset(g, 0, sizeof(*g));
        snprintf(g->name, sizeof(g->name), "%s", jstr(it, "name"));
        snprintf(g->display, sizeof(g->display), "%s", jstr(it, "display_name"));
        snprintf(g->url, sizeof(g->url), "%s", jstr(it, "path_app_url"));
        if (strcmp(g->name, "primary") == 0 || !*g->url) snprintf(g->url, sizeof(g->url), "%s", c->url);
        size_t l = strlen(g->url);
        while (l && g->url[l - 1] == '/')
            g->url[--l] = '\0';
        g->healthy = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "healthy"));
        g->latency_ms = -1;
    }
    op_client_resp_free(&r);
    return 0;
}

static size_t sink(char *p, size_t sz, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return sz * n;
}

void op_cli_probe(struct op_cli_region *r, int n)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *e = curl_easy_init();
    if (!e) return;
    const char *ca = getenv("CURL_CA_BUNDLE");
    if (!ca || !*ca) ca = getenv("SSL_CERT_FILE");
    for (int i = 0; i < n; i++) {
        if (!r[i].healthy) continue;
        char url[1100];
        snprintf(url, sizeof(url), "%s/latency-check", r[i].url);
        struct curl_slist *h = curl_slist_append(NULL, "X-LATENCY-CHECK: true");
        curl_easy_reset(e);
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 2000L);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        if (ca && *ca) curl_easy_setopt(e, CURLOPT_CAINFO, ca);
        /* A first request warms the connection (TCP, TLS) as the browser's CORS preflight does; the
         * second one is the warm round trip that is measured. */
        double best = -1;
        for (int k = 0; k < 2; k++) {
            if (curl_easy_perform(e) != CURLE_OK) {
                best = -1;
                break;
            }
            double pre = 0, start = 0;
            curl_easy_getinfo(e, CURLINFO_PRETRANSFER_TIME, &pre);
            curl_easy_getinfo(e, CURLINFO_STARTTRANSFER_TIME, &start);
            best = (start - pre) * 1000.0;
        }
        r[i].latency_ms = best;
        curl_slist_free_all(h);
    }
    curl_easy_cleanup(e);
}

static int read_file(const struct op_client *c, const char *name, char *out, size_t len)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", c->config_dir, name);
    FILE *f = fopen(path, "r");
    if (!f) return -ENOENT;
    if (!fgets(out, (int)len, f)) out[0] = '\0';
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    return *out ? 0 : -ENOENT;
}

static int write_file(const struct op_client *c, const char *name, const char *text)
{
    if (!c->config_dir[0]) return -ENOENT;
    mkdir(c->config_dir, 0700);
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", c->config_dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -errno;
    size_t l = strlen(text);
    int rc = write(fd, text, l) == (ssize_t)l && write(fd, "\n", 1) == 1 ? 0 : -EIO;
    close(fd);
    return rc;
}

void op_cli_default_get(const struct op_client *c, char *out, size_t len)
{
    if (read_file(c, "proxy", out, len) != 0) snprintf(out, len, "primary");
}

int op_cli_default_set(const struct op_client *c, const char *choice)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/proxy-auto", c->config_dir);
    unlink(path);
    int rc = write_file(c, "proxy", choice);
    if (rc) {
        fprintf(stderr, "outpost: cannot write %s/proxy: %s\n", c->config_dir, strerror(-rc));
        return EX_CANTCREAT;
    }
    return 0;
}

int op_cli_pick(const struct op_client *c, const char *cmd, const char *choice, struct op_cli_region *out,
                bool verbose)
{
    char stored[80];
    if (!choice) {
        op_cli_default_get(c, stored, sizeof(stored));
        choice = stored;
    }
    static struct op_cli_region list[OP_CLI_MAX_REGIONS];
    int n = 0, rc = op_cli_regions(c, cmd, list, OP_CLI_MAX_REGIONS, &n);
    if (rc) return rc;
    if (strcasecmp(choice, "auto") == 0) {
        char remembered[80];
        if (read_file(c, "proxy-auto", remembered, sizeof(remembered)) == 0)
            for (int i = 0; i < n; i++)
                if (strcasecmp(list[i].name, remembered) == 0 && list[i].healthy) {
                    *out = list[i];
                    return 0;
                }
        op_cli_probe(list, n);
        int best = -1;
        for (int i = 0; i < n; i++)
            if (list[i].healthy && list[i].latency_ms >= 0 &&
                (best < 0 || list[i].latency_ms < list[best].latency_ms))
                best = i;
        if (best < 0) {
            fprintf(stderr, "%s: no healthy region answered /latency-check\n", cmd);
            return EX_UNAVAILABLE;
        }
        *out = list[best];
        if (verbose)
            fprintf(stderr, "%s: auto picked region %s (%.1f ms)\n", cmd, out->name, out->latency_ms);
        (void)write_file(c, "proxy-auto", out->name);
        return 0;
    }
    for (int i = 0; i < n; i++)
        if (strcasecmp(list[i].name, choice) == 0) {
            if (!list[i].healthy) {
                fprintf(stderr, "%s: region \"%s\" is not healthy right now (see outpost proxy ls)\n", cmd,
                        list[i].name);
                return EX_UNAVAILABLE;
            }
            *out = list[i];
            return 0;
        }
    fprintf(stderr, "%s: no region named \"%s\" (see outpost proxy ls)\n", cmd, choice);
    return EX_DATAERR;
}
