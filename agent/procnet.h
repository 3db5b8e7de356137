/*
 * agent/procnet.h — the TCP ports listening inside the workspace, read from /proc/net/tcp and
 * /proc/net/tcp6 (the kernel's text tables: one header line, then one socket per line with
 * "sl local_address rem_address st ..."; addresses are hex "ADDR:PORT", st 0A is LISTEN).
 * The parser works on a buffer so that it can be unit-tested and fuzzed; it never allocates.
 */
#ifndef OP_AGENT_PROCNET_H
#define OP_AGENT_PROCNET_H

#include <stddef.h>
#include <stdint.h>

#define OP_PROCNET_MAX_PORTS 256 /* what the primary accepts in one report */

struct op_port_set {
    uint16_t port[OP_PROCNET_MAX_PORTS]; /* ascending, unique */
    int n;
    int skipped; /* malformed lines seen (ignored) */
};

/* Adds the local ports of every LISTEN socket in text[0..len) (the contents of one /proc/net/tcp{,6}
 * file) to *set, keeping it sorted and unique; ports beyond OP_PROCNET_MAX_PORTS are dropped. The first
 * line (the header) is skipped; lines that do not parse are counted in set->skipped. Returns the number
 * of LISTEN sockets found in text. */
int op_procnet_parse(const char *text, size_t len, struct op_port_set *set);

/* Reads /proc/net/tcp and /proc/net/tcp6 (either may be missing: IPv6 disabled) into *set (cleared
 * first). Returns 0, or -errno when neither file could be read. */
int op_procnet_read(struct op_port_set *set);

#endif
