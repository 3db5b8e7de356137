/*
 * agent/pty_head.c — the terminal server's request head: `GET /pty?reconnect=<uuid>&width=<cols>&
 * height=<rows>[&command=<cmd>] HTTP/1.1` with the WebSocket upgrade headers. A strict hand-written
 * parser: the head is tiny, comes from the region (which rewrote it), and anything unexpected is a 400.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/pty_int.h"
#include "agent/ws_head.h"

bool pty_uuid_valid(const char *s, size_t n)
{
    if (n != PTY_UUID_LEN) return false;
    for (size_t i = 0; i < n; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i])) return false;
    }
    return true;
}

static bool parse_dim(const char *v, int *out)
{
    if (!*v || strlen(v) > 5) return false;
    for (const char *s = v; *s; s++)
        if (!isdigit((unsigned char)*s)) return false;
    long n = strtol(v, NULL, 10);
    if (n < 1 || n > 65535) return false;
    *out = (int)n;
    return true;
}

/* The query's parameters; unknown ones are ignored (a client may add its own). */
static int parse_query(const char *q, size_t n, struct pty_req *req, const char **why)
{
    bool have_id = false;
    const char *end = q + n;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pe - q));
        const char *ve = pe;
        const char *vs = eq ? eq + 1 : pe;
        size_t kl = (size_t)((eq ? eq : pe) - q);
        char val[PTY_CMD_MAX];
        if (op_agent_ws_decode(vs, (size_t)(ve - vs), val, sizeof(val)) < 0) {
            *why = "a query parameter is badly encoded or too long";
            return -1;
        }
        if (kl == 9 && memcmp(q, "reconnect", 9) == 0) {
            if (!pty_uuid_valid(val, strlen(val))) {
                *why = "reconnect must be a UUID";
                return -1;
            }
            for (int i = 0; i < PTY_UUID_LEN; i++)
                req->id[i] = (char)tolower((unsigned char)val[i]);
            req->id[PTY_UUID_LEN] = '\0';
            have_id = true;
        } else if (kl == 5 && memcmp(q, "width", 5) == 0) {
            if (!parse_dim(val, &req->cols)) {
                *why = "width must be a number of columns (1-65535)";
                return -1;
            }
        } else if (kl == 6 && memcmp(q, "height", 6) == 0) {
            if (!parse_dim(val, &req->rows)) {
                *why = "height must be a number of rows (1-65535)";
                return -1;
            }
        } else if (kl == 7 && memcmp(q, "command", 7) == 0) {
            memcpy(req->command, val, strlen(val) + 1);
            req->has_command = req->command[0] != '\0';
        }
        q = amp ? amp + 1 : end;
    }
    if (!have_id) {
        *why = "the reconnect parameter (a UUID naming the session) is missing";
        return -1;
    }
    return 0;
}

int pty_parse_head(const char *buf, size_t len, struct pty_req *req, int *status, const char **why)
{
    struct op_agent_ws_head h;
    int hl = op_agent_ws_head_parse(buf, len, PTY_IN_CAP, "/pty", &h, status, why);
    if (hl <= 0) return hl;
    memset(req, 0, sizeof(*req));
    req->cols = OP_AGENT_PTY_DEFAULT_COLS;
    req->rows = OP_AGENT_PTY_DEFAULT_ROWS;
    memcpy(req->accept, h.accept, sizeof(req->accept));
    if (parse_query(h.query, h.query_len, req, why) != 0) return -1;
    return hl;
}
