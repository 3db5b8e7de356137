/*
 * agent/ssh.c — the agent's SSH server (see ssh.h): the host key, the session threads, authentication,
 * and the session loop. Channels (shell, exec, sftp, direct-tcpip) are in ssh_chan.c.
 *
 * A session thread runs one libssh event loop (ssh_event) over the session's socket and the descriptors
 * of its channels' children and forwarded sockets, so it never needs a second thread. The session is cut
 * when the client disconnects, after too many refused authentication attempts, when three keep-alives
 * in a row go unanswered, or when the agent stops.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/ssh_int.h"
#include "core/common.h"
#include "core/log.h"

#define KEY_FILE "ssh_host_ed25519_key"

static int mkdir_p(const char *dir)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s", dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) return -errno;
        *s = '/';
    }
    if (mkdir(p, 0700) != 0 && errno != EEXIST) return -errno;
    return 0;
}

/* Loads the host key, or generates it and writes it atomically (a temporary file renamed into place, so
 * two agents sharing a data directory never see half a key). */
static int load_key(const char *dir, ssh_key *key, char *err, size_t errlen)
{
    char path[1100], tmp[1200];
    snprintf(path, sizeof(path), "%s/%s", dir, KEY_FILE);
    if (access(path, F_OK) == 0) {
        if (ssh_pki_import_privkey_file(path, NULL, NULL, NULL, key) != SSH_OK) {
            snprintf(err, errlen, "cannot read the SSH host key %s", path);
            return -EINVAL;
        }
        if (ssh_key_type(*key) != SSH_KEYTYPE_ED25519) {
            snprintf(err, errlen, "the SSH host key %s is not an ed25519 key", path);
            ssh_key_free(*key);
            return -EINVAL;
        }
        return 0;
    }
    int rc = mkdir_p(dir);
    if (rc) {
        snprintf(err, errlen, "cannot create the data directory %s: %s", dir, strerror(-rc));
        return rc;
    }
    if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, key) != SSH_OK) {
        snprintf(err, errlen, "cannot generate an ed25519 host key");
        return -EIO;
    }
    snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
    mode_t old = umask(077);
    rc = ssh_pki_export_privkey_file(*key, NULL, NULL, NULL, tmp);
    umask(old);
    if (rc != SSH_OK || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write the SSH host key %s: %s", path, strerror(errno));
        unlink(tmp);
        ssh_key_free(*key);
        return -EIO;
    }
    op_info("agent", "ssh: generated the host key %s", path);
    return 0;
}

int op_agent_ssh_start(const char *data_dir, int max_sessions, struct op_agent_ssh **out, char *err,
                       size_t errlen)
{
    struct op_agent_ssh *s = calloc(1, sizeof(*s));
    if (!s) return -ENOMEM;
    ssh_init();
    int rc = load_key(data_dir, &s->key, err, errlen);
    if (rc) {
        free(s);
        return rc;
    }
    char *b64 = NULL;
    unsigned char *hash = NULL;
    size_t hlen = 0;
    if (ssh_pki_export_pubkey_base64(s->key, &b64) != SSH_OK ||
        ssh_get_publickey_hash(s->key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) != 0) {
        snprintf(err, errlen, "cannot export the SSH host public key");
        ssh_string_free_char(b64);
        ssh_key_free(s->key);
        free(s);
        return -EIO;
    }
    snprintf(s->pub, sizeof(s->pub), "ssh-ed25519 %s", b64);
    char *fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
    snprintf(s->fp, sizeof(s->fp), "%s", fp ? fp : "");
    ssh_string_free_char(fp);
    ssh_string_free_char(b64);
    ssh_clean_pubkey_hash(&hash);
    s->bind = ssh_bind_new();
    ssh_key dup = ssh_key_dup(s->key);
    if (!s->bind || !dup || ssh_bind_options_set(s->bind, SSH_BIND_OPTIONS_IMPORT_KEY, dup) != SSH_OK) {
        snprintf(err, errlen, "cannot set up the SSH server");
        ssh_key_free(dup);
        if (s->bind) ssh_bind_free(s->bind);
        ssh_key_free(s->key);
        free(s);
        return -EIO;
    }
    s->max_sessions = max_sessions > 0 ? max_sessions : 1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    op_info("agent", "ssh: host key %s (served through the agent's streams, no listening port)", s->fp);
    *out = s;
    return 0;
}

const char *op_agent_ssh_pubkey(const struct op_agent_ssh *s)
{
    return s->pub;
}

const char *op_agent_ssh_fingerprint(const struct op_agent_ssh *s)
{
    return s->fp;
}

/* ---- authentication: the stream was authorised by the region, so none and any public key pass ---- */

static int refused(struct sess *ss)
{
    if (++ss->auth_fails >= OP_AGENT_SSH_MAX_AUTH) {
        op_warn("agent", "ssh: %d refused authentication attempts: closing the session", ss->auth_fails);
        ss->cut = true;
    }
    return SSH_AUTH_DENIED;
}

static int auth_none(ssh_session session, const char *user, void *ud)
{
    (void)session;
    (void)user;
    struct sess *ss = ud;
    ss->authed = true;
    return SSH_AUTH_SUCCESS;
}

static int auth_pubkey(ssh_session session, const char *user, struct ssh_key_struct *pubkey,
                       char signature_state, void *ud)
{
    (void)session;
    (void)user;
    (void)pubkey;
    struct sess *ss = ud;
    if (signature_state == SSH_PUBLICKEY_STATE_NONE) return SSH_AUTH_SUCCESS; /* "this key would do" */
    if (signature_state != SSH_PUBLICKEY_STATE_VALID) return refused(ss);
    ss->authed = true;
    return SSH_AUTH_SUCCESS;
}

