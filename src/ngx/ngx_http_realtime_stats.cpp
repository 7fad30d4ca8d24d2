/*
 * ngx_realtime_module: realtime_stats, the zone's state as JSON.
 */

#include "ngx_http_realtime_module.h"

#include <string>

#include "core/publish_request.h"


ngx_int_t
ngx_http_realtime_stats_handler(ngx_http_request_t *r) noexcept
{
    uint32_t                       i;
    ngx_int_t                      rc;
    ngx_uint_t                     connections, workers;
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
        realtime::RegistryRoot  root;
        ngx_uint_t              pages_free;
        std::string             out;
        std::string             per_worker;

        {
            ngx_http_realtime_registry_t  reg(z);

            /* a snapshot: the JSON is built after the lock is released */
            ngx_memcpy(&root, z->root, sizeof(realtime::RegistryRoot));
            pages_free = z->shpool->pfree;
        }

        size_t size = z->shm_zone->shm.size;
        size_t free_bytes = pages_free << ngx_pagesize_shift;

        connections = 0;
        workers = 0;

        for (i = 0; i < realtime::kMaxWorkerSlots; i++) {
            const realtime::WorkerSlot &w = root.slots[i];

            if (w.pid == 0) {
                continue;
            }

            connections += w.connections;
            per_worker += std::string(workers ? "," : "")
                          + "{\"pid\":" + std::to_string(w.pid)
                          + ",\"connections\":" + std::to_string(w.connections)
                          + ",\"queued\":" + std::to_string(w.queued) + "}";
            workers++;
        }

        out = "{\"zone\":" + realtime::json_quote(ngx_http_realtime_sv(z->name))
              + ",\"size\":" + std::to_string(size)
              + ",\"used\":" + std::to_string(size - free_bytes)
              + ",\"free\":" + std::to_string(free_bytes)
              + ",\"generation\":" + std::to_string(root.generation)
              + ",\"groups\":" + std::to_string(root.groups)
              + ",\"connections\":" + std::to_string(connections)
              + ",\"connections_opened\":"
              + std::to_string(root.stats.connections_opened)
              + ",\"messages_published\":"
              + std::to_string(root.stats.messages_published)
              + ",\"frames_delivered\":"
              + std::to_string(root.stats.frames_delivered)
              + ",\"slow_consumer_closes\":"
              + std::to_string(root.stats.slow_consumer_closes)
              + ",\"publish_rejected_full\":"
              + std::to_string(root.stats.publish_rejected_full)
              + ",\"workers\":[" + per_worker + "]}";

        return ngx_http_realtime_send_json(r, NGX_HTTP_OK, out);

    } catch (...) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}
