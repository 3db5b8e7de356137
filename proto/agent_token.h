/*
 * proto/agent_token.h — the claims of the two HS512 JWS the primary issues for agent streams, shared by
 * the primary (writes them) and every region (reads them after op_jws_parse + op_jws_mac_ok with the
 * workspace_apps_token key named by the kid):
 *
 *   agent credential  {"aud":"outpost-agent","agent_id","workspace_id","owner_id","iat","exp"}
 *                     lets an agent open control and stream connections to a region (5 minutes).
 *   connect token     {"aud":"outpost-connect","user_id","agent_id","workspace_id","port","region","exp"}
 *                     lets a user open one stream to port inside the agent's workspace through that region
 *                     (1 minute, as signed app tokens).
 *
 * The "aud" values keep one kind from being accepted as the other (and both apart from app tokens, which
 * have none). Ids are canonical lower-case UUIDs; region names are Coder names. Nothing here allocates.
 */
#ifndef OP_PROTO_AGENT_TOKEN_H
#define OP_PROTO_AGENT_TOKEN_H

#include "proto/jws.h"

#define OP_AGENT_CRED_AUD           "outpost-agent"
#define OP_CONNECT_AUD              "outpost-connect"
#define OP_AGENT_CRED_LIFETIME_S    300
#define OP_CONNECT_TOKEN_LIFETIME_S 60
#define OP_JWS_LEEWAY_S             60 /* accepted past exp for clock skew, as Coder's JWT library does */
#define OP_ID_LEN                   36

struct op_agent_cred {
    char agent_id[OP_ID_LEN + 1];
    char workspace_id[OP_ID_LEN + 1];
    char owner_id[OP_ID_LEN + 1];
    int64_t iat, exp; /* unix seconds */
};

struct op_connect_claims {
    char user_id[OP_ID_LEN + 1];
    char agent_id[OP_ID_LEN + 1];
    char workspace_id[OP_ID_LEN + 1];
    char region[65];
    uint16_t port;
    int64_t exp;
};

/* Payload text of a credential / connect token. Returns the length, -EINVAL (an id that is not a
 * lower-case UUID, a bad region name, port 0) or -ENOSPC. */
int op_agent_cred_payload(const struct op_agent_cred *c, char *out, size_t outlen);
int op_connect_payload(const struct op_connect_claims *c, char *out, size_t outlen);

/* Reads the claims of a token whose MAC was verified, and checks them: aud, every claim present and well
 * formed, exp + OP_JWS_LEEWAY_S > now_s. Returns 0, -EINVAL (wrong kind or malformed) or -ETIMEDOUT. */
int op_agent_cred_read(const struct op_jws *j, int64_t now_s, struct op_agent_cred *out);
int op_connect_read(const struct op_jws *j, int64_t now_s, struct op_connect_claims *out);

#endif
