/*
 * cli/config_ssh.c — `outpost config-ssh [--ssh-config-file PATH] [--proxy NAME|primary|auto]`: writes (and
 * rewrites, idempotently) the managed `Host outpost.*` section of an OpenSSH client config, whose
 * ProxyCommand is `outpost ssh --stdio` through the chosen region and whose UserKnownHostsFile is the file
 * Outpost keeps with the host keys the primary recorded for the user's agents (see config_ssh.h). After
 * it, `ssh outpost.<workspace>`, scp, sftp and rsync work with host-key checking on; run it again when a
 * workspace is added or an agent's key changes.
 */
#include "cli/config_ssh.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli/client.h"
#include "cli/cmd.h"
#include "cli/region.h"

/* The line starting at p (up to and without its newline) equals s. */
static bool line_is(const char *p, const char *s)
{
    size_t n = strlen(s);
    if (strncmp(p, s, n) != 0) return false;
    p += n;
    while (*p == ' ' || *p == '\t' || *p == '\r')
        p++;
    return *p == '\n' || *p == '\0';
}

/* The first line at or after p that is marker, or NULL. */
static const char *find_line(const char *p, const char *marker)
{
    for (; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (line_is(p, marker)) return p;
    return NULL;
}

char *op_ssh_config_rewrite(const char *old, const char *section, char *err, size_t errlen)
{
    if (!old) old = "";
    const char *s = find_line(old, OP_SSH_MARK_START);
    const char *e = s ? find_line(s, OP_SSH_MARK_END) : find_line(old, OP_SSH_MARK_END);
    if (!s && e) {
        snprintf(err, errlen, "found \"%s\" without \"%s\" before it: fix the file by hand", OP_SSH_MARK_END,
                 OP_SSH_MARK_START);
        return NULL;
    }
    if (s && !e) {
        snprintf(err, errlen, "found \"%s\" without \"%s\" after it: fix the file by hand", OP_SSH_MARK_START,
                 OP_SSH_MARK_END);
        return NULL;
    }
    const char *after = e ? (strchr(e, '\n') ? strchr(e, '\n') + 1 : e + strlen(e)) : NULL;
    if (after && find_line(after, OP_SSH_MARK_START)) {
        snprintf(err, errlen, "the file holds two Outpost sections: remove one by hand");
        return NULL;
    }
    size_t ol = strlen(old), sl = strlen(section);
    char *out = malloc(ol + sl + 3);
    if (!out) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (s) { /* in place */
        size_t pre = (size_t)(s - old);
        memcpy(out, old, pre);
        memcpy(out + pre, section, sl);
        strcpy(out + pre + sl, after);
        return out;
    }
    size_t k = ol;
    memcpy(out, old, ol);
    if (ol && old[ol - 1] != '\n') out[k++] = '\n';
    if (ol && !(ol >= 2 && old[ol - 1] == '\n' && old[ol - 2] == '\n')) out[k++] = '\n';
    memcpy(out + k, section, sl + 1);
    return out;
}

char *op_known_hosts_set(const char *old, const char *host, const char *key)
{
    if (!old) old = "";
    size_t hl = strlen(host);
    char *out = malloc(strlen(old) + hl + (key ? strlen(key) : 0) + 4); /* + a newline after a last line */
    if (!out) return NULL;
    size_t k = 0;
    for (const char *p = old; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) + 1 : strlen(p);
        bool mine = strncmp(p, host, hl) == 0 && (p[hl] == ' ' || p[hl] == '\t');
        if (!mine) {
            memcpy(out + k, p, n);
            k += n;
            if (!nl) out[k++] = '\n';
        }
        p += n;
    }
    if (key) k += (size_t)sprintf(out + k, "%s %s\n", host, key);
    out[k] = '\0';
    return out;
}

char *op_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    for (size_t k; b && (k = fread(b + n, 1, cap - n - 1, f)) > 0;) {
        n += k;
        if (cap - n - 1 == 0) {
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (b) b[n] = '\0';
    return b;
}

int op_write_file_atomic(const char *path, const char *text, unsigned mode)
{
    struct stat st;
    if (stat(path, &st) == 0) mode = st.st_mode & 07777;
    char tmp[PATH_MAX + 16];
    snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) return -errno;
    size_t n = strlen(text);
    bool ok = fchmod(fd, mode) == 0 && write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
    int e = errno;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        if (ok) e = errno;
        unlink(tmp);
        return -e;
    }
    return 0;
}

