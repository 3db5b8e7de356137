/*
 * Unit tests for the agent's parsers: /proc/net/tcp{,6} (agent/procnet.c), `--app` specs and app URLs
 * (agent/apps.c), and the agent's option rules (agent/options.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <unistd.h>

#include "agent/apps.h"
#include "agent/options.h"
#include "agent/procnet.h"
#include "tests/unit/check.h"

static const char tcp4[] =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1607 1 "
    "0000000053e272b0 100 0 0 10 0\n"
    "   1: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1234 1 "
    "0000000000000000 100 0 0 10 0\n"
    "   2: 0100007F:DC0B 0100007F:1F40 01 00000000:00000000 03:00000651 00000000     0        0 0 3 "
    "000000005893ee23\n"
    "   3: 0100007F:1F40 0100007F:DC0B 06 00000000:00000000 03:00000651 00000000     0        0 0 3 "
    "000000005893ee23\n";

static const char tcp6[] =
    "  sl  local_address                         remote_address                        st tx_queue rx_queue\n"
    "   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 "
    "00:00000000 00000000     0        0 2000 1 0000000000000000 100 0 0 10 0\n"
    "   1: 00000000000000000000000001000000:1F40 00000000000000000000000000000000:0000 0A 00000000:00000000 "
    "00:00000000 00000000     0        0 2001 1 0000000000000000 100 0 0 10 0\n";

static void test_procnet(void)
{
    struct op_port_set s;
    memset(&s, 0, sizeof(s));
    int n = op_procnet_parse(tcp4, strlen(tcp4), &s);
    CHECK(n == 2, "two LISTEN sockets in tcp4, got %d", n);
    CHECK(s.n == 2 && s.port[0] == 2024 && s.port[1] == 8000, "ports 2024, 8000 (got %d)", s.n);
    CHECK(s.skipped == 0, "no malformed lines (got %d)", s.skipped);
    CHECK(s.inode[0] == 1607 && s.inode[1] == 1234, "the inodes of 2024 and 8000 (%llu, %llu)",
          (unsigned long long)s.inode[0], (unsigned long long)s.inode[1]);
    n = op_procnet_parse(tcp6, strlen(tcp6), &s);
    CHECK(n == 2 && s.n == 3 && s.port[0] == 22 && s.port[1] == 2024 && s.port[2] == 8000,
          "tcp6 adds 22, 8000 is not repeated (n=%d, set=%d)", n, s.n);
    CHECK(s.inode[0] == 2000 && s.inode[1] == 1607 && s.inode[2] == 1234,
          "22 has its inode, 8000 keeps the first one seen (%llu)", (unsigned long long)s.inode[2]);
    /* Malformed lines are skipped and counted, the rest still parses; no trailing newline is needed. */
    const char *bad = "header\n   0: 0100007F:ZZZZ 00000000:0000 0A\n   1: 0100007F:0050 00000000:0000 0A\n"
                      "garbage\n\n   2: 0100007F:0051 00000000:0000 0A";
    memset(&s, 0, sizeof(s));
    n = op_procnet_parse(bad, strlen(bad), &s);
    CHECK(n == 2 && s.n == 2 && s.port[0] == 80 && s.port[1] == 81, "80 and 81 (n=%d)", n);
    CHECK(s.skipped == 2, "two malformed lines (got %d)", s.skipped);
    /* Only the header, or nothing at all. */
    memset(&s, 0, sizeof(s));
    CHECK(op_procnet_parse("  sl  local_address\n", 20, &s) == 0 && s.n == 0, "header only");
    CHECK(op_procnet_parse("", 0, &s) == 0, "empty");
    /* Port 0 in LISTEN is not a port; a wrong address length is malformed. */
    const char *odd = "h\n 0: 0100007F:0000 00000000:0000 0A\n 1: 0100007F0:0050 00000000:0000 0A\n";
    memset(&s, 0, sizeof(s));
    CHECK(op_procnet_parse(odd, strlen(odd), &s) == 0 && s.skipped == 2, "port 0 and a long address");
    /* The set stays sorted, unique and bounded. */
    memset(&s, 0, sizeof(s));
    char *big = malloc(400 * 160);
    size_t off = (size_t)sprintf(big, "h\n");
    for (int i = 400; i > 0; i--)
        off += (size_t)sprintf(big + off, " %d: 00000000:%04X 00000000:0000 0A 0\n", i, 1000 + i % 300);
    n = op_procnet_parse(big, off, &s);
    free(big);
    CHECK(n == 400 && s.n == 256, "256 kept of 300 distinct (n=%d set=%d)", n, s.n);
    bool sorted = true;
    for (int i = 1; i < s.n; i++)
        sorted = sorted && s.port[i - 1] < s.port[i];
    CHECK(sorted, "sorted and unique");
    /* A line that stops before the inode, or a non-numeric one: the port without an inode. */
    memset(&s, 0, sizeof(s));
    const char *noino =
        "h\n 0: 0100007F:0050 00000000:0000 0A 0:0 0:0 0 0 0 x12\n 1: 0100007F:0051 00000000:0000 0A\n";
    CHECK(op_procnet_parse(noino, strlen(noino), &s) == 2 && s.n == 2 && !s.inode[0] && !s.inode[1] &&
              s.skipped == 0,
          "ports without inodes");
    /* The real files parse (whatever listens on this machine). */
    CHECK(op_procnet_read(&s) == 0 && s.skipped == 0, "/proc/net/tcp{,6} read, %d malformed", s.skipped);
    /* A socket of this process: found with its inode and named after this program. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 1) == 0 &&
              getsockname(fd, (struct sockaddr *)&sa, &sl) == 0,
          "a listening socket");
    uint16_t mine = ntohs(sa.sin_port);
    char comm[OP_PROCNET_NAME_MAX] = "";
    FILE *f = fopen("/proc/self/comm", "r");
    if (f) {
        if (fgets(comm, sizeof(comm), f)) comm[strcspn(comm, "\n")] = '\0';
        fclose(f);
    }
    CHECK(op_procnet_read(&s) == 0, "read again");
    int at = -1;
    for (int i = 0; i < s.n; i++)
        if (s.port[i] == mine) at = i;
    CHECK(at >= 0 && s.inode[at] != 0, "our port %u is listed with an inode", mine);
    int named = op_procnet_names(&s);
    CHECK(at >= 0 && named >= 1 && strcmp(s.name[at], comm) == 0, "named %s (want %s, %d named)",
          at >= 0 ? s.name[at] : "?", comm, named);
    struct op_port_set again;
    CHECK(op_procnet_read(&again) == 0 && op_procnet_same(&s, &again), "an unchanged set is the same");
    close(fd);
    CHECK(op_procnet_read(&again) == 0 && !op_procnet_same(&s, &again), "a closed socket changes it");
}

static void test_apps(void)
{
    struct op_agent_app a;
    char err[400];
    int rc = op_agent_app_parse("slug=web,url=http://127.0.0.1:8000,name=Web,share=public,subdomain=true,"
                                "icon=/icon/web.svg",
                                &a, err, sizeof(err));
    CHECK(rc == 0, "full spec: %s", err);
    CHECK(strcmp(a.slug, "web") == 0 && strcmp(a.url, "http://127.0.0.1:8000") == 0 &&
              strcmp(a.name, "Web") == 0 && strcmp(a.share, "public") == 0 && a.subdomain &&
              strcmp(a.icon, "/icon/web.svg") == 0,
          "fields");
    CHECK(strcmp(a.host, "127.0.0.1") == 0 && a.port == 8000, "host and port from the URL");
    rc = op_agent_app_parse("url=https://grafana.internal/d?a=1,b=2,slug=graf", &a, err, sizeof(err));
    CHECK(rc == 0 && strcmp(a.url, "https://grafana.internal/d?a=1,b=2") == 0 && strcmp(a.slug, "graf") == 0,
          "a comma inside the URL stays in it: %s", err);
    CHECK(strcmp(a.name, "graf") == 0 && strcmp(a.share, "owner") == 0 && !a.subdomain && a.port == 443,
          "defaults: name = slug, share owner, port 443");
    static const char *const bad[] = {
        "url=http://x",                     /* no slug */
        "slug=web",                         /* no url */
        "slug=Web,url=http://x",            /* upper case */
        "slug=a--b,url=http://x",           /* double hyphen */
        "slug=web,url=ftp://x",             /* scheme */
        "slug=web,url=http://",             /* no host */
        "slug=web,url=http://x:0",          /* port 0 */
        "slug=web,url=http://x:70000",      /* port range */
        "slug=web,url=http://x,share=team", /* share */
        "slug=web,url=http://x,subdomain=maybe",
        "slug=web,url=http://x,color=red", /* unknown key */
        "slug=web,slug=api,url=http://x",  /* twice */
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        CHECK(op_agent_app_parse(bad[i], &a, err, sizeof(err)) == -EINVAL && *err, "refused: \"%s\"", bad[i]);
    }
    char host[64];
    uint16_t port;
    CHECK(op_agent_url_hostport("http://[::1]:9000/x", host, sizeof(host), &port) == 0 &&
              strcmp(host, "::1") == 0 && port == 9000,
          "IPv6 literal");
    CHECK(op_agent_url_hostport("http://user@h:81", host, sizeof(host), &port) == 0 &&
              strcmp(host, "h") == 0 && port == 81,
          "userinfo skipped");
    CHECK(op_agent_host_is_loopback("localhost") && op_agent_host_is_loopback("LOCALHOST.") &&
              op_agent_host_is_loopback("web.localhost") && op_agent_host_is_loopback("127.9.9.9") &&
              op_agent_host_is_loopback("::1"),
          "loopback names (RFC 6761) and addresses");
    CHECK(!op_agent_host_is_loopback("localhost.example.com") && !op_agent_host_is_loopback("xlocalhost") &&
              !op_agent_host_is_loopback("10.0.0.1") && !op_agent_host_is_loopback("::2") &&
              !op_agent_host_is_loopback("128.0.0.1"),
          "not loopback");
}

