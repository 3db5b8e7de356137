/*
 * util/buildinfo.c — see buildinfo.h.
 */
#include "util/buildinfo.h"

cJSON *op_buildinfo_json(const char *version, const char *dashboard_url, bool workspace_proxy)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "external_url", "https://github.com/outpost/outpost");
    cJSON_AddStringToObject(o, "version", version);
    cJSON_AddStringToObject(o, "dashboard_url", dashboard_url);
    cJSON_AddBoolToObject(o, "workspace_proxy", workspace_proxy);
    cJSON_AddStringToObject(o, "agent_api_version", "2.0");
    return o;
}
