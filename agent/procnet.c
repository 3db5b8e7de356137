/*
 * agent/procnet.c — the /proc/net/tcp{,6} parser (see procnet.h).
 */
#include "agent/procnet.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TCP_LISTEN 0x0A

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Parses exactly n hex digits at s into *out. */
static bool hexn(const char *s, size_t n, uint32_t *out)
{
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        int h = hexval(s[i]);
        if (h < 0) return false;
        v = v << 4 | (uint32_t)h;
    }
    *out = v;
    return true;
}

/* Splits the next whitespace-separated field of [*p, end). */
static bool field(const char **p, const char *end, const char **f, size_t *flen)
{
    const char *s = *p;
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    const char *e = s;
    while (e < end && *e != ' ' && *e != '\t')
        e++;
    if (e == s) return false;
    *f = s;
    *flen = (size_t)(e - s);
    *p = e;
    return true;
}

static void add_port(struct op_port_set *set, uint16_t port, uint64_t inode)
{
    int lo = 0, hi = set->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (set->port[mid] < port)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < set->n && set->port[lo] == port) {
        if (!set->inode[lo]) set->inode[lo] = inode;
        return;
    }
    if (set->n >= OP_PROCNET_MAX_PORTS) return;
    size_t k = (size_t)(set->n - lo);
    memmove(&set->port[lo + 1], &set->port[lo], k * sizeof(set->port[0]));
    memmove(&set->inode[lo + 1], &set->inode[lo], k * sizeof(set->inode[0]));
    memmove(&set->name[lo + 1], &set->name[lo], k * sizeof(set->name[0]));
    set->port[lo] = port;
    set->inode[lo] = inode;
    set->name[lo][0] = '\0';
    set->n++;
}

/* One socket line: "sl: local rem st tx:rx tr:when retrnsmt uid timeout inode ...". Returns 1 for a LISTEN
 * socket (port in *port, the inode in *inode: 0 when the line stops early or it is not a number), 0 for
 * another state, -1 for a malformed line. */
static int parse_line(const char *p, const char *end, uint16_t *port, uint64_t *inode)
{
    const char *f;
    size_t fl;
    if (!field(&p, end, &f, &fl) || f[fl - 1] != ':') return -1; /* "0:" */
    for (size_t i = 0; i + 1 < fl; i++)
        if (f[i] < '0' || f[i] > '9') return -1;
    if (!field(&p, end, &f, &fl)) return -1; /* local "0100007F:1F90" or 32 hex digits ":PORT" */
    if ((fl != 8 + 1 + 4 && fl != 32 + 1 + 4) || f[fl - 5] != ':') return -1;
    uint32_t v;
    for (size_t i = 0; i < fl - 5; i += 8)
        if (!hexn(f + i, 8, &v)) return -1;
    uint32_t lport;
    if (!hexn(f + fl - 4, 4, &lport)) return -1;
    if (!field(&p, end, &f, &fl) || (fl != 13 && fl != 37) || f[fl - 5] != ':') return -1; /* remote */
    if (!field(&p, end, &f, &fl) || fl != 2) return -1;                                    /* state */
    uint32_t st;
    if (!hexn(f, 2, &st)) return -1;
    if (st != TCP_LISTEN) return 0;
    if (lport == 0) return -1;
    *port = (uint16_t)lport;
    *inode = 0;
    for (int i = 0; i < 6; i++) /* tx:rx, tr:when, retrnsmt, uid, timeout, inode */
        if (!field(&p, end, &f, &fl)) return 1;
    uint64_t ino = 0;
    for (size_t i = 0; i < fl; i++) {
        if (f[i] < '0' || f[i] > '9' || ino > (UINT64_MAX - 9) / 10) return 1;
        ino = ino * 10 + (uint64_t)(f[i] - '0');
    }
    *inode = ino;
    return 1;
}

static int parse_lines(const char *text, size_t len, struct op_port_set *set, bool header)
{
    const char *p = text, *end = text + len;
    int found = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if (header) {
            header = false;
        } else if (le > p) {
            uint16_t port;
            uint64_t inode = 0;
            int r = parse_line(p, le, &port, &inode);
            if (r < 0) {
                set->skipped++;
            } else if (r > 0) {
                found++;
                add_port(set, port, inode);
            }
        }
        p = nl ? nl + 1 : end;
    }
    return found;
}

