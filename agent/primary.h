/*
 * agent/primary.h — the agent's calls to the primary (libcurl, blocking, on the control thread):
 * GET me/manifest, POST me/credential, POST me/report, each with the agent token in
 * Coder-Session-Token. One reused handle, so the connection is kept alive between calls.
 */
#ifndef OP_AGENT_PRIMARY_H
#define OP_AGENT_PRIMARY_H

#include <stddef.h>

struct op_agent_http {
    const char *base;    /* the primary's URL, without a trailing '/' */
    const char *token;   /* the agent token */
    const char *ca_file; /* NULL or "": the system's trust store */
    long timeout_ms;
    void *curl; /* CURL *, created on first use */
};

struct op_agent_resp {
    long status;
    char *body; /* NUL-terminated, malloc'd, may be NULL */
    size_t len;
};

/* Performs METHOD base+path (body: JSON text or NULL). Returns 0 with any HTTP status in r, or -EIO
 * when the primary could not be reached (the reason in err). */
int op_agent_call(struct op_agent_http *h, const char *method, const char *path, const char *body,
                  struct op_agent_resp *r, char *err, size_t errlen);
/* The "message" (and "detail") of a Coder error body, or a short text naming the status. */
void op_agent_resp_message(const struct op_agent_resp *r, char *out, size_t outlen);
void op_agent_resp_free(struct op_agent_resp *r);
void op_agent_http_close(struct op_agent_http *h);

#endif
