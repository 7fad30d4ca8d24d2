/*
 * ngx_realtime_module: the realtime_zone directive, the shared memory zone
 * that holds the group registry, and the lock around it.
 */

#include "ngx_http_realtime_module.h"

#include <sys/random.h>


#define NGX_HTTP_REALTIME_BYTES_PER_BUCKET  2048


static ngx_int_t ngx_http_realtime_init_zone(ngx_shm_zone_t *shm_zone,
    void *data) noexcept;


/* realtime_zone NAME SIZE; */

char *
ngx_http_realtime_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept
{
    ngx_http_realtime_main_conf_t *rmcf = (ngx_http_realtime_main_conf_t *) conf;

    ssize_t                     size;
    ngx_str_t                  *value;
    ngx_shm_zone_t             *shm_zone;
    ngx_http_realtime_zone_t   *z, **zp;

    value = (ngx_str_t *) cf->args->elts;

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[2]);
        return (char *) NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (64 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small, at least %uzk is needed",
                           &value[1], 64 * ngx_pagesize / 1024);
        return (char *) NGX_CONF_ERROR;
    }

    if (ngx_http_realtime_find_zone(cf, &value[1]) != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate realtime_zone \"%V\"", &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    shm_zone = ngx_shared_memory_add(cf, &value[1], size, &ngx_realtime_module);
    if (shm_zone == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "shared memory zone \"%V\" is already used",
                           &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    z = (ngx_http_realtime_zone_t *)
            ngx_pcalloc(cf->pool, sizeof(ngx_http_realtime_zone_t));
    if (z == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    z->name = value[1];
    z->shm_zone = shm_zone;
    z->slot = -1;

    shm_zone->init = ngx_http_realtime_init_zone;
    shm_zone->data = z;

    zp = (ngx_http_realtime_zone_t **) ngx_array_push(&rmcf->zones);
    if (zp == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    *zp = z;

    return NGX_CONF_OK;
}


ngx_http_realtime_zone_t *
ngx_http_realtime_find_zone(ngx_conf_t *cf, ngx_str_t *name)
{
    ngx_uint_t                      i;
    ngx_http_realtime_zone_t      **zones;
    ngx_http_realtime_main_conf_t  *rmcf;

    rmcf = (ngx_http_realtime_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_realtime_module);

    zones = (ngx_http_realtime_zone_t **) rmcf->zones.elts;

    for (i = 0; i < rmcf->zones.nelts; i++) {
        if (zones[i]->name.len == name->len
            && ngx_strncmp(zones[i]->name.data, name->data, name->len) == 0)
        {
            return zones[i];
        }
    }

    return NULL;
}


/*
 * Runs in the master at start and on every reload. A zone of the same name
 * and size is handed over from the previous cycle (data): the registry
 * carries on, with its groups and counters.
 */

static ngx_int_t
ngx_http_realtime_init_zone(ngx_shm_zone_t *shm_zone, void *data) noexcept
{
    ngx_http_realtime_zone_t  *oz = (ngx_http_realtime_zone_t *) data;
    ngx_http_realtime_zone_t  *z = (ngx_http_realtime_zone_t *) shm_zone->data;

    size_t            len;
    ngx_slab_pool_t  *shpool;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    z->shpool = shpool;

    if (oz || shm_zone->shm.exists) {
        /*
         * Reached through nginx's own slab pool, not through oz: the
         * previous cycle may be another build of this module, whose
         * structures we must not read before the layout says they match.
         */
        z->root = (realtime::RegistryRoot *) shpool->data;

        if (z->root->layout != realtime::kRegistryLayout) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "realtime zone \"%V\" was made by another version "
                          "of ngx_realtime_module; restart nginx (or rename "
                          "or resize the zone) to use this one",
                          &shm_zone->shm.name);
            return NGX_ERROR;
        }

        if (oz) {
            z->root->generation++;
        }

        return NGX_OK;
    }

    len = sizeof(" in realtime zone \"\"") + shm_zone->shm.name.len;

    shpool->log_ctx = (u_char *) ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in realtime zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone is reported by us, as a 507 or a refused handshake */
    shpool->log_nomem = 0;

    ngx_http_realtime_slab_allocator_t  alloc(shpool);

    z->root = realtime::Registry::create(alloc, shm_zone->shm.size
                                         / NGX_HTTP_REALTIME_BYTES_PER_BUCKET);
    if (z->root == NULL) {
        return NGX_ERROR;
    }

    shpool->data = z->root;

    /* epochs of this zone's groups differ from any earlier zone's: a
       client resuming from an id of a lost history is told so */
    uint32_t  zone_id;

    if (getrandom(&zone_id, sizeof(zone_id), GRND_NONBLOCK)
        != (ssize_t) sizeof(zone_id))
    {
        zone_id = (uint32_t) ngx_time() ^ (uint32_t) ngx_random();
    }

    z->root->zone_id = zone_id | 1;    /* never 0: epoch 0 means "none" */

    return NGX_OK;
}


void *
ngx_http_realtime_slab_allocator_t::allocate(size_t size) noexcept
{
    return ngx_slab_alloc_locked(pool_, size);
}


void
ngx_http_realtime_slab_allocator_t::deallocate(void *p) noexcept
{
    ngx_slab_free_locked(pool_, p);
}


ngx_http_realtime_registry_t::ngx_http_realtime_registry_t(
    ngx_http_realtime_zone_t *zone) noexcept
    : zone_(zone), alloc_(zone->shpool), registry_(zone->root, alloc_)
{
    ngx_shmtx_lock(&zone_->shpool->mutex);
}


ngx_http_realtime_registry_t::~ngx_http_realtime_registry_t()
{
    ngx_shmtx_unlock(&zone_->shpool->mutex);
}


/*
 * What realtime_stats shows. Only the numbers are copied under the lock;
 * the JSON is built after it is released.
 */

void
ngx_http_realtime_zone_snapshot(ngx_http_realtime_zone_t *z,
    ngx_http_realtime_zone_snapshot_t *snap)
{
    uint32_t    i;
    ngx_uint_t  pages_free;

    /* before the lock: nothing below allocates */
    snap->workers.reserve(realtime::kMaxWorkerSlots);
    snap->size = z->shm_zone->shm.size;

    ngx_http_realtime_registry_t  reg(z);

    for (i = 0; i < realtime::kMaxWorkerSlots; i++) {
        const realtime::WorkerSlot &w = z->root->slots[i];

        if (w.pid != 0) {
            snap->workers.push_back({w.pid, w.connections, w.queued});
        }
    }

    pages_free = z->shpool->pfree;
    snap->free = pages_free << ngx_pagesize_shift;
    snap->used = snap->size - snap->free;
    snap->generation = z->root->generation;
    snap->groups = z->root->groups;
    snap->stats = z->root->stats;
}