static int auth_password(ssh_session session, const char *user, const char *password, void *ud)
{
    (void)session;
    (void)user;
    (void)password;
    return refused(ud);
}

static ssh_channel open_session(ssh_session session, void *ud)
{
    (void)session;
    return ar_ssh_chan_open_session(ud);
}

/* Messages no callback took: direct-tcpip channel opens (ssh -L). 0 = handled, 1 = default reply. */
static int on_message(ssh_session session, ssh_message msg, void *ud)
{
    (void)session;
    if (ssh_message_type(msg) == SSH_REQUEST_CHANNEL_OPEN &&
        ssh_message_subtype(msg) == SSH_CHANNEL_DIRECT_TCPIP)
        return ar_ssh_chan_open_tcpip(ud, msg);
    return 1;
}

/* ---- the session thread ---- */

static void session_run(struct sess *ss)
{
    struct op_agent_ssh *srv = ss->srv;
    pthread_mutex_lock(&srv->mu); /* ssh_bind_accept_fd reads the bind's shared state */
    int rc = ssh_bind_accept_fd(srv->bind, ss->s, ss->fd);
    pthread_mutex_unlock(&srv->mu);
    if (rc != SSH_OK) {
        op_warn("agent", "ssh: cannot start a session: %s", ssh_get_error(srv->bind));
        close(ss->fd);
        return;
    }
    ss->scb = (struct ssh_server_callbacks_struct){
        .userdata = ss,
        .auth_none_function = auth_none,
        .auth_pubkey_function = auth_pubkey,
        .auth_password_function = auth_password,
        .channel_open_request_session_function = open_session,
    };
    ssh_callbacks_init(&ss->scb);
    ssh_set_server_callbacks(ss->s, &ss->scb);
    ssh_set_auth_methods(ss->s, SSH_AUTH_METHOD_NONE | SSH_AUTH_METHOD_PUBLICKEY);
    ssh_set_message_callback(ss->s, on_message, ss);
    if (ssh_handle_key_exchange(ss->s) != SSH_OK) {
        op_debug("agent", "ssh: key exchange failed: %s", ssh_get_error(ss->s));
        return;
    }
    ss->ev = ssh_event_new();
    if (!ss->ev || ssh_event_add_session(ss->ev, ss->s) != SSH_OK) return;
    uint64_t last_rx = op_now_ms(), next_ka = last_rx + OP_AGENT_SSH_KEEPALIVE_MS;
    int missed = 0;
    while (!ss->cut && !atomic_load(&srv->stop)) {
        int r = ssh_event_dopoll(ss->ev, 200);
        if (r == SSH_ERROR || !ssh_is_connected(ss->s)) break;
        uint64_t now = op_now_ms();
        if (r == SSH_OK) { /* something arrived: the peer is alive */
            last_rx = now;
            missed = 0;
        }
        ar_ssh_chan_poll(ss);
        if (now >= next_ka) {
            if (now - last_rx >= OP_AGENT_SSH_KEEPALIVE_MS && ++missed > 3) {
                op_info("agent", "ssh: no answer to 3 keep-alives: closing the session");
                break;
            }
            if (ss->authed) ssh_send_keepalive(ss->s);
            next_ka = now + OP_AGENT_SSH_KEEPALIVE_MS;
        }
    }
    ar_ssh_chan_close_all(ss);
    if (ssh_is_connected(ss->s)) ssh_disconnect(ss->s);
}

static void *session_main(void *arg)
{
    struct sess *ss = arg;
    struct op_agent_ssh *srv = ss->srv;
    session_run(ss);
    if (ss->ev) {
        ssh_event_remove_session(ss->ev, ss->s);
        ssh_event_free(ss->ev);
    }
    ssh_free(ss->s);
    free(ss);
    pthread_mutex_lock(&srv->mu);
    srv->nsessions--;
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    return NULL;
}

int op_agent_ssh_serve(struct op_agent_ssh *s, int fd)
{
    pthread_mutex_lock(&s->mu);
    bool full = s->nsessions >= s->max_sessions;
    if (!full) s->nsessions++;
    pthread_mutex_unlock(&s->mu);
    if (full) {
        close(fd);
        return -EAGAIN;
    }
    struct sess *ss = calloc(1, sizeof(*ss));
    if (ss) ss->s = ssh_new();
    int rc = ss && ss->s ? 0 : -ENOMEM;
    pthread_t t;
    pthread_attr_t at;
    if (rc == 0) {
        ss->srv = s;
        ss->fd = fd;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        rc = -pthread_create(&t, &at, session_main, ss);
        pthread_attr_destroy(&at);
    }
    if (rc == 0) return 0;
    if (ss && ss->s) ssh_free(ss->s);
    free(ss);
    close(fd);
    pthread_mutex_lock(&s->mu);
    s->nsessions--;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

bool op_agent_ssh_has_room(struct op_agent_ssh *s)
{
    pthread_mutex_lock(&s->mu);
    bool room = s->nsessions < s->max_sessions;
    pthread_mutex_unlock(&s->mu);
    return room;
}

void op_agent_ssh_stop(struct op_agent_ssh *s, int grace_ms)
{
    if (!s) return;
    atomic_store(&s->stop, true);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += grace_ms / 1000 + 1;
    pthread_mutex_lock(&s->mu);
    while (s->nsessions > 0)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0) break;
    int left = s->nsessions;
    pthread_mutex_unlock(&s->mu);
    if (left) { /* a session thread stuck in a write: leave the shared state to it */
        op_warn("agent", "ssh: %d session%s still ending at exit", left, left == 1 ? "" : "s");
        return;
    }
    ssh_bind_free(s->bind);
    ssh_key_free(s->key);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    ssh_finalize();
}