static const char config_ssh_help[] =
    "USAGE:\n"
    "  outpost config-ssh [flags]\n"
    "\n"
    "  Add (or update) a 'Host outpost.*' section in your OpenSSH config so that\n"
    "  `ssh outpost.<workspace>`, scp, sftp and rsync reach your workspaces through\n"
    "  a region, with host-key checking on against the keys the primary recorded\n"
    "  for your agents. Only the lines between the Outpost markers are touched.\n"
    "  Run it again after creating a workspace.\n"
    "\n"
    "OPTIONS:\n"
    "      --ssh-config-file string\n"
    "          The OpenSSH config file to write (default: ~/.ssh/config).\n"
    "\n"
    "      --proxy string\n"
    "          The region the ProxyCommand uses: a workspace proxy's name, primary,\n"
    "          or auto. Default: the one set with `outpost proxy use` at connect time.\n"
    "\n"
    "      --dry-run bool\n"
    "          Print the new config instead of writing it.\n"
    "\n"
    "  -y, --yes bool\n"
    "          Bypass prompts. This command never prompts; the flag is accepted so that\n"
    "          scripts written for `coder config-ssh -y` work unchanged.\n" OP_CLIENT_GLOBAL_HELP;

/* Writes the known-hosts file from the user's workspaces: one line per agent that reported a key,
 * "outpost.<ws>" for a workspace's only agent and "outpost.<ws>.<agent>" for each. */
static int write_known_hosts(const struct op_client *c, const char *path, int *nkeys)
{
    struct op_client_resp r;
    int rc = op_client_call(c, "GET", "/api/v2/workspaces?q=owner:me", NULL, &r);
    if (rc) return rc;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(r.json, "workspaces");
    if (r.status != 200 || !cJSON_IsArray(list)) {
        rc = op_client_fail("config-ssh", "listing workspaces failed", &r);
        op_client_resp_free(&r);
        return rc;
    }
    char *text = strdup("# Managed by outpost config-ssh and outpost ssh: the agents' SSH host keys as the "
                        "primary recorded them.\n");
    *nkeys = 0;
    const cJSON *ws;
    cJSON_ArrayForEach(ws, list)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(ws, "name");
        const cJSON *lb = cJSON_GetObjectItemCaseSensitive(ws, "latest_build");
        const cJSON *res = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(lb, "resources"), 0);
        const cJSON *agents = cJSON_GetObjectItemCaseSensitive(res, "agents"), *a;
        int n = cJSON_GetArraySize(agents);
        cJSON_ArrayForEach(a, agents)
        {
            const cJSON *an = cJSON_GetObjectItemCaseSensitive(a, "name");
            const cJSON *key = cJSON_GetObjectItemCaseSensitive(a, "ssh_host_key");
            if (!cJSON_IsString(name) || !cJSON_IsString(an) || !cJSON_IsString(key) || !*key->valuestring)
                continue;
            char host[300];
            for (int pass = 0; pass < (n == 1 ? 2 : 1) && text; pass++) {
                if (pass == 0)
                    snprintf(host, sizeof(host), OP_SSH_HOST_PREFIX "%s.%s", name->valuestring,
                             an->valuestring);
                else
                    snprintf(host, sizeof(host), OP_SSH_HOST_PREFIX "%s", name->valuestring);
                char *t = op_known_hosts_set(text, host, key->valuestring);
                free(text);
                text = t;
            }
            (*nkeys)++;
        }
    }
    op_client_resp_free(&r);
    if (!text) return EX_OSERR;
    int w = op_write_file_atomic(path, text, 0600);
    free(text);
    if (w) {
        fprintf(stderr, "outpost config-ssh: cannot write %s: %s\n", path, strerror(-w));
        return EX_CANTCREAT;
    }
    return 0;
}

/* 'path' quoted for ssh_config and for the shell ProxyCommand runs in: single quotes, a quote as '\''. */
static void quote(char *out, size_t len, const char *s)
{
    size_t k = 0;
    if (k + 1 < len) out[k++] = '\'';
    for (; *s && k + 5 < len; s++) {
        if (*s == '\'') {
            memcpy(out + k, "'\\''", 4);
            k += 4;
        } else {
            out[k++] = *s;
        }
    }
    if (k + 1 < len) out[k++] = '\'';
    out[k] = '\0';
}

