/*
 * cli/proxy.c — `outpost proxy ls` (the regions a stream can go through, with health, latency and the
 * default marked) and `outpost proxy use NAME|primary|auto` (the default of `outpost tcp`, kept in the
 * CLI's config directory; see cli/region.h).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "cli/client.h"
#include "cli/cmd.h"
#include "cli/region.h"

static const char proxy_help[] =
    "USAGE:\n"
    "  outpost proxy <subcommand>\n"
    "\n"
    "  Choose the region (the primary or a workspace proxy) that `outpost tcp` goes through\n"
    "\n"
    "SUBCOMMANDS:\n"
    "    ls               List the regions with their health and latency; * marks the default\n"
    "    use <name|primary|auto>\n"
    "                     Set the default; auto picks the lowest-latency healthy region once\n"
    "                     and keeps it while it stays healthy\n" OP_CLIENT_GLOBAL_HELP;

static int parse(int argc, char **argv, struct op_client *c, const char *name)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        OP_CLIENT_GLOBAL_OPTS,
        {NULL, 0, NULL, 0},
    };
    int opt;
    optind = 0;
    argv[0] = (char *)name;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (op_client_global_opt(c, opt, optarg)) continue;
        if (opt == 'h') {
            fputs(proxy_help, stdout);
            return -1;
        }
        fprintf(stderr, "Run 'outpost proxy --help' for usage.\n");
        return EX_USAGE;
    }
    return 0;
}

static int cmd_ls(int argc, char **argv)
{
    struct op_client c = {0};
    int rc = parse(argc, argv, &c, "outpost proxy ls");
    if (rc) return rc < 0 ? 0 : rc;
    if (optind != argc) {
        fprintf(stderr, "outpost proxy ls: no arguments expected\n");
        return EX_USAGE;
    }
    if ((rc = op_client_load(&c, true, true))) return rc;
    static struct op_cli_region list[OP_CLI_MAX_REGIONS];
    int n = 0;
    if ((rc = op_cli_regions(&c, "proxy ls", list, OP_CLI_MAX_REGIONS, &n))) return rc;
    op_cli_probe(list, n);
    char def[80], picked[80] = "";
    op_cli_default_get(&c, def, sizeof(def));
    if (strcasecmp(def, "auto") == 0) {
        struct op_cli_region r;
        if (op_cli_pick(&c, "outpost proxy ls", "auto", &r, false) == 0)
            snprintf(picked, sizeof(picked), "%s", r.name);
    }
    size_t w = strlen("NAME");
    for (int i = 0; i < n; i++)
        if (strlen(list[i].name) > w) w = strlen(list[i].name);
    printf("  %-*s  %-20s  %-9s  %-10s  %s\n", (int)w, "NAME", "DISPLAY NAME", "HEALTHY", "LATENCY", "URL");
    for (int i = 0; i < n; i++) {
        bool is_def = strcasecmp(def, "auto") == 0 ? strcasecmp(picked, list[i].name) == 0
                                                   : strcasecmp(def, list[i].name) == 0;
        char lat[32];
        if (list[i].latency_ms >= 0)
            snprintf(lat, sizeof(lat), "%.1fms", list[i].latency_ms);
        else
            snprintf(lat, sizeof(lat), "-");
        printf("%s %-*s  %-20.20s  %-9s  %-10s  %s\n", is_def ? "*" : " ", (int)w, list[i].name,
               list[i].display, list[i].healthy ? "true" : "false", lat, list[i].url);
    }
    printf("\nDefault for outpost tcp: %s%s%s%s\n", def, *picked ? " (now " : "", picked, *picked ? ")" : "");
    return 0;
}

static int cmd_use(int argc, char **argv)
{
    struct op_client c = {0};
    int rc = parse(argc, argv, &c, "outpost proxy use");
    if (rc) return rc < 0 ? 0 : rc;
    if (argc - optind != 1) {
        fprintf(stderr, "outpost proxy use: exactly one argument <name|primary|auto> is required\n");
        return EX_USAGE;
    }
    const char *choice = argv[optind];
    if ((rc = op_client_load(&c, true, true))) return rc;
    struct op_cli_region r;
    bool automatic = strcasecmp(choice, "auto") == 0;
    if (automatic) {
        if ((rc = op_cli_default_set(&c, "auto"))) return rc; /* forgets the remembered pick: probe now */
        if ((rc = op_cli_pick(&c, "outpost proxy use", "auto", &r, false))) return rc;
        printf("Default region: auto (now %s, %.1f ms)\n", r.name, r.latency_ms);
        return 0;
    }
    if ((rc = op_cli_pick(&c, "outpost proxy use", choice, &r, false))) return rc;
    if ((rc = op_cli_default_set(&c, r.name))) return rc;
    printf("Default region: %s (%s)\n", r.name, r.url);
    return 0;
}

int op_cmd_proxy(int argc, char **argv)
{
    static const struct op_subcmd subs[] = {
        {"ls", "list", cmd_ls},
        {"use", NULL, cmd_use},
    };
    return op_subcmd_run("outpost proxy", proxy_help, subs, OP_ARRAY_LEN(subs), argc, argv);
}
