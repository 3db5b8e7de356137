/* Unit test: wsproxy/config — precedence (flag > env-file > env > YAML > default), Coder's example
 * verbatim, YAML round trip of --write-config, and validation of each kind of bad value. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "tests/unit/check.h"
#include "wsproxy/config.h"
#include "wsproxy/wsproxy.h"

#define TOKEN                                                                                                \
    "d7bad362-1269-4299-8996-5fa6192815ee:4x9TIVq8B39xaqGbr54dxSHlA904F5xkaZXZaWgewgw9CHTU0r4Zocc1RfOUu6rn"

static char dir[] = "/tmp/outpost-wsconf.XXXXXX";

static void clear_env(void)
{
    for (int i = 0; i < OP_WO_COUNT; i++)
        if (op_ws_opts[i].env) unsetenv(op_ws_opts[i].env);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static int load(struct op_conf *c, char *err, size_t errlen, ...)
{
    char *argv[32] = {"server"};
    int argc = 1;
    va_list ap;
    va_start(ap, errlen);
    for (char *a; (a = va_arg(ap, char *)) && argc < 31;)
        argv[argc++] = a;
    va_end(ap);
    return op_ws_conf_load(c, argc, argv, err, errlen);
}

/* Loads with env already set and the given args, validates, and returns the validation code. */
static int validate_with(char *err, size_t errlen, const char *a1, const char *a2)
{
    struct op_conf c;
    int rc = load(&c, err, errlen, (char *)a1, (char *)a2, (char *)NULL);
    if (rc == 0) rc = op_ws_conf_validate(&c, err, errlen);
    op_ws_conf_free(&c);
    return rc;
}

