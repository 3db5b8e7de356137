#include "http/app.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const struct op_app_header *op_app_find_header(const struct op_app_request *req, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < req->nheaders; i++) {
        const struct op_app_header *h = &req->headers[i];
        if (h->name.len == n && strncasecmp(h->name.p, name, n) == 0) return h;
    }
    return NULL;
}

int op_app_add_header(struct op_app_response *resp, const char *name, const char *value)
{
    size_t room = sizeof(resp->headers) - resp->headers_len;
    int n = snprintf(resp->headers + resp->headers_len, room, "%s: %s\r\n", name, value);
    if (n < 0 || (size_t)n >= room) {
        resp->headers[resp->headers_len] = '\0';
        return -ENOSPC;
    }
    resp->headers_len += (size_t)n;
    return 0;
}

void op_app_respond(struct op_app_response *resp, int status, const char *body)
{
    resp->status = status;
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
    if (body) {
        resp->body_len = strlen(body);
        resp->body = malloc(resp->body_len + 1);
        if (resp->body)
            memcpy(resp->body, body, resp->body_len + 1);
        else
            resp->body_len = 0;
    }
}
