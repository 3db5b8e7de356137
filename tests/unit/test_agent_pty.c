/*
 * Unit test of the agent's terminal server (agent/pty.h) driven over socketpairs by a small WebSocket
 * client written here (masked frames out, unmasked frames in): the handshake and its refusals, keystrokes
 * and output, reconnecting to a session (scrollback, the same shell), resize, the exit status in the
 * close, protocol errors with their close codes, ping/pong, several sockets on one session, the session
 * limit and the reconnect timeout.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent/pty.h"
#include "core/common.h"
#include "tests/unit/check.h"

#define MAX_SESSIONS 8
#define TIMEOUT_MS   300
#define WAIT_MS      8000

static struct op_agent_pty *srv;

struct cli {
    int fd;
    int status; /* HTTP status of the handshake */
    char head[2048];
    uint8_t in[256 * 1024]; /* bytes received, not yet parsed */
    size_t inlen;
    char text[128 * 1024]; /* terminal output so far (binary messages), NUL-terminated */
    size_t textlen;
    uint64_t total; /* output bytes received in all */
    int close_code; /* 0 until a close frame came */
    char close_reason[128];
    bool got_pong;
    char pong[128];
};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Reads more bytes within ms; false on timeout or EOF. */
static bool fill(struct cli *c, int ms)
{
    struct pollfd pf = {c->fd, POLLIN, 0};
    if (poll(&pf, 1, ms) <= 0) return false;
    ssize_t n = recv(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen, 0);
    if (n <= 0) return false;
    c->inlen += (size_t)n;
    return true;
}

static void send_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        b += w;
        n -= (size_t)w;
    }
}

/* Opens a socket to the server and sends the request head; reads the answer's head. */
static bool open_cli(struct cli *c, const char *target, const char *key)
{
    memset(c, 0, sizeof(*c));
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return false;
    c->fd = sv[0];
    if (op_agent_pty_serve(srv, sv[1]) != 0) return false;
    char req[2048];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: agent\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s%s%s\r\n",
                     target, key ? "Sec-WebSocket-Key: " : "", key ? key : "", key ? "\r\n" : "");
    send_all(c->fd, req, (size_t)n);
    uint64_t end = op_now_ms() + WAIT_MS;
    char *e;
    while (!(e = memmem(c->in, c->inlen, "\r\n\r\n", 4)))
        if (op_now_ms() > end || !fill(c, 200)) return false;
    size_t hl = (size_t)(e - (char *)c->in) + 4;
    memcpy(c->head, c->in, hl < sizeof(c->head) ? hl : sizeof(c->head) - 1);
    c->status = atoi(c->head + 9);
    memmove(c->in, c->in + hl, c->inlen - hl);
    c->inlen -= hl;
    return true;
}

static bool open_session(struct cli *c, const char *uuid, const char *extra)
{
    char t[512];
    snprintf(t, sizeof(t), "/pty?reconnect=%s%s", uuid, extra ? extra : "&width=80&height=24");
    return open_cli(c, t, "dGhlIHNhbXBsZSBub25jZQ==") && c->status == 101;
}

