/*
 * tests/unit/test_config_ssh.c — the managed section of `outpost config-ssh` (cli/config_ssh.h): appended
 * after a blank line to a file without one, replaced in place (and only it) in a file with one, the same
 * text after a second run, the bytes around it kept; a start marker without its end, an end without its
 * start and two sections are refused; the known-hosts line of one host set, replaced and removed while the
 * other lines stay.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/config_ssh.h"
#include "tests/unit/check.h"

#define SEC1 OP_SSH_MARK_START "\nHost outpost.*\n\tProxyCommand a %n\n" OP_SSH_MARK_END "\n"
#define SEC2 OP_SSH_MARK_START "\nHost outpost.*\n\tProxyCommand b %n\n" OP_SSH_MARK_END "\n"

static void rewrite_cases(void)
{
    char err[300];
    char *a = op_ssh_config_rewrite(NULL, SEC1, err, sizeof(err));
    CHECK(a && strcmp(a, SEC1) == 0, "no file: the section alone (%s)", a ? a : err);
    char *b = op_ssh_config_rewrite(a, SEC1, err, sizeof(err));
    CHECK(b && strcmp(a, b) == 0, "rerun: unchanged");
    free(a);
    free(b);

    const char *user = "Host other\n  User me\n";
    a = op_ssh_config_rewrite(user, SEC1, err, sizeof(err));
    CHECK(a && strcmp(a, "Host other\n  User me\n\n" SEC1) == 0, "appended after a blank line: %s", a);
    b = op_ssh_config_rewrite(a, SEC1, err, sizeof(err));
    CHECK(b && strcmp(a, b) == 0, "idempotent after an append");
    free(b);
    b = op_ssh_config_rewrite(a, SEC2, err, sizeof(err));
    CHECK(b && strcmp(b, "Host other\n  User me\n\n" SEC2) == 0, "replaced in place: %s", b);
    free(a);
    free(b);

    a = op_ssh_config_rewrite("Host x\n  Port 2", SEC1, err, sizeof(err));
    CHECK(a && strcmp(a, "Host x\n  Port 2\n\n" SEC1) == 0, "no final newline: one added, then a blank line");
    free(a);
    a = op_ssh_config_rewrite("Host x\n\n", SEC1, err, sizeof(err));
    CHECK(a && strcmp(a, "Host x\n\n" SEC1) == 0, "a blank line already there: no second one");
    free(a);

    const char *mid = "# top\nHost a\n\n" SEC1 "\nHost z\n  User z\n";
    a = op_ssh_config_rewrite(mid, SEC2, err, sizeof(err));
    CHECK(a && strcmp(a, "# top\nHost a\n\n" SEC2 "\nHost z\n  User z\n") == 0,
          "in the middle: only it changes: %s", a);
    free(a);

    /* markers with trailing spaces or CRLF are still ours */
    const char *crlf = "Host a\n" OP_SSH_MARK_START "\r\nold\r\n" OP_SSH_MARK_END "  \r\nHost b\n";
    a = op_ssh_config_rewrite(crlf, SEC1, err, sizeof(err));
    CHECK(a && strcmp(a, "Host a\n" SEC1 "Host b\n") == 0, "CRLF markers replaced: %s", a);
    free(a);

    err[0] = '\0';
    a = op_ssh_config_rewrite("Host a\n" OP_SSH_MARK_START "\nHost outpost.*\n", SEC1, err, sizeof(err));
    CHECK(!a && strstr(err, "without"), "a start marker without its end: refused (%s)", err);
    free(a);
    a = op_ssh_config_rewrite("Host a\n" OP_SSH_MARK_END "\n", SEC1, err, sizeof(err));
    CHECK(!a && strstr(err, "without"), "an end marker alone: refused (%s)", err);
    free(a);
    a = op_ssh_config_rewrite(SEC1 SEC2, SEC1, err, sizeof(err));
    CHECK(!a && strstr(err, "two"), "two sections: refused (%s)", err);
    free(a);
    /* a marker inside another line is not a marker */
    a = op_ssh_config_rewrite("# see " OP_SSH_MARK_START " below\n", SEC1, err, sizeof(err));
    CHECK(a && strcmp(a, "# see " OP_SSH_MARK_START " below\n\n" SEC1) == 0, "a quoted marker is not one");
    free(a);
}

static void known_hosts_cases(void)
{
    char *a = op_known_hosts_set(NULL, "outpost.ws", "ssh-ed25519 AAAA1");
    CHECK(a && strcmp(a, "outpost.ws ssh-ed25519 AAAA1\n") == 0, "set in an empty file: %s", a);
    char *b = op_known_hosts_set(a, "outpost.other", "ssh-ed25519 BBBB");
    free(a);
    a = op_known_hosts_set(b, "outpost.ws", "ssh-ed25519 AAAA2");
    free(b);
    CHECK(a && strcmp(a, "outpost.other ssh-ed25519 BBBB\noutpost.ws ssh-ed25519 AAAA2\n") == 0,
          "replaced: %s", a);
    b = op_known_hosts_set(a, "outpost.w", "ssh-ed25519 CCCC");
    free(a);
    CHECK(b && strstr(b, "outpost.ws ssh-ed25519 AAAA2\n") && strstr(b, "outpost.w ssh-ed25519 CCCC\n"),
          "a host that is a prefix of another leaves it alone: %s", b);
    a = op_known_hosts_set(b, "outpost.ws", NULL);
    free(b);
    CHECK(a && !strstr(a, "outpost.ws ") && strstr(a, "outpost.other "), "removed: %s", a);
    free(a);
    a = op_known_hosts_set("# comment\nx y", "h", "k");
    CHECK(a && strcmp(a, "# comment\nx y\nh k\n") == 0, "comments and a last line without newline kept: %s",
          a);
    free(a);
}

int main(void)
{
    rewrite_cases();
    known_hosts_cases();
    return check_report("config-ssh section rewriting and known-hosts lines");
}
