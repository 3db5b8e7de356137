/*
 * cli/login.c — `outpost login [<url>]` (first-user setup, password login or a given token) and
 * `outpost logout`. The session is stored in the config dir (files url and session, mode 0600).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cli/client.h"
#include "cli/cmd.h"

static const char login_help[] =
    "USAGE:\n"
    "  outpost login [flags] [<url>]\n"
    "\n"
    "  Authenticate with the primary. On a fresh primary this creates the first\n"
    "  user (an owner); missing values are prompted for when stdin is a terminal.\n"
    "\n"
    "OPTIONS:\n"
    "      --first-user-email string, $CODER_FIRST_USER_EMAIL\n"
    "          Specifies an email address to use if creating the first user for\n"
    "          the deployment.\n"
    "\n"
    "      --first-user-password string, $CODER_FIRST_USER_PASSWORD\n"
    "          Specifies a password to use if creating the first user for the\n"
    "          deployment.\n"
    "\n"
    "      --first-user-username string, $CODER_FIRST_USER_USERNAME\n"
    "          Specifies a username to use if creating the first user for the\n"
    "          deployment.\n"
    "\n"
    "      --password string, $CODER_PASSWORD\n"
    "          Password of an existing user.\n"
    "\n"
    "      --username string, $CODER_USERNAME\n"
    "          Username or email of an existing user.\n"
    "\n"
    "      --use-token-as-session bool\n"
    "          Store the --token given as the session without verifying it\n"
    "          against /api/v2/users/me first.\n" OP_CLIENT_GLOBAL_HELP;

static const char logout_help[] = "USAGE:\n"
                                  "  outpost logout [flags]\n"
                                  "\n"
                                  "  Unauthenticate your local session: the token is revoked on the primary\n"
                                  "  and removed from the config directory.\n"
                                  "\n"
                                  "OPTIONS:\n"
                                  "  -y, --yes bool\n"
                                  "          Bypass prompts.\n" OP_CLIENT_GLOBAL_HELP;

enum { L_FU = 1, L_FE, L_FP, L_USER, L_PASS, L_USE_TOKEN };

/* value of flag, else env, else prompt (TTY), else error. Returns 0 or EX_USAGE. */
static int need(const char *flag, const char *env, const char *question, bool secret, char *out,
                size_t outlen, const char *flagname)
{
    const char *v = flag ? flag : getenv(env);
    if (v && *v) {
        snprintf(out, outlen, "%s", v);
        return 0;
    }
    if (op_prompt(question, NULL, secret, out, outlen) == 0 && *out) return 0;
    fprintf(stderr, "outpost login: %s is required (stdin is not a terminal, so it cannot be prompted for)\n",
            flagname);
    return EX_USAGE;
}

static int login_password(struct op_client *c, const char *who, const char *password)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, strchr(who, '@') ? "email" : "username", who);
    cJSON_AddStringToObject(b, "password", password);
    struct op_client_resp r;
    int rc = op_client_call(c, "POST", "/api/v2/users/login", b, &r);
    cJSON_Delete(b);
    if (rc) return rc;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r.json, "session_token");
    if (r.status != 201 || !cJSON_IsString(t)) {
        rc = op_client_fail("login", "login failed", &r);
        op_client_resp_free(&r);
        return rc;
    }
    snprintf(c->token, sizeof(c->token), "%s", t->valuestring);
    op_client_resp_free(&r);
    return 0;
}

/* Checks the token with /users/me; prints the welcome line. */
static int whoami(struct op_client *c, bool quiet)
{
    struct op_client_resp r;
    int rc = op_client_call(c, "GET", "/api/v2/users/me", NULL, &r);
    if (rc) return rc;
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(r.json, "username");
    if (r.status != 200 || !cJSON_IsString(u)) {
        rc = op_client_fail("login", "the session token was rejected", &r);
        op_client_resp_free(&r);
        return rc;
    }
    if (!quiet) printf("Welcome to Outpost, %s! You're authenticated.\n", u->valuestring);
    op_client_resp_free(&r);
    return 0;
}

