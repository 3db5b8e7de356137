/*
 * agent/procnet.h — the TCP ports listening inside the workspace, read from /proc/net/tcp and
 * /proc/net/tcp6 (the kernel's text tables: one header line, then one socket per line with
 * "sl local_address rem_address st ..."; addresses are hex "ADDR:PORT", st 0A is LISTEN).
 * The parser works on a buffer so that it can be unit-tested and fuzzed; it never allocates.
 *
 * Process names: each listening socket's inode (the table's tenth field) is looked up among the sockets
 * of every process (/proc/<pid>/fd/<n> -> "socket:[inode]") and the owner's /proc/<pid>/comm names the
 * port. That walk costs a readlink per open descriptor of the machine, so the agent runs it only when the
 * set of (port, inode) pairs changed; processes it cannot read (another user's) leave their ports
 * nameless.
 */
#ifndef OP_AGENT_PROCNET_H
#define OP_AGENT_PROCNET_H

#include <stddef.h>
#include <stdint.h>

#define OP_PROCNET_MAX_PORTS 256 /* what the primary accepts in one report */

#define OP_PROCNET_NAME_MAX 16 /* a comm is at most 15 characters */

struct op_port_set {
    uint16_t port[OP_PROCNET_MAX_PORTS];  /* ascending, unique */
    uint64_t inode[OP_PROCNET_MAX_PORTS]; /* of the first LISTEN socket seen for the port; 0 = unknown */
    char name[OP_PROCNET_MAX_PORTS][OP_PROCNET_NAME_MAX]; /* the owner's comm; "" = unknown */
    int n;
    int skipped; /* malformed lines seen (ignored) */
};

/* Adds the local ports of every LISTEN socket in text[0..len) (the contents of one /proc/net/tcp{,6}
 * file) to *set, keeping it sorted and unique; ports beyond OP_PROCNET_MAX_PORTS are dropped. The first
 * line (the header) is skipped; lines that do not parse are counted in set->skipped. Returns the number
 * of LISTEN sockets found in text. */
int op_procnet_parse(const char *text, size_t len, struct op_port_set *set);

/* Names the ports of *set from the processes that hold their sockets (see above); ports already named
 * or without an inode are left as they are. Returns how many ports got a name. */
int op_procnet_names(struct op_port_set *set);

/* The (port, inode) pairs of a and b are the same (names are not compared). */
int op_procnet_same(const struct op_port_set *a, const struct op_port_set *b);

/* Reads /proc/net/tcp and /proc/net/tcp6 (either may be missing: IPv6 disabled) into *set (cleared
 * first). Returns 0, or -errno when neither file could be read. */
int op_procnet_read(struct op_port_set *set);

#endif
