/*
 * agent/apps.c — parsing `--app` specs and app URLs (see apps.h).
 */
#include "agent/apps.h"
#include "util/host.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const keys[] = {"slug", "url", "name", "share", "subdomain", "icon"};

/* Length of the key at s when s starts with "<known key>=", else 0. */
static size_t key_at(const char *s)
{
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        size_t l = strlen(keys[i]);
        if (strncmp(s, keys[i], l) == 0 && s[l] == '=') return l;
    }
    return 0;
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return false;
    return true;
}

int op_agent_url_hostport(const char *url, char *host, size_t hostlen, uint16_t *port)
{
    uint16_t def;
    const char *p;
    if (strncasecmp(url, "http://", 7) == 0)
        p = url + 7, def = 80;
    else if (strncasecmp(url, "https://", 8) == 0)
        p = url + 8, def = 443;
    else
        return -EINVAL;
    size_t auth = strcspn(p, "/?#");
    const char *at = memchr(p, '@', auth);
    if (at) {
        auth -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    const char *hs = p, *he, *ps = NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', auth);
        if (!rb) return -EINVAL;
        hs = p + 1;
        he = rb;
        if (rb + 1 < p + auth) {
            if (rb[1] != ':') return -EINVAL;
            ps = rb + 2;
        }
    } else {
        const char *colon = memchr(p, ':', auth);
        he = colon ? colon : p + auth;
        if (colon) ps = colon + 1;
    }
    if (he == hs || (size_t)(he - hs) >= hostlen) return -EINVAL;
    for (const char *c = hs; c < he; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                  *c == '-' || *c == '.' || *c == '_' || (*p == '[' && (*c == ':' || *c == '%'));
        if (!ok) return -EINVAL;
    }
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    *port = def;
    if (ps) {
        size_t pl = (size_t)(p + auth - ps);
        if (pl == 0 || pl > 5) return -EINVAL;
        unsigned v = 0;
        for (size_t i = 0; i < pl; i++) {
            if (ps[i] < '0' || ps[i] > '9') return -EINVAL;
            v = v * 10 + (unsigned)(ps[i] - '0');
        }
        if (v == 0 || v > 65535) return -EINVAL;
        *port = (uint16_t)v;
    }
    return 0;
}

bool op_agent_host_is_loopback(const char *host)
{
    size_t n = strlen(host);
    if (n && host[n - 1] == '.') n--; /* "localhost." */
    if ((n == 9 && strncasecmp(host, "localhost", 9) == 0) ||
        (n > 10 && strncasecmp(host + n - 10, ".localhost", 10) == 0))
        return true;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

int op_agent_app_parse(const char *spec, struct op_agent_app *app, char *err, size_t errlen)
{
    memset(app, 0, sizeof(*app));
    snprintf(app->share, sizeof(app->share), "owner");
    bool seen[sizeof(keys) / sizeof(keys[0])] = {false};
    const char *p = spec;
    while (*p) {
        size_t kl = key_at(p);
        if (!kl) {
            snprintf(err, errlen,
                     "app \"%.80s\": expected key=value with a key among slug, url, name, share, "
                     "subdomain, icon at \"%.40s\"",
                     spec, p);
            return -EINVAL;
        }
        size_t ki = 0;
        while (strncmp(keys[ki], p, kl) != 0 || strlen(keys[ki]) != kl)
            ki++;
        if (seen[ki]) {
            snprintf(err, errlen, "app \"%.80s\": %s given twice", spec, keys[ki]);
            return -EINVAL;
        }
        seen[ki] = true;
        const char *v = p + kl + 1, *e = v;
        while (*e && !(*e == ',' && key_at(e + 1)))
            e++;
        size_t vl = (size_t)(e - v);
        char *dst[] = {app->slug, app->url, app->name, app->share, NULL, app->icon};
        size_t cap[] = {sizeof(app->slug), sizeof(app->url), sizeof(app->name), sizeof(app->share), 0,
                        sizeof(app->icon)};
        if (ki == 4) {
            if (vl == 4 && strncasecmp(v, "true", 4) == 0)
                app->subdomain = true;
            else if (vl == 5 && strncasecmp(v, "false", 5) == 0)
                app->subdomain = false;
            else {
                snprintf(err, errlen, "app \"%.80s\": subdomain must be true or false", spec);
                return -EINVAL;
            }
        } else {
            if (vl >= cap[ki]) {
                snprintf(err, errlen, "app \"%.80s\": %s is longer than %zu characters", spec, keys[ki],
                         cap[ki] - 1);
                return -EINVAL;
            }
            memcpy(dst[ki], v, vl);
            dst[ki][vl] = '\0';
        }
        p = *e ? e + 1 : e;
    }
    const char *why = NULL;
    if (!seen[0] || !op_app_slug_valid(app->slug))
        why = "slug must be 1-32 lower-case letters, digits and single inner hyphens";
    else if (!seen[1] || op_agent_url_hostport(app->url, app->host, sizeof(app->host), &app->port) != 0 ||
             !printable(app->url))
        why = "url must be an http:// or https:// URL with a host";
    else if (strcmp(app->share, "owner") != 0 && strcmp(app->share, "authenticated") != 0 &&
             strcmp(app->share, "public") != 0)
        why = "share must be owner, authenticated or public";
    else if (!printable(app->name) || !printable(app->icon))
        why = "name and icon must be printable text";
    if (why) {
        snprintf(err, errlen, "app \"%.80s\": %s", spec, why);
        return -EINVAL;
    }
    if (!*app->name) snprintf(app->name, sizeof(app->name), "%s", app->slug);
    return 0;
}
