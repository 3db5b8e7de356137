/*
 * wsproxy/metrics.c — the Prometheus listener: every request becomes an application job that the
 * control thread answers with the text exposition of the engine's, the protocols' and the proxy's own
 * counters.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tls/xprt.h"
#include "wsproxy/server_int.h"
#include "wsproxy/wsproxy.h"

/* ---- Prometheus listener: jobs to the control thread --------------------------------------------- */

void op_wsp_metrics_route(void *ctx, struct op_conn *c, const struct op_h1_request *req, struct op_route *out)
{
    (void)ctx;
    (void)c;
    (void)req;
    out->kind = OP_ROUTE_APP;
}

struct mbuf {
    char *p;
    size_t len, cap;
};

static void mprintf(struct mbuf *b, const char *fmt, ...) OP_PRINTF(2, 3);
static void mprintf(struct mbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = b->p ? vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap) : -1;
        va_end(ap);
        if (n >= 0 && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t nc = b->cap ? b->cap * 2 : 8192;
        char *np = realloc(b->p, nc);
        if (!np) return;
        b->p = np;
        b->cap = nc;
    }
}

static void metric(struct mbuf *b, const char *name, const char *type, const char *help, uint64_t v)
{
    mprintf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, (unsigned long long)v);
}

/* process_* metrics from /proc/self (what the Go process collector exports). */
static void process_metrics(struct mbuf *b, const struct ws *w)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    uint64_t fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        for (struct dirent *de; (de = readdir(d));)
            fds += de->d_name[0] != '.';
        closedir(d);
        fds--; /* the directory stream itself */
    }
    metric(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
           (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE));
    metric(b, "process_open_fds", "gauge", "Number of open file descriptors.", fds);
    mprintf(b,
            "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
            "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.3f\n",
            w->start_time);
    mprintf(
        b,
        "# HELP outpost_wsproxy_build_info The proxy's version.\n# TYPE outpost_wsproxy_build_info gauge\n"
        "outpost_wsproxy_build_info{version=\"%s\"} 1\n",
        OP_WS_VERSION);
    metric(b, "outpost_wsproxy_config_last_reload_successful", "gauge",
           "1 if the last reload was applied (or none happened), 0 if it was rejected.", w->last_reload_ok);
    mprintf(
        b,
        "# HELP outpost_wsproxy_primary_last_register_success_timestamp_seconds When the last registration "
        "succeeded.\n# TYPE outpost_wsproxy_primary_last_register_success_timestamp_seconds gauge\n"
        "outpost_wsproxy_primary_last_register_success_timestamp_seconds %.3f\n",
        w->last_register_ok);
}

