/* cli/output.c — the option loop of the admin commands and the -o/--output and -c/--column options every
 * listing command shares (see client.h). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

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

int op_cli_opt(struct op_cli *k, int argc, char **argv, const char *shortopts, const struct option *longopts)
{
    if (!k->started) {
        optind = 0;
        argv[0] = (char *)k->cmd;
        k->started = true;
    }
    for (;;) {
        int opt = getopt_long(argc, argv, shortopts, longopts, NULL);
        if (opt == -1) return -1;
        if (op_client_global_opt(&k->c, opt, optarg)) continue;
        int oo = k->formats ? op_out_opt(&k->o, opt, optarg, k->cmd, k->formats) : 0;
        if (oo > 0) continue;
        if (oo < 0) {
            k->rc = EX_USAGE;
        } else if (opt == 'h') {
            fputs(k->help, stdout);
            k->rc = 0;
        } else if (opt == '?') {
            fprintf(stderr, "Run '%s --help' for usage.\n", k->cmd);
            k->rc = EX_USAGE;
        } else {
            return opt;
        }
        return OP_CLI_EXIT;
    }
}

int op_cli_no_args(const struct op_cli *k, int argc, char **argv, const char *hint)
{
    if (optind >= argc) return 0;
    fprintf(stderr, "%s: unexpected argument \"%s\"%s\n", k->cmd, argv[optind], hint);
    return EX_USAGE;
}

const char *op_cli_one_arg(const struct op_cli *k, int argc, char **argv, const char *what)
{
    if (argc - optind == 1) return argv[optind];
    fprintf(stderr, "%s: exactly one argument %s is required\n", k->cmd, what);
    return NULL;
}

int op_cli_refuse_format(const struct op_cli *k, enum op_out_format fmt)
{
    if (k->o.fmt != fmt) return 0;
    fprintf(stderr, "%s: --output must be %s\n", k->cmd, k->formats);
    return EX_USAGE;
}

int op_cli_columns(const struct op_cli *k, const char *dflt, const char *const *names, int nnames, int *cols)
{
    if (k->o.fmt != OP_OUT_TABLE) return 0;
    int allowed[64];
    nnames = OP_MIN(nnames, (int)OP_ARRAY_LEN(allowed));
    for (int i = 0; i < nnames; i++)
        allowed[i] = i;
    return op_out_columns(k->cmd, k->o.columns ? k->o.columns : dflt, names, allowed, nnames, cols);
}
