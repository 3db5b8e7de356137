/*
 * Fuzz target for the /proc/net/tcp{,6} parser (agent/procnet.c). Invariants: the parser never reads
 * past len, the port set stays sorted, unique, bounded and free of port 0, and parsing the same text
 * twice into the same set changes nothing (ports are a set).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/procnet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1); /* exactly size bytes: ASan catches a read past the end */
    memcpy(buf, data, size);
    struct op_port_set s;
    memset(&s, 0, sizeof(s));
    int n = op_procnet_parse(buf, size, &s);
    if (n < 0 || s.n > OP_PROCNET_MAX_PORTS || s.n > n) abort();
    for (int i = 0; i < s.n; i++)
        if (s.port[i] == 0 || (i && s.port[i - 1] >= s.port[i])) abort();
    struct op_port_set again = s;
    op_procnet_parse(buf, size, &again);
    if (again.n != s.n || memcmp(again.port, s.port, sizeof(s.port[0]) * (size_t)s.n) != 0) abort();
    if (memcmp(again.inode, s.inode, sizeof(s.inode[0]) * (size_t)s.n) != 0) abort(); /* the first one kept */
    free(buf);
    return 0;
}