void op_wsp_metrics_handler(void *ctx, const struct op_app_request *req, struct op_app_response *resp)
{
    struct ws *w = ctx;
    (void)req;
    uint64_t acc = 0, act = 0, bin = 0, bout = 0, upin = 0, upout = 0, hs = 0, hsf = 0, uce = 0, rq = 0,
             r5 = 0, r4 = 0, tmo = 0, dur[OP_HTTP_DUR_BUCKETS] = {0}, dur_sum = 0, dur_count = 0;
    for (int i = 0; i < op_engine_nworkers(w->e); i++) {
        const struct op_worker_stats *s = op_engine_stats(w->e, i);
        acc += atomic_load_explicit(&s->accepted, memory_order_relaxed);
        act += atomic_load_explicit(&s->active, memory_order_relaxed);
        bin += atomic_load_explicit(&s->bytes_in, memory_order_relaxed);
        bout += atomic_load_explicit(&s->bytes_out, memory_order_relaxed);
        upin += atomic_load_explicit(&s->up_bytes_in, memory_order_relaxed);
        upout += atomic_load_explicit(&s->up_bytes_out, memory_order_relaxed);
        uce += atomic_load_explicit(&s->upstream_connect_errors, memory_order_relaxed);
        tmo += atomic_load_explicit(&s->timeouts, memory_order_relaxed);
        const struct op_tls_stats *ts = op_tls_worker_stats(w->e, i);
        if (ts) {
            hs += atomic_load_explicit(&ts->handshakes, memory_order_relaxed);
            hsf += atomic_load_explicit(&ts->failures, memory_order_relaxed);
        }
        const struct op_http_stats *h = op_http_worker_stats(w->e, i);
        if (h) {
            rq += atomic_load_explicit(&h->requests, memory_order_relaxed);
            r5 += atomic_load_explicit(&h->responses_5xx, memory_order_relaxed);
            r4 += atomic_load_explicit(&h->responses_4xx, memory_order_relaxed);
            for (int k = 0; k < OP_HTTP_DUR_BUCKETS; k++)
                dur[k] += atomic_load_explicit(&h->req_dur[k], memory_order_relaxed);
            dur_sum += atomic_load_explicit(&h->req_dur_sum_us, memory_order_relaxed);
            dur_count += atomic_load_explicit(&h->req_dur_count, memory_order_relaxed);
        }
    }
    struct mbuf b = {0};
    metric(&b, "outpost_wsproxy_connections_accepted_total", "counter", "Client connections accepted.", acc);
    metric(&b, "outpost_wsproxy_connections_active", "gauge", "Client connections open now.", act);
    metric(&b, "outpost_wsproxy_client_bytes_received_total", "counter", "Bytes received from clients.", bin);
    metric(&b, "outpost_wsproxy_client_bytes_sent_total", "counter", "Bytes sent to clients.", bout);
    metric(&b, "outpost_wsproxy_upstream_bytes_received_total", "counter", "Bytes received from upstreams.",
           upin);
    metric(&b, "outpost_wsproxy_upstream_bytes_sent_total", "counter", "Bytes sent to upstreams.", upout);
    metric(&b, "outpost_wsproxy_tls_handshakes_total", "counter", "TLS handshakes completed.", hs);
    metric(&b, "outpost_wsproxy_tls_handshake_failures_total", "counter", "TLS handshakes failed.", hsf);
    metric(&b, "outpost_wsproxy_upstream_connect_errors_total", "counter", "Failed upstream connects.", uce);
    metric(&b, "outpost_wsproxy_http_requests_total", "counter", "HTTP requests read (all listeners).", rq);
    metric(&b, "outpost_wsproxy_http_responses_5xx_total", "counter", "5xx responses written.", r5);
    metric(&b, "outpost_wsproxy_http_responses_4xx_total", "counter", "4xx responses written.", r4);
    metric(&b, "outpost_wsproxy_timeouts_total", "counter", "Connections closed by a timeout.", tmo);
    mprintf(&b, "# HELP outpost_wsproxy_http_request_duration_seconds Time from a parsed request head to its "
                "complete response.\n# TYPE outpost_wsproxy_http_request_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (int k = 0; k < OP_HTTP_DUR_BUCKETS; k++) {
        cum += dur[k];
        if (k < OP_HTTP_DUR_BUCKETS - 1)
            mprintf(&b, "outpost_wsproxy_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                    (double)op_http_dur_bounds_us[k] / 1e6, (unsigned long long)cum);
        else
            mprintf(&b, "outpost_wsproxy_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                    (unsigned long long)cum);
    }
    mprintf(&b, "outpost_wsproxy_http_request_duration_seconds_sum %.6f\n", (double)dur_sum / 1e6);
    mprintf(&b, "outpost_wsproxy_http_request_duration_seconds_count %llu\n", (unsigned long long)dur_count);
    metric(&b, "outpost_wsproxy_registered", "gauge",
           "1 when the last registration with the primary succeeded.", w->registered);
    metric(&b, "outpost_wsproxy_registration_consecutive_failures", "gauge",
           "Registration failures since the last success.", (uint64_t)w->reg_failures);
    metric(&b, "outpost_wsproxy_registration_failures_total", "counter", "Failed registrations.",
           w->reg_failures_total);
    metric(&b, "outpost_wsproxy_registrations_total", "counter", "Successful registrations.",
           w->reg_success_total);
    metric(&b, "outpost_wsproxy_reloads_total", "counter", "Configuration reloads applied (SIGHUP).",
           w->reloads);
    metric(&b, "outpost_wsproxy_reload_failures_total", "counter", "Reloads rejected (old config kept).",
           w->reload_failures);
    if (w->region) {
        struct op_region_stats rs;
        op_region_stats(w->region, &rs);
        metric(&b, "outpost_region_agents", "gauge", "Agents with a control connection to this region.",
               rs.agents);
        metric(&b, "outpost_region_control_connections", "gauge", "Agent control connections open now.",
               rs.control);
        metric(&b, "outpost_region_parked_streams", "gauge", "Spare agent connections parked now.",
               rs.parked);
        metric(&b, "outpost_region_waiting_clients", "gauge",
               "Client streams waiting for an agent spare now.", rs.waiting);
        metric(&b, "outpost_region_streams_opened_total", "counter", "Agent streams opened.",
               rs.streams_opened);
        metric(&b, "outpost_region_streams_failed_total", "counter", "Agent streams that failed to open.",
               rs.streams_failed);
        metric(&b, "outpost_region_spares_parked_total", "counter",
               "Spare agent connections parked (not counting those handed straight to a waiting client).",
               rs.parked_total);
        metric(&b, "outpost_region_dead_spares_total", "counter", "Parked spares found closed.",
               rs.dead_spares);
    }
    process_metrics(&b, w);
    mprintf(&b, "# HELP coderd_api_requests_processed_total The total number of processed API requests.\n"
                "# TYPE coderd_api_requests_processed_total counter\n");
    for (int r = 0; r < RT_N; r++)
        for (int m = 0; m < MT_N; m++) {
            uint64_t v = 0;
            for (int i = 0; i < OP_WS_STAT_SLOTS; i++)
                v += atomic_load_explicit(&op_wsp_rstats[i].n[r][m], memory_order_relaxed);
            if (v)
                mprintf(&b,
                        "coderd_api_requests_processed_total{code=\"%d\",method=\"%s\",path=\"%s\"} %llu\n",
                        op_wsp_rt_info[r].code, op_wsp_mt_names[m], op_wsp_rt_info[r].path,
                        (unsigned long long)v);
        }
    if (!b.p) {
        op_app_respond(resp, 500, "out of memory\n");
        resp->content_type = "text/plain";
        return;
    }
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp->body = b.p;
    resp->body_len = b.len;
}
