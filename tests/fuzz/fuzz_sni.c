/*
 * tests/fuzz/fuzz_sni.c — libFuzzer target for tls/sni.c, the ClientHello SNI reader. The input is the
 * first bytes a client sends. Checked on every input:
 *   1. the result is one of the documented ones, and a name is as long as the result says (1..255
 *      bytes), NUL-terminated, printable ASCII without spaces and copied from inside the first record;
 *   2. an early verdict never contradicts the full one: every prefix gives -EAGAIN or the same result
 *      and name (a receive that stops anywhere in the record must not change the certificate choice);
 *   3. bytes after the first record change nothing;
 *   4. the output size is honoured: exactly the name's size works, one byte less is -EINVAL.
 * Each call reads an exact-size heap copy, so ASan catches any read past the end.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls/sni.h"

#define ASSERT(c)                                                                                            \
    do {                                                                                                     \
        if (!(c)) __builtin_trap();                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs the reader on an exact-size heap copy of p[0..n). */
static ssize_t run(const uint8_t *p, size_t n, char *out, size_t outlen)
{
    uint8_t *cp = malloc(n ? n : 1);
    ASSERT(cp != NULL);
    memcpy(cp, p, n);
    ssize_t r = op_tls_sni_from_hello(cp, n, out, outlen);
    free(cp);
    return r;
}

static void same(ssize_t r, const char *name, ssize_t r2, const char *name2)
{
    ASSERT(r == r2);
    if (r > 0) ASSERT(strcmp(name, name2) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char name[256], name2[256];
    memset(name, 0, sizeof(name));
    ssize_t r = run(data, size, name, sizeof(name));
    ASSERT((r > 0 && r <= 255) || r == 0 || r == -EAGAIN || r == -EINVAL || r == -EMSGSIZE);

    size_t rec = size; /* the first record's end, when its header is complete */
    if (size >= 5) rec = OP_MIN(size, 5 + ((size_t)data[3] << 8 | data[4]));
    if (r > 0) {
        size_t len = strlen(name);
        ASSERT(len == (size_t)r);
        for (size_t i = 0; i < len; i++)
            ASSERT(name[i] > 0x20 && name[i] < 0x7f);
        ASSERT(memmem(data + 5, rec - 5, name, len) != NULL);
    }

    /* 2. prefixes: the short ones, the middle, and the last few bytes of the record */
    size_t cuts[] = {0, 1, 4, 5, 6, 9, 43, rec / 2, rec > 2 ? rec - 2 : 0, rec > 1 ? rec - 1 : 0};
    for (size_t i = 0; i < OP_ARRAY_LEN(cuts); i++) {
        if (cuts[i] >= size) continue;
        ssize_t r2 = run(data, cuts[i], name2, sizeof(name2));
        if (r2 != -EAGAIN) same(r, name, r2, name2);
    }

    /* 3. bytes after the first record */
    if (r != -EAGAIN && rec < size) same(r, name, run(data, rec, name2, sizeof(name2)), name2);

    /* 4. output sizes */
    if (r > 0) {
        size_t len = strlen(name);
        same(r, name, run(data, size, name2, len + 1), name2);
        ASSERT(run(data, size, name2, len) == -EINVAL);
    } else {
        ASSERT(run(data, size, name2, 1) == r); /* no name: the size does not matter */
    }
    return 0;
}