static void close_cli(struct cli *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

static void send_frame(struct cli *c, uint8_t opcode, bool fin, bool masked, const void *p, size_t n)
{
    uint8_t h[14], key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t hl = 2;
    h[0] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (n < 126) {
        h[1] = (uint8_t)n;
    } else if (n < 65536) {
        h[1] = 126;
        h[2] = (uint8_t)(n >> 8);
        h[3] = (uint8_t)n;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    if (masked) {
        h[1] |= 0x80;
        memcpy(h + hl, key, 4);
        hl += 4;
    }
    uint8_t *buf = malloc(hl + n);
    memcpy(buf, h, hl);
    for (size_t i = 0; i < n; i++)
        buf[hl + i] = ((const uint8_t *)p)[i] ^ (masked ? key[i % 4] : 0);
    send_all(c->fd, buf, hl + n);
    free(buf);
}

/* {"data":"<keys>"} with the JSON escapes keys need here (\r, \n, ", \). */
static void send_keys(struct cli *c, const char *keys)
{
    char j[1024];
    size_t o = 0;
    o += (size_t)snprintf(j, sizeof(j), "{\"data\":\"");
    for (const char *k = keys; *k && o < sizeof(j) - 16; k++) {
        if (*k == '\r')
            o += (size_t)snprintf(j + o, sizeof(j) - o, "\\r");
        else if (*k == '\n')
            o += (size_t)snprintf(j + o, sizeof(j) - o, "\\n");
        else if (*k == '"' || *k == '\\')
            o += (size_t)snprintf(j + o, sizeof(j) - o, "\\%c", *k);
        else
            j[o++] = *k;
    }
    o += (size_t)snprintf(j + o, sizeof(j) - o, "\"}");
    send_frame(c, 0x1, true, true, j, o);
}

/* Parses the server frames received so far (they must be unmasked). Returns false on a bad frame. */
static bool parse_frames(struct cli *c)
{
    for (;;) {
        if (c->inlen < 2) return true;
        uint8_t op = c->in[0] & 0x0f;
        if (c->in[1] & 0x80) return false; /* a server never masks */
        uint64_t n = c->in[1] & 0x7f;
        size_t hl = 2;
        if (n == 126) {
            if (c->inlen < 4) return true;
            n = (uint64_t)c->in[2] << 8 | c->in[3];
            hl = 4;
        } else if (n == 127) {
            if (c->inlen < 10) return true;
            n = 0;
            for (int i = 0; i < 8; i++)
                n = n << 8 | c->in[2 + i];
            hl = 10;
        }
        if (c->inlen < hl + n) return true;
        const uint8_t *p = c->in + hl;
        if (op == 0x2 || op == 0x0) {
            c->total += n;
            if (c->textlen + n >= sizeof(c->text)) { /* keep the newer half */
                size_t keep = c->textlen / 2;
                memmove(c->text, c->text + c->textlen - keep, keep);
                c->textlen = keep;
            }
            size_t room = sizeof(c->text) - 1 - c->textlen, k = n < room ? (size_t)n : room;
            memcpy(c->text + c->textlen, p, k);
            c->textlen += k;
            c->text[c->textlen] = '\0';
        } else if (op == 0x8) {
            c->close_code = n >= 2 ? (p[0] << 8 | p[1]) : 1005;
            size_t rl = n >= 2 ? (size_t)n - 2 : 0;
            if (rl >= sizeof(c->close_reason)) rl = sizeof(c->close_reason) - 1;
            memcpy(c->close_reason, p + 2, rl);
            c->close_reason[rl] = '\0';
        } else if (op == 0xA) {
            c->got_pong = true;
            size_t k = n < sizeof(c->pong) - 1 ? (size_t)n : sizeof(c->pong) - 1;
            memcpy(c->pong, p, k);
            c->pong[k] = '\0';
        } else if (op != 0x9) {
            return false; /* the server sends binary, close, ping and pong only */
        }
        memmove(c->in, c->in + hl + n, c->inlen - hl - (size_t)n);
        c->inlen -= hl + (size_t)n;
    }
}

/* Waits until the output holds needle (after from), or a close came, or WAIT_MS passed. */
static bool wait_text(struct cli *c, size_t from, const char *needle)
{
    uint64_t end = op_now_ms() + WAIT_MS;
    for (;;) {
        if (!parse_frames(c)) return false;
        if (c->textlen > from && strstr(c->text + from, needle)) return true;
        if (c->close_code || op_now_ms() > end) return false;
        if (!fill(c, 100) && c->close_code) return false;
    }
}

static bool wait_close(struct cli *c)
{
    uint64_t end = op_now_ms() + WAIT_MS;
    while (!c->close_code && op_now_ms() < end) {
        if (!parse_frames(c)) return false;
        if (c->close_code) break;
        (void)fill(c, 100);
    }
    return parse_frames(c) && c->close_code != 0;
}

/* The shell's pid: `echo pid=$$.` and the first "pid=<digits>." in the output after from. */
static long shell_pid(struct cli *c)
{
    size_t from = c->textlen;
    send_keys(c, "echo pid=$$.\r");
    uint64_t end = op_now_ms() + WAIT_MS;
    while (op_now_ms() < end) {
        (void)fill(c, 100);
        if (!parse_frames(c)) return -1;
        for (const char *s = c->text + from; (s = strstr(s, "pid=")); s += 4) {
            char *e;
            long v = strtol(s + 4, &e, 10);
            if (e > s + 4 && *e == '.') return v;
        }
    }
    return -1;
}

static const char *U1 = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
static const char *U2 = "11111111-2222-3333-4444-555555555555";

static void test_handshake(void)
{
    struct cli c;
    CHECK(open_session(&c, U1, NULL), "101 for a good request (got %d)", c.status);
    CHECK(strstr(c.head, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != NULL,
          "accept key of RFC 6455's example key: %s", c.head);
    CHECK(strstr(c.head, "Upgrade: websocket\r\n") && strstr(c.head, "Connection: Upgrade\r\n"),
          "upgrade headers");
    CHECK(!strstr(c.head, "Sec-WebSocket-Extensions"), "no extension negotiated");
    send_keys(&c, "echo $((6*7))x\r");
    CHECK(wait_text(&c, 0, "42x"), "echo comes back: [%s]", c.text);
    send_keys(&c, "echo out-$((1+2))-marker\r");
    CHECK(wait_text(&c, 0, "out-3-marker"), "second command's output: [%s]", c.text);
    long pid = shell_pid(&c);
    CHECK(pid > 0, "the shell's pid is read (%ld)", pid);
    close_cli(&c);

    /* Reconnect: the scrollback first, then the same shell. */
    struct cli r;
    CHECK(open_session(&r, U1, NULL), "reconnect answered 101 (%d)", r.status);
    CHECK(wait_text(&r, 0, "out-3-marker"), "scrollback replayed: [%s]", r.text);
    long pid2 = shell_pid(&r);
    CHECK(pid2 == pid, "same shell after reconnecting (%ld vs %ld)", pid2, pid);

    /* A second socket on the same session: both see the output. */
    struct cli b;
    CHECK(open_session(&b, U1, NULL), "second socket answered 101");
    CHECK(wait_text(&b, 0, "42x"), "second socket gets the scrollback");
    size_t ra = r.textlen, rb = b.textlen;
    send_keys(&b, "echo both-$((5+5))\r");
    CHECK(wait_text(&b, rb, "both-10"), "typing socket sees the output");
    CHECK(wait_text(&r, ra, "both-10"), "the other socket sees it too: [%s]", r.text + ra);

    /* Ping -> pong with the same payload. */
    send_frame(&r, 0x9, true, true, "abc", 3);
    uint64_t end = op_now_ms() + WAIT_MS;
    while (!r.got_pong && op_now_ms() < end) {
        (void)fill(&r, 100);
        (void)parse_frames(&r);
    }
    CHECK(r.got_pong && strcmp(r.pong, "abc") == 0, "pong echoes the ping's payload (%d %s)", r.got_pong,
          r.pong);

    /* A fragmented message: {"data": ... split over a text frame and a continuation. */
    const char *p1 = "{\"data\":\"echo frag", *p2 = "-$((2*4))\\r\"}";
    send_frame(&r, 0x1, false, true, p1, strlen(p1));
    send_frame(&r, 0x0, true, true, p2, strlen(p2));
    CHECK(wait_text(&r, ra, "frag-8"), "fragmented message typed");
    close_cli(&b);
    close_cli(&r);
}

static void test_resize(void)
{
    struct cli c;
    CHECK(open_session(&c, U2, "&width=91&height=33"), "101");
    send_keys(&c, "stty size\r");
    CHECK(wait_text(&c, 0, "33 91"), "size from the query: [%s]", c.text);
    size_t from = c.textlen;
    const char *rs = "{\"height\":30,\"width\":100}";
    send_frame(&c, 0x1, true, true, rs, strlen(rs));
    send_keys(&c, "stty size\r");
    CHECK(wait_text(&c, from, "30 100"), "size after a resize message: [%s]", c.text + from);
    from = c.textlen;
    const char *both = "{\"height\":40,\"width\":120,\"data\":\"stty size\\r\"}";
    send_frame(&c, 0x1, true, true, both, strlen(both));
    CHECK(wait_text(&c, from, "40 120"), "resize and keys in one message: [%s]", c.text + from);
    close_cli(&c);
    /* Attaching with another size resizes the session. */
    CHECK(open_session(&c, U2, "&width=70&height=20"), "101");
    from = c.textlen;
    send_keys(&c, "stty size\r");
    CHECK(wait_text(&c, from, "20 70"), "size of the attaching socket: [%s]", c.text + from);
    close_cli(&c);
}

static void test_exit(void)
{
    struct cli c;
    CHECK(open_session(&c, "aaaaaaaa-0000-0000-0000-000000000003", NULL), "101");
    send_keys(&c, "exit 3\r");
    CHECK(wait_close(&c), "closed after exit");
    CHECK(c.close_code == 1000, "close code 1000 (got %d)", c.close_code);
    CHECK(strcmp(c.close_reason, "process exited with code 3") == 0, "reason: \"%s\"", c.close_reason);
    close_cli(&c);

    CHECK(open_session(&c, "aaaaaaaa-0000-0000-0000-000000000004", "&command=echo+cmd-%24((3*3));exit%205"),
          "101 for a command");
    CHECK(wait_close(&c), "a command's session closes");
    CHECK(strstr(c.text, "cmd-9") != NULL, "the command's output came first: [%s]", c.text);
    CHECK(c.close_code == 1000 && strcmp(c.close_reason, "process exited with code 5") == 0, "%d \"%s\"",
          c.close_code, c.close_reason);
    close_cli(&c);

    CHECK(open_session(&c, "aaaaaaaa-0000-0000-0000-000000000005", "&command=kill+-9+%24%24"), "101");
    CHECK(wait_close(&c), "closes after a signal");
    CHECK(strcmp(c.close_reason, "process killed by signal 9") == 0, "reason: \"%s\"", c.close_reason);
    close_cli(&c);
}

/* A reader that pauses while the shell writes ~1.3 MB: the PTY is not read while the socket is a
 * ring behind, so nothing is lost; then the same output once more in the scrollback of a reconnect. */
static void test_bulk(void)
{
    struct cli c;
    const char *id = "dddddddd-0000-0000-0000-000000000001";
    CHECK(open_session(&c, id, NULL), "101");
    send_keys(&c, "stty -echo; seq 1 200000; echo bulk-$((2+2))\r");
    sleep_ms(1500); /* not reading: the socket, then the ring fill up */
    CHECK(wait_text(&c, 0, "bulk-4"), "the end of the output arrives");
    uint64_t want = 0;
    for (long i = 1; i <= 200000; i++)
        want += (uint64_t)snprintf(NULL, 0, "%ld", i) + 2;
    CHECK(c.total >= want, "no output lost: %llu bytes, at least %llu expected", (unsigned long long)c.total,
          (unsigned long long)want);
    CHECK(strstr(c.text, "\n199999\r\n200000\r\n") != NULL, "the last lines in order");
    CHECK(c.close_code == 0, "not cut (%d %s)", c.close_code, c.close_reason);
    close_cli(&c);
    CHECK(open_session(&c, id, NULL), "reconnect: 101");
    CHECK(wait_text(&c, 0, "bulk-4"), "the scrollback ends with the latest output");
    uint64_t end = op_now_ms() + 300;
    while (op_now_ms() < end)
        (void)fill(&c, 50);
    (void)parse_frames(&c);
    CHECK(c.total <= OP_AGENT_PTY_RING && c.total >= OP_AGENT_PTY_RING - 64,
          "the scrollback is the last 64 KiB (%llu bytes)", (unsigned long long)c.total);
    CHECK(strstr(c.text, "\n200000\r\n") != NULL, "it holds the last line");
    close_cli(&c);
}

/* Keystrokes faster than the shell reads them: the PTY's input fills, the socket is not read meanwhile,
 * and every byte gets through in order once the shell reads again. */
static void test_typeahead(void)
{
    struct cli c;
    CHECK(open_session(&c, "dddddddd-0000-0000-0000-000000000002", NULL), "101");
    send_keys(&c, "stty -icanon -echo; sleep 1; head -c 120016 | wc -c; echo typed-$((3+3))\r");
    sleep_ms(100);
    size_t n = 40000;
    char *p = malloc(n + 16);
    memcpy(p, "{\"data\":\"", 9);
    memset(p + 9, 'k', n);
    memcpy(p + 9 + n, "\"}", 2);
    for (int i = 0; i < 3; i++)
        send_frame(&c, 0x1, true, true, p, n + 11);
    free(p);
    send_keys(&c, "0123456789abcdef"); /* read with the frame before it: waits in the input buffer */
    CHECK(wait_text(&c, 0, "typed-6"), "the shell read everything: [%s]", c.text);
    CHECK(strstr(c.text, "120016") != NULL, "120016 keystrokes arrived");
    close_cli(&c);
}

/* Reads until the server closes the socket (EOF) or WAIT_MS; the frames on the way are parsed. */
static bool wait_eof(struct cli *c)
{
    uint64_t end = op_now_ms() + WAIT_MS;
    while (op_now_ms() < end) {
        struct pollfd pf = {c->fd, POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0) continue;
        if (c->inlen == sizeof(c->in)) c->inlen = 0; /* a frame larger than the buffer cannot come */
        ssize_t n = recv(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen, 0);
        if (n <= 0) return true;
        c->inlen += (size_t)n;
        if (!parse_frames(c)) return false;
    }
    return false;
}

/* A socket that stops reading while output waits: with two sockets the other keeps the shell going and
 * the silent one is dropped once a ring behind; alone, it is cut after the stall time and the session
 * lives on for a reconnect. */
static void test_slow_reader(void)
{
    struct cli a, b;
    const char *id = "dddddddd-0000-0000-0000-000000000003";
    CHECK(open_session(&a, id, NULL), "101");
    CHECK(open_session(&b, id, NULL), "second socket: 101");
    send_keys(&a, "stty -echo; seq 1 300000; echo fast-$((4+4))\r");
    CHECK(wait_text(&a, 0, "fast-8"), "the reading socket gets all the output (%d %s)", a.close_code,
          a.close_reason);
    uint64_t want = 0;
    for (long i = 1; i <= 300000; i++)
        want += (uint64_t)snprintf(NULL, 0, "%ld", i) + 2;
    CHECK(a.total >= want, "nothing lost for it: %llu of %llu", (unsigned long long)a.total,
          (unsigned long long)want);
    CHECK(wait_eof(&b), "the silent socket was closed");
    CHECK(b.total < want, "it got less (%llu)", (unsigned long long)b.total);
    CHECK(b.close_code == 0 || b.close_code == 1008, "with 1008 if the close got through (%d)", b.close_code);
    close_cli(&b);
    close_cli(&a);

    /* A server that cuts a socket taking no output for 400 ms. */
    struct op_agent_pty *keep = srv;
    struct op_agent_pty_conf conf = {.max_sessions = 2, .timeout_ms = 5000, .stall_ms = 400};
    char err[256];
    CHECK(op_agent_pty_start(&conf, &srv, err, sizeof(err)) == 0, "second server: %s", err);
    const char *id2 = "dddddddd-0000-0000-0000-000000000004";
    CHECK(open_session(&a, id2, NULL), "101");
    send_keys(&a, "stty -echo; while :; do seq 1 1000; done\r");
    sleep_ms(1500); /* not reading */
    uint64_t t0 = op_now_ms();
    CHECK(wait_eof(&a), "the stalled socket was cut");
    CHECK(op_now_ms() - t0 < 3000, "at once after the stall time (%llu ms)",
          (unsigned long long)(op_now_ms() - t0));
    close_cli(&a);
    CHECK(open_session(&a, id2, NULL), "the session is still there: 101");
    CHECK(wait_text(&a, 0, "1000\r\n"), "its output goes on");
    send_keys(&a, "\x03");
    sleep_ms(200);
    size_t from = a.textlen;
    send_keys(&a, "echo alive-$((1+1))\r");
    CHECK(wait_text(&a, from, "alive-2"), "the same shell, interrupted: [%.200s]", a.text + from);
    close_cli(&a);
    op_agent_pty_stop(srv);
    srv = keep;
}

static void expect_close(const char *what, const char *uuid, int code, void (*send)(struct cli *))
{
    struct cli c;
    CHECK(open_session(&c, uuid, NULL), "%s: 101", what);
    send(&c);
    CHECK(wait_close(&c), "%s: closed", what);
    CHECK(c.close_code == code, "%s: close code %d (got %d, \"%s\")", what, code, c.close_code,
          c.close_reason);
    close_cli(&c);
}

static void send_unmasked(struct cli *c)
{
    send_frame(c, 0x1, true, false, "{\"data\":\"x\"}", 12);
}

static void send_big(struct cli *c)
{
    size_t n = 65 * 1024;
    char *p = malloc(n);
    memset(p, 'a', n);
    memcpy(p, "{\"data\":\"", 9);
    send_frame(c, 0x1, true, true, p, n);
    free(p);
}

static void send_bad_json(struct cli *c)
{
    send_frame(c, 0x1, true, true, "not json", 8);
}

static void send_array(struct cli *c)
{
    send_frame(c, 0x1, true, true, "[1,2]", 5);
}

static void send_bad_utf8(struct cli *c)
{
    send_frame(c, 0x1, true, true, "{\"data\":\"\xc0\xaf\"}", 13);
}

static void send_close(struct cli *c)
{
    send_frame(c, 0x8, true, true, "\x03\xe8", 2);
}

static void test_protocol_errors(void)
{
    expect_close("unmasked frame", "bbbbbbbb-0000-0000-0000-000000000001", 1002, send_unmasked);
    expect_close("65 KiB message", "bbbbbbbb-0000-0000-0000-000000000002", 1009, send_big);
    expect_close("not JSON", "bbbbbbbb-0000-0000-0000-000000000003", 1003, send_bad_json);
    expect_close("a JSON array", "bbbbbbbb-0000-0000-0000-000000000004", 1003, send_array);
    expect_close("bad UTF-8", "bbbbbbbb-0000-0000-0000-000000000005", 1007, send_bad_utf8);
    expect_close("client close", "bbbbbbbb-0000-0000-0000-000000000006", 1000, send_close);

    struct cli c;
    CHECK(open_cli(&c, "/other?reconnect=bbbbbbbb-0000-0000-0000-000000000001", "dGhlIHNhbXBsZSBub25jZQ==") &&
              c.status == 404,
          "other path: 404 (%d)", c.status);
    close_cli(&c);
    CHECK(open_cli(&c, "/pty?reconnect=not-a-uuid", "dGhlIHNhbXBsZSBub25jZQ==") && c.status == 400,
          "bad UUID: 400 (%d)", c.status);
    CHECK(strstr(c.head, "Content-Type: text/plain") != NULL, "plain-text error page");
    close_cli(&c);
    CHECK(open_cli(&c, "/pty?width=80", "dGhlIHNhbXBsZSBub25jZQ==") && c.status == 400, "no UUID: 400 (%d)",
          c.status);
    close_cli(&c);
    CHECK(open_cli(&c, "/pty?reconnect=bbbbbbbb-0000-0000-0000-000000000001", NULL) && c.status == 400,
          "no key: 400 (%d)", c.status);
    close_cli(&c);
    CHECK(open_cli(&c, "/pty?reconnect=bbbbbbbb-0000-0000-0000-000000000001", "short==") && c.status == 400,
          "bad key: 400 (%d)", c.status);
    close_cli(&c);
    CHECK(open_cli(&c, "/pty?reconnect=bbbbbbbb-0000-0000-0000-000000000001&width=0",
                   "dGhlIHNhbXBsZSBub25jZQ==") &&
              c.status == 400,
          "width 0: 400 (%d)", c.status);
    close_cli(&c);
}

static void test_limit_and_timeout(void)
{
    sleep_ms(TIMEOUT_MS * 3); /* the sessions of the tests above time out */
    struct cli c[MAX_SESSIONS + 1];
    char id[64];
    for (int i = 0; i < MAX_SESSIONS; i++) {
        snprintf(id, sizeof(id), "cccccccc-0000-0000-0000-00000000000%d", i);
        CHECK(open_session(&c[i], id, NULL), "session %d of %d: 101 (%d)", i + 1, MAX_SESSIONS, c[i].status);
    }
    CHECK(open_cli(&c[MAX_SESSIONS], "/pty?reconnect=cccccccc-0000-0000-0000-0000000000ff",
                   "dGhlIHNhbXBsZSBub25jZQ==") &&
              c[MAX_SESSIONS].status == 503,
          "over the limit: 503 (%d)", c[MAX_SESSIONS].status);
    CHECK(strstr(c[MAX_SESSIONS].head, "\r\n\r\n") != NULL, "a head");
    uint64_t end = op_now_ms() + WAIT_MS;
    while (!strstr((char *)c[MAX_SESSIONS].in, "too many terminal sessions") && op_now_ms() < end)
        if (!fill(&c[MAX_SESSIONS], 100)) break;
    c[MAX_SESSIONS].in[c[MAX_SESSIONS].inlen] = 0;
    CHECK(strstr((char *)c[MAX_SESSIONS].in, "too many terminal sessions") != NULL, "the reason: %s",
          (char *)c[MAX_SESSIONS].in);
    close_cli(&c[MAX_SESSIONS]);
    /* Reattaching to an existing session is not a new session. */
    struct cli again;
    CHECK(open_session(&again, "cccccccc-0000-0000-0000-000000000000", NULL), "reattach at the limit: 101");
    close_cli(&again);

    /* The reconnect timeout: session 0's shell is hung up once no socket is attached. */
    long pid = shell_pid(&c[0]);
    CHECK(pid > 0, "pid %ld", pid);
    send_keys(&c[0], "echo old-$((7+7))\r");
    CHECK(wait_text(&c[0], 0, "old-14"), "output before the timeout");
    for (int i = 0; i < MAX_SESSIONS; i++)
        close_cli(&c[i]);
    sleep_ms(TIMEOUT_MS / 3);
    CHECK(kill((pid_t)pid, 0) == 0, "the shell lives on within the timeout");
    end = op_now_ms() + WAIT_MS;
    while (kill((pid_t)pid, 0) == 0 && op_now_ms() < end)
        sleep_ms(50);
    CHECK(kill((pid_t)pid, 0) != 0 && errno == ESRCH, "the shell was hung up and reaped after the timeout");
    struct cli n;
    CHECK(open_session(&n, "cccccccc-0000-0000-0000-000000000000", NULL), "the same UUID again: 101");
    long pid2 = shell_pid(&n);
    CHECK(pid2 > 0 && pid2 != pid, "a new shell (%ld, was %ld)", pid2, pid);
    CHECK(!strstr(n.text, "old-14"), "no scrollback of the old session");
    /* The limit frees up as sessions time out. */
    struct cli m;
    CHECK(open_session(&m, "cccccccc-0000-0000-0000-0000000000ff", NULL), "room again after the timeout");
    long mpid = shell_pid(&m);
    CHECK(mpid > 0, "pid %ld", mpid);
    /* Stopping the server closes the sockets (1001) and ends the shells. */
    op_agent_pty_stop(srv);
    srv = NULL;
    CHECK(wait_close(&m), "stop closes the socket");
    CHECK(m.close_code == 1001, "with 1001 (%d)", m.close_code);
    CHECK(kill((pid_t)mpid, 0) != 0, "the shell is gone after stop");
    close_cli(&n);
    close_cli(&m);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    char home[] = "/tmp/outpost-pty-test-XXXXXX";
    if (!mkdtemp(home)) return 2;
    setenv("HOME", home, 1);
    setenv("SHELL", "/bin/sh", 1);
    setenv("PS1", "$ ", 1);
    struct op_agent_pty_conf conf = {.max_sessions = MAX_SESSIONS, .timeout_ms = TIMEOUT_MS};
    char err[256];
    int rc = op_agent_pty_start(&conf, &srv, err, sizeof(err));
    CHECK(rc == 0, "start: %s", err);
    if (rc) return check_report("agent terminal server");
    test_handshake();
    test_resize();
    test_exit();
    test_bulk();
    test_typeahead();
    test_slow_reader();
    test_protocol_errors();
    test_limit_and_timeout();
    if (srv) op_agent_pty_stop(srv);
    rmdir(home);
    return check_report("agent terminal server: handshake, output, reconnect, resize, exit, errors, limits");
}