int op_cmd_config_ssh(int argc, char **argv)
{
    enum { O_FILE = 1, O_PROXY, O_DRY };
    static const struct option opts[] = {
        {"ssh-config-file", required_argument, NULL, O_FILE},
        {"proxy", required_argument, NULL, O_PROXY},
        {"dry-run", no_argument, NULL, O_DRY},
        {"yes", no_argument, NULL, 'y'},
        {"help", no_argument, NULL, 'h'},
        OP_CLIENT_GLOBAL_OPTS,
        {NULL, 0, NULL, 0},
    };
    struct op_client c = {0};
    const char *file = NULL, *proxy = NULL;
    bool dry = false;
    int opt;
    optind = 0;
    argv[0] = (char *)"outpost config-ssh";
    while ((opt = getopt_long(argc, argv, "hy", opts, NULL)) != -1) {
        if (op_client_global_opt(&c, opt, optarg)) continue;
        if (opt == 'h') {
            fputs(config_ssh_help, stdout);
            return 0;
        }
        if (opt == 'y') continue; /* nothing to confirm */
        if (opt == O_FILE)
            file = optarg;
        else if (opt == O_PROXY)
            proxy = optarg;
        else if (opt == O_DRY)
            dry = true;
        else {
            fprintf(stderr, "Run 'outpost config-ssh --help' for usage.\n");
            return EX_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "outpost config-ssh: unexpected argument \"%s\"\n", argv[optind]);
        return EX_USAGE;
    }
    int rc = op_client_load(&c, true, true);
    if (rc) return rc;
    if (proxy) { /* checked now, so a typo is not found at the first ssh */
        struct op_cli_region reg;
        if ((rc = op_cli_pick(&c, "outpost config-ssh", proxy, &reg, false))) return rc;
    }
    char path[PATH_MAX], kh[PATH_MAX + 16], exe[PATH_MAX];
    const char *home = getenv("HOME");
    if (file) {
        snprintf(path, sizeof(path), "%s", file);
    } else {
        snprintf(path, sizeof(path), "%s/.ssh", home ? home : ".");
        mkdir(path, 0700);
        snprintf(path, sizeof(path), "%s/.ssh/config", home ? home : ".");
    }
    mkdir(c.config_dir, 0700);
    snprintf(kh, sizeof(kh), "%s/known_hosts", c.config_dir);
    ssize_t el = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (el <= 0) {
        fprintf(stderr, "outpost config-ssh: cannot find the outpost binary: %s\n", strerror(errno));
        return EX_OSERR;
    }
    exe[el] = '\0';
    int nkeys = 0;
    if (!dry && (rc = write_known_hosts(&c, kh, &nkeys))) return rc;
    char qexe[PATH_MAX * 2], qdir[PATH_MAX * 2], qkh[PATH_MAX * 2], qproxy[200] = "";
    quote(qexe, sizeof(qexe), exe);
    quote(qdir, sizeof(qdir), c.config_dir);
    quote(qkh, sizeof(qkh), kh);
    if (proxy) {
        char q[150];
        quote(q, sizeof(q), proxy);
        snprintf(qproxy, sizeof(qproxy), " --proxy %s", q);
    }
    char section[PATH_MAX * 8];
    snprintf(section, sizeof(section),
             OP_SSH_MARK_START
             "\n"
             "# This section is managed by outpost config-ssh; edits here are overwritten.\n"
             "Host " OP_SSH_HOST_PREFIX "*\n"
             "\tProxyCommand %s ssh --global-config %s --stdio%s --ssh-host-prefix " OP_SSH_HOST_PREFIX
             " %%n\n"
             "\tUserKnownHostsFile %s\n"
             "\tGlobalKnownHostsFile /dev/null\n"
             "\tStrictHostKeyChecking yes\n"
             "\tServerAliveInterval 15\n"
             "\tServerAliveCountMax 3\n"
             "\tLogLevel ERROR\n" OP_SSH_MARK_END "\n",
             qexe, qdir, qproxy, qkh);
    errno = 0;
    char *old = op_read_file(path);
    if (!old && errno != ENOENT) {
        fprintf(stderr, "outpost config-ssh: cannot read %s: %s\n", path, strerror(errno));
        return EX_NOINPUT;
    }
    char err[300];
    char *text = op_ssh_config_rewrite(old, section, err, sizeof(err));
    bool same = text && old && strcmp(text, old) == 0;
    free(old);
    if (!text) {
        fprintf(stderr, "outpost config-ssh: %s: %s\n", path, err);
        return EX_DATAERR;
    }
    if (dry) {
        fputs(text, stdout);
        free(text);
        return 0;
    }
    int w = same ? 0 : op_write_file_atomic(path, text, 0600);
    free(text);
    if (w) {
        fprintf(stderr, "outpost config-ssh: cannot write %s: %s\n", path, strerror(-w));
        return EX_CANTCREAT;
    }
    printf("%s %s (Host " OP_SSH_HOST_PREFIX "*, region %s); %d agent host key%s in %s.\n",
           same ? "Unchanged:" : "Updated", path, proxy ? proxy : "the default of outpost proxy use", nkeys,
           nkeys == 1 ? "" : "s", kh);
    printf("Try: ssh " OP_SSH_HOST_PREFIX "<workspace>%s\n", file ? " (with ssh -F for this file)" : "");
    return 0;
}
