/*
 * util/buildinfo.h — the body of GET /api/v2/buildinfo, which the primary and the workspace proxy both
 * serve (Coder's codersdk.BuildInfoResponse; docs/coder-compat.md, "Build info").
 */
#ifndef OP_UTIL_BUILDINFO_H
#define OP_UTIL_BUILDINFO_H

#include <cjson/cJSON.h>
#include <stdbool.h>

/* A new JSON object {external_url, version, dashboard_url, workspace_proxy, agent_api_version}; the caller
 * may add fields and owns it. NULL when out of memory. */
cJSON *op_buildinfo_json(const char *version, const char *dashboard_url, bool workspace_proxy);

#endif