int op_cmd_login(int argc, char **argv)
{
    static const struct option opts[] = {
        {"first-user-username", required_argument, NULL, L_FU},
        {"first-user-email", required_argument, NULL, L_FE},
        {"first-user-password", required_argument, NULL, L_FP},
        {"username", required_argument, NULL, L_USER},
        {"password", required_argument, NULL, L_PASS},
        {"use-token-as-session", no_argument, NULL, L_USE_TOKEN},
        {"help", no_argument, NULL, 'h'},
        OP_CLIENT_GLOBAL_OPTS,
        {NULL, 0, NULL, 0},
    };
    struct op_cli k = {.cmd = "outpost login", .help = login_help};
    struct op_client *c = &k.c;
    const char *fu = NULL, *fe = NULL, *fp = NULL, *user = NULL, *pass = NULL;
    bool skip_verify = false;
    int opt;
    while ((opt = op_cli_opt(&k, argc, argv, "h", opts)) >= 0) {
        switch (opt) {
        case L_FU:
            fu = optarg;
            break;
        case L_FE:
            fe = optarg;
            break;
        case L_FP:
            fp = optarg;
            break;
        case L_USER:
            user = optarg;
            break;
        case L_PASS:
            pass = optarg;
            break;
        case L_USE_TOKEN:
            skip_verify = true;
            break;
        }
    }
    if (opt == OP_CLI_EXIT) return k.rc;
    if (argc - optind > 1) {
        fprintf(stderr, "outpost login: too many arguments\nRun 'outpost login --help' for usage.\n");
        return EX_USAGE;
    }
    if (optind < argc) c->flag_url = argv[optind];
    int rc = op_client_load(c, false, false);
    if (rc) return rc;
    if (!c->url[0]) {
        fprintf(stderr, "outpost login: no URL given: run 'outpost login <url>'\n");
        return EX_USAGE;
    }
    /* The stored session must not leak into a login against a (maybe different) primary. */
    const char *given_token = c->flag_token ? c->flag_token : getenv("CODER_SESSION_TOKEN");
    c->token[0] = '\0';

    struct op_client_resp r;
    if ((rc = op_client_call(c, "GET", "/api/v2/buildinfo", NULL, &r)) != 0) return rc;
    if (r.status != 200 || !cJSON_IsObject(r.json)) {
        fprintf(stderr,
                "outpost login: %s does not look like an Outpost/Coder primary (GET /api/v2/buildinfo "
                "answered %ld)\n",
                c->url, r.status);
        op_client_resp_free(&r);
        return EX_PROTOCOL;
    }
    op_client_resp_free(&r);

    if (given_token && *given_token) {
        snprintf(c->token, sizeof(c->token), "%s", given_token);
        if (!skip_verify && (rc = whoami(c, false)) != 0) return rc;
        return op_client_save(c);
    }
    if ((rc = op_client_call(c, "GET", "/api/v2/users/first", NULL, &r)) != 0) return rc;
    long first_status = r.status;
    op_client_resp_free(&r);
    char u[128], e[256], pw[256];
    if (first_status == 404) {
        if (!fu && !fe && !fp && op_stdin_is_tty())
            fprintf(stderr, "Your Outpost deployment hasn't been set up!\n");
        if ((rc = need(fu, "CODER_FIRST_USER_USERNAME", "What username would you like?", false, u, sizeof(u),
                       "--first-user-username")) ||
            (rc = need(fe, "CODER_FIRST_USER_EMAIL", "What's your email?", false, e, sizeof(e),
                       "--first-user-email")) ||
            (rc = need(fp, "CODER_FIRST_USER_PASSWORD", "Enter a password:", true, pw, sizeof(pw),
                       "--first-user-password")))
            return rc;
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "username", u);
        cJSON_AddStringToObject(b, "email", e);
        cJSON_AddStringToObject(b, "password", pw);
        rc = op_client_call(c, "POST", "/api/v2/users/first", b, &r);
        cJSON_Delete(b);
        if (rc) return rc;
        if (r.status != 201) {
            rc = op_client_fail("login", "creating the first user failed", &r);
            op_client_resp_free(&r);
            return rc;
        }
        op_client_resp_free(&r);
        rc = login_password(c, e, pw);
    } else if (first_status == 200) {
        if ((rc = need(user, "CODER_USERNAME", "Username or email:", false, u, sizeof(u), "--username")) ||
            (rc = need(pass, "CODER_PASSWORD", "Password:", true, pw, sizeof(pw), "--password")))
            return rc;
        rc = login_password(c, u, pw);
    } else {
        fprintf(stderr, "outpost login: unexpected status %ld from GET /api/v2/users/first\n", first_status);
        return EX_PROTOCOL;
    }
    memset(pw, 0, sizeof(pw));
    if (rc) return rc;
    if ((rc = whoami(c, false)) != 0) return rc;
    return op_client_save(c);
}

int op_cmd_logout(int argc, char **argv)
{
    static const struct option opts[] = {
        {"yes", no_argument, NULL, 'y'},
        {"help", no_argument, NULL, 'h'},
        OP_CLIENT_GLOBAL_OPTS,
        {NULL, 0, NULL, 0},
    };
    struct op_cli k = {.cmd = "outpost logout", .help = logout_help};
    int opt;
    while ((opt = op_cli_opt(&k, argc, argv, "yh", opts)) >= 0)
        continue; /* -y: there is nothing to confirm */
    if (opt == OP_CLI_EXIT) return k.rc;
    int rc = op_client_load(&k.c, true, true);
    if (rc) return rc;
    struct op_client_resp r;
    rc = op_client_call(&k.c, "POST", "/api/v2/users/logout", NULL, &r);
    if (rc == 0) {
        if (r.status != 200 && r.status != 401)
            rc = op_client_fail("logout", "revoking the session failed", &r);
        op_client_resp_free(&r);
    }
    op_client_forget_session(&k.c);
    if (rc == 0) printf("You are no longer logged in. You can log in using 'outpost login <url>'.\n");
    return rc;
}