int main(void)
{
    char err[1024];
    struct op_conf c;
    if (!mkdtemp(dir)) return 2;
    char cert[256], key[256], yaml[256], envf[256], out[256];
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(yaml, sizeof(yaml), "%s/c.yaml", dir);
    snprintf(envf, sizeof(envf), "%s/proxy.env", dir);
    snprintf(out, sizeof(out), "%s/out.yaml", dir);
    write_file(cert, "cert\n");
    write_file(key, "key\n");

    printf("defaults and required options\n");
    clear_env();
    CHECK(load(&c, err, sizeof(err), (char *)NULL) == 0, "load: %s", err);
    CHECK(strcmp(op_ws_str(&c, OP_WO_HTTP_ADDRESS), "127.0.0.1:3000") == 0, "http default");
    CHECK(strcmp(op_ws_str(&c, OP_WO_PROMETHEUS_ADDRESS), "127.0.0.1:2112") == 0, "prometheus default");
    CHECK(op_ws_bool(&c, OP_WO_TLS_REDIRECT) && !op_ws_bool(&c, OP_WO_TLS_ENABLE), "bool defaults");
    CHECK(op_ws_conf_validate(&c, err, sizeof(err)) == EX_CONFIG &&
              strstr(err, "Missing values for the required flags: proxy-session-token, primary-access-url"),
          "required: %s", err);
    op_ws_conf_free(&c);

    printf("Coder's example, as environment variables, verbatim\n");
    setenv("CODER_HTTP_ADDRESS", "0.0.0.0:80", 1);
    setenv("CODER_TLS_ADDRESS", "0.0.0.0:443", 1);
    setenv("CODER_PRIMARY_ACCESS_URL", "https://coder.example.com", 1);
    setenv("CODER_PROXY_SESSION_TOKEN", TOKEN, 1);
    setenv("CODER_ACCESS_URL", "https://eu.example.com", 1);
    setenv("CODER_WILDCARD_ACCESS_URL", "*.eu.example.com", 1);
    setenv("CODER_TLS_ENABLE", "true", 1);
    setenv("CODER_TLS_CLIENT_AUTH", "none", 1);
    setenv("CODER_TLS_CERT_FILE", cert, 1);
    setenv("CODER_TLS_KEY_FILE", key, 1);
    CHECK(load(&c, err, sizeof(err), (char *)NULL) == 0, "load: %s", err);
    CHECK(op_ws_conf_validate(&c, err, sizeof(err)) == 0, "example configuration rejected: %s", err);
    CHECK(op_ws_bool(&c, OP_WO_TLS_ENABLE) && c.src[OP_WO_TLS_ENABLE] == OP_OS_ENV, "tls enable from env");
    CHECK(strcmp(op_ws_str(&c, OP_WO_TLS_ADDRESS), "0.0.0.0:443") == 0, "tls address");

    printf("--write-config round trip through --config, secrets left out\n");
    FILE *f = fopen(out, "w");
    op_ws_write_yaml(&c, f);
    fclose(f);
    op_ws_conf_free(&c);
    clear_env();
    setenv("CODER_PROXY_SESSION_TOKEN", TOKEN, 1);
    CHECK(load(&c, err, sizeof(err), "--config", out, (char *)NULL) == 0, "reload written yaml: %s", err);
    CHECK(op_ws_conf_validate(&c, err, sizeof(err)) == 0, "round trip invalid: %s", err);
    CHECK(strcmp(op_ws_str(&c, OP_WO_WILDCARD_ACCESS_URL), "*.eu.example.com") == 0 &&
              c.src[OP_WO_WILDCARD_ACCESS_URL] == OP_OS_YAML,
          "wildcard from yaml");
    CHECK(strcmp(op_ws_str(&c, OP_WO_TLS_CERT_FILE), cert) == 0, "cert list from yaml");
    CHECK(c.src[OP_WO_PROXY_SESSION_TOKEN] == OP_OS_ENV, "token not in the YAML");
    op_ws_conf_free(&c);
    {
        FILE *y = fopen(out, "r");
        char buf[16384];
        size_t n = fread(buf, 1, sizeof(buf) - 1, y);
        buf[n] = '\0';
        fclose(y);
        CHECK(!strstr(buf, "4x9TIVq8B39") && !strstr(buf, "proxySessionToken"), "secret written to YAML");
    }

    printf("precedence: flag > env-file > env > YAML > default\n");
    clear_env();
    write_file(
        yaml, "networking:\n  http:\n    httpAddress: 127.0.0.1:1111\n  tls:\n    certFiles: [a.pem, b.pem]\n"
              "introspection:\n  prometheus:\n    address: 127.0.0.1:2222\n    enable: true\n"
              "externalWorkspaceProxy:\n  primaryAccessURL: http://yaml.example\n");
    CHECK(load(&c, err, sizeof(err), "--config", yaml, (char *)NULL) == 0, "yaml: %s", err);
    CHECK(strcmp(op_ws_str(&c, OP_WO_HTTP_ADDRESS), "127.0.0.1:1111") == 0, "yaml beats default");
    CHECK(strcmp(op_ws_str(&c, OP_WO_TLS_CERT_FILE), "a.pem,b.pem") == 0, "yaml list");
    CHECK(op_ws_bool(&c, OP_WO_PROMETHEUS_ENABLE), "yaml bool");
    op_ws_conf_free(&c);
    setenv("CODER_HTTP_ADDRESS", "127.0.0.1:3333", 1);
    setenv("CODER_CONFIG_PATH", yaml, 1);
    CHECK(load(&c, err, sizeof(err), (char *)NULL) == 0, "env: %s", err);
    CHECK(strcmp(op_ws_str(&c, OP_WO_HTTP_ADDRESS), "127.0.0.1:3333") == 0, "env beats yaml");
    CHECK(strcmp(op_ws_str(&c, OP_WO_PRIMARY_ACCESS_URL), "http://yaml.example") == 0,
          "CODER_CONFIG_PATH read");
    op_ws_conf_free(&c);
    write_file(envf, "# systemd EnvironmentFile\nCODER_HTTP_ADDRESS=\"127.0.0.1:4444\"\nOTHER_VAR=1\n"
                     "CODER_PROMETHEUS_ADDRESS=127.0.0.1:5555\n");
    setenv("CODER_ENV_FILE", envf, 1);
    CHECK(load(&c, err, sizeof(err), (char *)NULL) == 0, "envfile: %s", err);
    CHECK(strcmp(op_ws_str(&c, OP_WO_HTTP_ADDRESS), "127.0.0.1:4444") == 0, "env-file beats env");
    CHECK(strcmp(op_ws_str(&c, OP_WO_PROMETHEUS_ADDRESS), "127.0.0.1:5555") == 0, "env-file beats yaml");
    op_ws_conf_free(&c);
    CHECK(load(&c, err, sizeof(err), "--http-address=127.0.0.1:6666", "--tls-cert-file", "x.pem",
               "--tls-cert-file", "y.pem", (char *)NULL) == 0,
          "flags: %s", err);
    CHECK(strcmp(op_ws_str(&c, OP_WO_HTTP_ADDRESS), "127.0.0.1:6666") == 0, "flag beats all");
    CHECK(strcmp(op_ws_str(&c, OP_WO_TLS_CERT_FILE), "x.pem,y.pem") == 0, "repeated flag appends");
    op_ws_conf_free(&c);
    setenv("CODER_HTTP_ADDRESS", "", 1);
    unsetenv("CODER_ENV_FILE");
    CHECK(load(&c, err, sizeof(err), (char *)NULL) == 0 && strcmp(op_ws_str(&c, OP_WO_HTTP_ADDRESS), "") == 0,
          "an empty env value is a value (disables HTTP), unlike serpent");
    op_ws_conf_free(&c);

    printf("YAML errors name the key\n");
    clear_env();
    write_file(yaml, "networking:\n  nosuchKey: 1\n");
    CHECK(load(&c, err, sizeof(err), "--config", yaml, (char *)NULL) == EX_CONFIG &&
              strstr(err, "networking.nosuchKey"),
          "unknown key: %s", err);
    op_ws_conf_free(&c);
    write_file(yaml, "networking: [\n");
    CHECK(load(&c, err, sizeof(err), "--config", yaml, (char *)NULL) == EX_CONFIG && strstr(err, "YAML"),
          "syntax: %s", err);
    op_ws_conf_free(&c);
    CHECK(load(&c, err, sizeof(err), "--nope", (char *)NULL) == EX_USAGE && strstr(err, "--nope"),
          "unknown flag");
    op_ws_conf_free(&c);

    printf("validation: each kind of bad value is caught and named\n");
    clear_env();
    setenv("CODER_PROXY_SESSION_TOKEN", TOKEN, 1);
    setenv("CODER_PRIMARY_ACCESS_URL", "http://127.0.0.1:1", 1);
    CHECK(validate_with(err, sizeof(err), NULL, NULL) == 0, "baseline: %s", err);
    static const struct {
        const char *arg, *needle;
    } bad[] = {
        {"--primary-access-url=ftp://x", "primary-access-url"},
        {"--access-url=eu.example.com", "access-url"},
        {"--access-url=https://eu.example.com/proxy", "access-url"},
        {"--http-address=127.0.0.1", "http-address"},
        {"--http-address=999.1.1.1:80", "http-address"},
        {"--prometheus-address=127.0.0.1:notaport", "prometheus-address"},
        {"--tls-enable=maybe", "tls-enable"},
        {"--strict-transport-security=abc", "strict-transport-security"},
        {"--strict-transport-security-options=bogus", "strict-transport-security-options"},
        {"--drain-timeout=10parsecs", "drain-timeout"},
        {"--tls-client-auth=sometimes", "tls-client-auth"},
        {"--tls-client-auth=request", "tls-client-auth"},
        {"--tls-min-version=tls10", "tls-min-version"},
        {"--tls-client-ca-file=/nonexistent/ca.pem", "tls-client-ca-file"},
        {"--wildcard-access-url=eu.example.com", "wildcard-access-url"},
        {"--wildcard-access-url=https://*.eu.example.com", "wildcard-access-url"},
        {"--wildcard-access-url=*.*.example.com", "wildcard-access-url"},
        {"--wildcard-access-url=*", "wildcard-access-url"},
        {"--proxy-session-token=short", "proxy-session-token"},
        {"--tls-enable", "tls-cert-file"},
        {"--log-json=/var/log/x.json", "log-json"},
        {"--workers=-1", "workers"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = validate_with(err, sizeof(err), bad[i].arg, NULL);
        CHECK(rc == EX_CONFIG && strstr(err, bad[i].needle), "%s: rc=%d err=%s", bad[i].arg, rc, err);
    }
    CHECK(validate_with(err, sizeof(err), "--tls-enable", "--tls-cert-file=/nonexistent.pem") == EX_CONFIG &&
              strstr(err, "tls-cert-file") && strstr(err, "cannot read"),
          "unreadable cert: %s", err);
    CHECK(validate_with(err, sizeof(err), "--derp-only", "--derp-server-enable=false") == EX_CONFIG &&
              strstr(err, "derp-only"),
          "derp-only without derp: %s", err);
    CHECK(validate_with(err, sizeof(err), "--wildcard-access-url=*--apps.eu.example.com:8443", NULL) == 0,
          "suffix wildcard with port: %s", err);
    CHECK(validate_with(err, sizeof(err), "--http-address=", "--tls-enable=false") == EX_CONFIG &&
              strstr(err, "http-address"),
          "no listener: %s", err);

    printf("the version rule (durations: tests/unit/test_util.c)\n");
    CHECK(op_ws_versions_match("v2.22.1+abc", "v2.22.9"), "patch ignored");
    CHECK(!op_ws_versions_match("v2.22.1", "v2.23.0"), "minor differs");
    CHECK(op_ws_versions_match("v0.0.0-devel+1", "v2.3.0"), "dev builds match");

    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
    return check_report("wsproxy configuration");
}
