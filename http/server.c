/* Placeholder until the engine lands: fails clearly instead of pretending to serve. */
#include "http/server.h"

#include <stdio.h>
#include <sysexits.h>

int op_app_server_run(const struct op_app_server_opts *opts)
{
    (void)opts;
    fprintf(stderr, "outpost: the HTTP engine is not built into this revision yet\n");
    return EX_UNAVAILABLE;
}
