/* cli/output.c — the -o/--output and -c/--column options every listing command shares (see client.h). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cli/client.h"

int op_out_opt(struct op_out_opts *o, int opt, const char *arg, const char *cmd, const char *formats)
{
    if (opt == 'c') {
        o->columns = arg;
        return 1;
    }
    if (opt != 'o') return 0;
    if (op_out_parse(arg, &o->fmt) == 0) return 1;
    fprintf(stderr, "%s: --output must be %s\n", cmd, formats);
    return -1;
}

int op_out_columns(const char *cmd, const char *spec, const char *const *names, const int *allowed,
                   int nallowed, int *out)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", spec);
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok))
            tok++;
        size_t l = strlen(tok);
        while (l > 0 && isspace((unsigned char)tok[l - 1]))
            tok[--l] = '\0';
        int found = -1;
        for (int i = 0; i < nallowed; i++)
            if (strcasecmp(tok, names[allowed[i]]) == 0) found = allowed[i];
        if (found < 0 || n == OP_TABLE_MAX_COLS) {
            fprintf(stderr, "%s: unknown column \"%s\"; choose from:", cmd, tok);
            for (int i = 0; i < nallowed; i++)
                fprintf(stderr, "%s %s", i ? "," : "", names[allowed[i]]);
            fputc('\n', stderr);
            return -1;
        }
        out[n++] = found;
    }
    if (n == 0) {
        fprintf(stderr, "%s: no columns selected\n", cmd);
        return -1;
    }
    return n;
}
