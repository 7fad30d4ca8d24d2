/*
 * ngx_realtime_module: realtime_stats, the zone's state as JSON.
 */

#include "ngx_http_realtime_stats.h"

#include <string>

#include "core/publish_request.h"
#include "ngx_http_realtime_channels.h"
#include "ngx_http_realtime_cluster.h"


ngx_int_t
ngx_http_realtime_stats_handler(ngx_http_request_t *r) noexcept
{
    ngx_int_t                      rc;
    ngx_uint_t                     connections;
    ngx_http_realtime_zone_t      *z;
    ngx_http_realtime_loc_conf_t  *rlcf;

    rlcf = (ngx_http_realtime_loc_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_realtime_module);

    /* worker pids and load are nobody else's business: closed like publish */
    rc = ngx_http_realtime_local_only(r, rlcf->stats_remote, "reading stats",
                                      "realtime_stats_remote");
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        if (ngx_http_realtime_add_header(r, "Allow", "GET") != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_realtime_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                            "use GET");
    }

    z = rlcf->zone;

    try {
        ngx_http_realtime_zone_snapshot_t  snap;
        std::string                        out, per_worker;

        ngx_http_realtime_zone_snapshot(z, &snap);

        connections = 0;

        for (const auto &w : snap.workers) {
            connections += w.connections;
            per_worker += std::string(per_worker.empty() ? "" : ",")
                          + "{\"pid\":" + std::to_string(w.pid)
                          + ",\"connections\":" + std::to_string(w.connections)
                          + ",\"queued\":" + std::to_string(w.queued) + "}";
        }

        out = "{\"zone\":" + realtime::json_quote(ngx_http_realtime_sv(z->name))
              + ",\"size\":" + std::to_string(snap.size)
              + ",\"used\":" + std::to_string(snap.used)
              + ",\"free\":" + std::to_string(snap.free)
              + ",\"generation\":" + std::to_string(snap.generation)
              + ",\"groups\":" + std::to_string(snap.groups)
              + ",\"connections\":" + std::to_string(connections)
              + ",\"connections_opened\":"
              + std::to_string(snap.stats.connections_opened)
              + ",\"messages_published\":"
              + std::to_string(snap.stats.messages_published)
              + ",\"frames_delivered\":"
              + std::to_string(snap.stats.frames_delivered)
              + ",\"slow_consumer_closes\":"
              + std::to_string(snap.stats.slow_consumer_closes)
              + ",\"publish_rejected_full\":"
              + std::to_string(snap.stats.publish_rejected_full)
              + ",\"presence_joins\":"
              + std::to_string(snap.stats.presence_joins)
              + ",\"presence_leaves\":"
              + std::to_string(snap.stats.presence_leaves)
              + ",\"presence_events_lost\":"
              + std::to_string(snap.stats.presence_events_lost)
              + ",\"history_evicted\":"
              + std::to_string(snap.stats.history_evicted)
              + ngx_http_realtime_cluster_stats(z)
              + ngx_http_realtime_channels_stats(z)
              + ",\"workers\":[" + per_worker + "]}";

        return ngx_http_realtime_send_json(r, NGX_HTTP_OK, out);

    } catch (...) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}
