/*
 * agent/apps.h — the workspace apps an agent declares, from
 * `--app 'slug=web,url=http://127.0.0.1:8000,name=Web,share=owner,subdomain=true,icon=/icon/web.svg'`
 * (repeatable; CODER_AGENT_APPS holds several separated by ';'). Keys: slug and url are required;
 * name (display name, default the slug), share (owner | authenticated | public, default owner),
 * subdomain (true | false, default false), icon. A value runs to the next ",<key>=", so a URL may
 * contain commas. The rules are the primary's (it refuses a report that breaks them).
 */
#ifndef OP_AGENT_APPS_H
#define OP_AGENT_APPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OP_AGENT_MAX_APPS 32

struct op_agent_app {
    char slug[33];
    char url[513];
    char name[65];
    char icon[257];
    char share[16];
    bool subdomain;
    /* from the URL: where a stream for this app goes */
    char host[256];
    uint16_t port;
};

/* Parses one spec into *app. Returns 0, or -EINVAL with the reason in err. */
int op_agent_app_parse(const char *spec, struct op_agent_app *app, char *err, size_t errlen);

/* Splits a URL "http[s]://host[:port][/...]" into host (brackets of an IPv6 literal removed) and port
 * (default 80 / 443). Returns 0 or -EINVAL. */
int op_agent_url_hostport(const char *url, char *host, size_t hostlen, uint16_t *port);

/* True for the names a stream may always dial inside the workspace: "localhost", any "*.localhost"
 * (RFC 6761 reserves them for loopback), 127.0.0.0/8 and ::1. */
bool op_agent_host_is_loopback(const char *host);

#endif
