/*
 * runner/redirect.c — see redirect.h.
 */
#include "runner/redirect.h"

#include <errno.h>
#include <string.h>

#include "util/host.h"

void op_put_https_location(struct op_h1_writer *w, op_span_t host, const char *https_port, op_span_t target)
{
    op_span_t h = op_host_without_port(host);
    bool std = strcmp(https_port, "443") == 0;
    op_h1_put_headerf(w, "Location", "https://%.*s%s%s%.*s", (int)h.len, h.p ? h.p : "", std ? "" : ":",
                      std ? "" : https_port, (int)target.len, target.p ? target.p : "");
}

int op_route_https_redirect(struct op_route *out, size_t extra_off, op_span_t host, op_span_t target,
                            const char *https_port)
{
    out->kind = OP_ROUTE_RESPOND;
    if (extra_off >= sizeof(out->extra)) extra_off = sizeof(out->extra) - 1;
    struct op_h1_writer w; /* one byte stays free for the NUL that ends out->extra */
    op_h1_writer_init(&w, out->extra + extra_off, sizeof(out->extra) - extra_off - 1);
    op_put_https_location(&w, host, https_port, target);
    ssize_t n = op_h1_writer_result(&w);
    if (n < 0) { /* -ENOSPC: the target is too long for a Location we can send; -EINVAL: bad bytes */
        out->extra[extra_off] = '\0';
        out->status = n == -ENOSPC ? 414 : 400;
        return out->status;
    }
    out->extra[extra_off + (size_t)n] = '\0';
    out->status = 308;
    return out->status;
}