static int load(struct op_conf *c, int argc, char **argv)
{
    char err[512];
    int rc = op_conf_load(c, &op_agent_optset, argc, argv, err, sizeof(err));
    return rc ? rc : op_agent_conf_validate(c, NULL, NULL, err, sizeof(err));
}

static void test_options(void)
{
    unsetenv("CODER_AGENT_TOKEN");
    unsetenv("CODER_AGENT_TOKEN_FILE");
    unsetenv("CODER_AGENT_APPS");
    setenv("CODER_AGENT_URL", "http://127.0.0.1:3000", 1);
    struct op_conf c;
    char tok[] = "--agent-token=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0:"
                 "abcdefghijABCDEFGHIJ0123456789abcdefghijABCDEFGHIJ0123456789abcd";
    char *ok[] = {"agent", tok,
                  "--app", "slug=web,url=http://127.0.0.1:8000",
                  "--app", "slug=api,url=http://api.localhost:9000,share=authenticated"};
    CHECK(load(&c, 6, ok) == 0, "a valid configuration");
    char buf[4096];
    const char *items[8];
    CHECK(op_conf_list(&c, OP_AO_APP, buf, sizeof(buf), items, 8) == 2, "two apps from repeated --app");
    CHECK(op_conf_int(&c, OP_AO_SPARES) == 2 && op_conf_int(&c, OP_AO_MAX_STREAMS) == 512 &&
              op_conf_duration_ms(&c, OP_AO_BACKOFF_MAX) == 30000 &&
              op_conf_int(&c, OP_AO_MAX_PTY_SESSIONS) == 64 &&
              op_conf_duration_ms(&c, OP_AO_PTY_TIMEOUT) == 300000,
          "documented defaults");
    op_conf_free(&c);
    char *none[] = {"agent"};
    CHECK(load(&c, 1, none) == EX_CONFIG, "no token: EX_CONFIG");
    op_conf_free(&c);
    char *badtok[] = {"agent", "--agent-token", "nope"};
    CHECK(load(&c, 3, badtok) == EX_CONFIG, "malformed token: EX_CONFIG");
    op_conf_free(&c);
    char *badapp[] = {"agent", tok, "--app", "slug=web"};
    CHECK(load(&c, 4, badapp) == EX_CONFIG, "app without url: EX_CONFIG");
    op_conf_free(&c);
    char *limits[] = {"agent", tok, "--spares", "9", "--max-spares", "8"};
    CHECK(load(&c, 6, limits) == EX_CONFIG, "spares above max-spares: EX_CONFIG");
    op_conf_free(&c);
    char *pty_ok[] = {"agent", tok, "--max-pty-sessions", "0", "--reconnecting-pty-timeout", "30s"};
    CHECK(load(&c, 6, pty_ok) == 0 && op_conf_int(&c, OP_AO_MAX_PTY_SESSIONS) == 0 &&
              op_conf_duration_ms(&c, OP_AO_PTY_TIMEOUT) == 30000,
          "terminal server off, a 30s reconnect timeout");
    op_conf_free(&c);
    char *pty_many[] = {"agent", tok, "--max-pty-sessions", "4097"};
    CHECK(load(&c, 4, pty_many) == EX_CONFIG, "max-pty-sessions above 4096: EX_CONFIG");
    op_conf_free(&c);
    char *pty_short[] = {"agent", tok, "--reconnecting-pty-timeout", "10ms"};
    CHECK(load(&c, 4, pty_short) == EX_CONFIG, "reconnecting-pty-timeout under 100ms: EX_CONFIG");
    op_conf_free(&c);
    char *pos[] = {"agent", "extra"};
    char err[256];
    CHECK(op_conf_load(&c, &op_agent_optset, 2, pos, err, sizeof(err)) == EX_USAGE &&
              strstr(err, "the agent takes no positional arguments"),
          "a positional argument: EX_USAGE (%s)", err);
    op_conf_free(&c);
    /* Several apps in the environment are separated by ';' (each spec has commas). */
    setenv("CODER_AGENT_APPS", "slug=a,url=http://127.0.0.1:1;slug=b,url=http://127.0.0.1:2,name=B", 1);
    char *envonly[] = {"agent", tok};
    CHECK(load(&c, 2, envonly) == 0, "apps from CODER_AGENT_APPS");
    struct op_agent_app apps[OP_AGENT_MAX_APPS];
    int n = 0;
    CHECK(op_agent_conf_validate(&c, apps, &n, err, sizeof(err)) == 0 && n == 2 &&
              strcmp(apps[1].name, "B") == 0,
          "two apps parsed from the environment (%d)", n);
    op_conf_free(&c);
    setenv("CODER_AGENT_APPS", "slug=a,url=http://127.0.0.1:1;slug=a,url=http://127.0.0.1:2", 1);
    CHECK(op_conf_load(&c, &op_agent_optset, 2, envonly, err, sizeof(err)) == 0 &&
              op_agent_conf_validate(&c, apps, &n, err, sizeof(err)) == EX_CONFIG,
          "a slug used twice: EX_CONFIG");
    op_conf_free(&c);
    unsetenv("CODER_AGENT_APPS");
}

int main(void)
{
    test_procnet();
    test_apps();
    test_options();
    return check_report("agent parsers: /proc/net/tcp, app specs, options");
}