int op_procnet_parse(const char *text, size_t len, struct op_port_set *set)
{
    return parse_lines(text, len, set, true);
}

/* Parses one /proc file in 64 KiB reads, carrying an incomplete last line over to the next read. */
static int read_file(const char *path, struct op_port_set *set)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    char buf[65536];
    size_t have = 0;
    bool header = true;
    for (;;) {
        ssize_t r = read(fd, buf + have, sizeof(buf) - have);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        have += (size_t)r;
        const char *last = NULL;
        for (size_t i = have; i > 0; i--)
            if (buf[i - 1] == '\n') {
                last = buf + i;
                break;
            }
        if (!last) {
            if (have == sizeof(buf)) have = 0; /* a 64 KiB line is not a socket line: drop it */
            continue;
        }
        size_t used = (size_t)(last - buf);
        parse_lines(buf, used, set, header);
        header = false;
        memmove(buf, last, have - used);
        have -= used;
    }
    if (have) parse_lines(buf, have, set, header);
    close(fd);
    return 0;
}

int op_procnet_read(struct op_port_set *set)
{
    static const char *const files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    memset(set, 0, sizeof(*set));
    int ok = 0, err = 0;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        int rc = read_file(files[i], set);
        if (rc == 0)
            ok++;
        else
            err = rc;
    }
    return ok ? 0 : err;
}

int op_procnet_same(const struct op_port_set *a, const struct op_port_set *b)
{
    return a->n == b->n && memcmp(a->port, b->port, sizeof(a->port[0]) * (size_t)a->n) == 0 &&
           memcmp(a->inode, b->inode, sizeof(a->inode[0]) * (size_t)a->n) == 0;
}

/* "socket:[12345]" -> 12345; 0 for anything else. */
static uint64_t socket_inode(const char *l, size_t n)
{
    if (n < 10 || memcmp(l, "socket:[", 8) != 0 || l[n - 1] != ']') return 0;
    uint64_t v = 0;
    for (size_t i = 8; i + 1 < n; i++) {
        if (l[i] < '0' || l[i] > '9' || v > (UINT64_MAX - 9) / 10) return 0;
        v = v * 10 + (uint64_t)(l[i] - '0');
    }
    return v;
}

/* The comm of process pid (NUL-terminated, without its newline) into out; false when unreadable. */
static bool read_comm(const char *pid, char out[OP_PROCNET_NAME_MAX])
{
    char path[300];
    snprintf(path, sizeof(path), "/proc/%.255s/comm", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t r = read(fd, out, OP_PROCNET_NAME_MAX - 1);
    close(fd);
    if (r <= 0) return false;
    size_t n = (size_t)r;
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\0'))
        n--;
    for (size_t i = 0; i < n; i++) /* a comm is the process's to choose: keep it printable */
        if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] >= 0x7f) out[i] = '?';
    out[n] = '\0';
    return n > 0;
}

int op_procnet_names(struct op_port_set *set)
{
    int want = 0, named = 0;
    for (int i = 0; i < set->n; i++)
        want += set->inode[i] && !set->name[i][0];
    if (!want) return 0;
    DIR *proc = opendir("/proc");
    if (!proc) return 0;
    struct dirent *de;
    while (named < want && (de = readdir(proc)) != NULL) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9') continue; /* processes only */
        char path[300];
        snprintf(path, sizeof(path), "/proc/%.255s/fd", de->d_name);
        DIR *fds = opendir(path); /* another user's process: EACCES, nameless */
        if (!fds) continue;
        char comm[OP_PROCNET_NAME_MAX] = "";
        bool have_comm = false;
        struct dirent *fe;
        while (named < want && (fe = readdir(fds)) != NULL) {
            if (fe->d_name[0] < '0' || fe->d_name[0] > '9') continue;
            char link[64];
            ssize_t n = readlinkat(dirfd(fds), fe->d_name, link, sizeof(link));
            uint64_t ino = n > 0 ? socket_inode(link, (size_t)n) : 0;
            if (!ino) continue;
            for (int i = 0; i < set->n; i++) {
                if (set->inode[i] != ino || set->name[i][0]) continue;
                if (!have_comm && !(have_comm = read_comm(de->d_name, comm))) break;
                memcpy(set->name[i], comm, sizeof(comm));
                named++;
            }
        }
        closedir(fds);
    }
    closedir(proc);
    return named;
}
