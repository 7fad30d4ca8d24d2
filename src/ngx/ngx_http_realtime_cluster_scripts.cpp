/*
 * ngx_realtime_module: the Lua scripts that number and keep the messages of
 * groups with history in Redis, so that every node gives a message the
 * same id and a client resumes on any node.
 *
 * Keys, per group G:
 *   PREFIX:s:G   hash: e = the group's epoch (hex, chosen by the first
 *                publisher), s = the last seq given
 *   PREFIX:h:G   stream: one entry per message, id "0-SEQ", fields
 *                p (payload), f (flags: "s" or "-"), x (expiry, Redis
 *                clock in ms; 0: none); MAXLEN the history size
 *
 * Both scripts are loaded on every connect of a command link (before any
 * other command), so EVALSHA always finds them. One script call per group
 * and message is atomic in Redis: the seq, the stream entry and the
 * PUBLISH happen together, so the channel carries a group's messages in
 * seq order and a reader never sees one without the other.
 */

#include "ngx_http_realtime_cluster_scripts.h"

#include <openssl/sha.h>

#include "ngx_http_realtime_redis.h"


/*
 * KEYS: seq hash, stream. ARGV: channel, message head (up to the id),
 * message tail (after it), payload, history size, ttl ms, proposed epoch,
 * flags. Returns {epoch, seq, receivers}.
 */
static ngx_str_t  ngx_http_realtime_publish_script = ngx_string(
    "local e = redis.call('HGET', KEYS[1], 'e')\n"
    "if not e then\n"
    "  e = ARGV[7]\n"
    "  redis.call('DEL', KEYS[2])\n"
    "  redis.call('HSET', KEYS[1], 'e', e)\n"
    "end\n"
    "local s = redis.call('HINCRBY', KEYS[1], 's', 1)\n"
    "local ttl = tonumber(ARGV[6])\n"
    "local x = 0\n"
    "if ttl > 0 then\n"
    "  local t = redis.call('TIME')\n"
    "  x = t[1] * 1000 + math.floor(t[2] / 1000) + ttl\n"
    "end\n"
    "redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[5], '0-' .. s,"
    " 'p', ARGV[4], 'f', ARGV[8], 'x', x)\n"
    "if ttl > 0 then\n"
    "  redis.call('PEXPIRE', KEYS[1], ttl + 86400000)\n"
    "  redis.call('PEXPIRE', KEYS[2], ttl)\n"
    "end\n"
    "return {e, s, redis.call('PUBLISH', ARGV[1],"
    " ARGV[2] .. e .. ' ' .. s .. ARGV[3] .. ARGV[4])}\n");


/*
 * KEYS: seq hash, stream. ARGV: the epoch the client knows (hex; "": any,
 * with seq 0: everything kept), the seq it has, at most how many. Returns
 * {epoch, last seq, then seq, flags, payload for each unexpired entry
 * after it}; {epoch or "", 0} when the group's epoch is another.
 */
static ngx_str_t  ngx_http_realtime_read_script = ngx_string(
    "local e = redis.call('HGET', KEYS[1], 'e')\n"
    "if not e or (ARGV[1] ~= '' and e ~= ARGV[1]) then"
    " return {e or '', 0} end\n"
    "local last = tonumber(redis.call('HGET', KEYS[1], 's') or '0')\n"
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "local out = {e, last}\n"
    "local r = redis.call('XRANGE', KEYS[2], '(0-' .. ARGV[2], '+',"
    " 'COUNT', ARGV[3])\n"
    "for _, m in ipairs(r) do\n"
    "  local f = m[2]\n"
    "  local x = tonumber(f[6])\n"
    "  if x == 0 or x > now then\n"
    "    out[#out + 1] = string.sub(m[1], 3)\n"
    "    out[#out + 1] = f[4]\n"
    "    out[#out + 1] = f[2]\n"
    "  end\n"
    "end\n"
    "return out\n");


static ngx_str_t  ngx_http_realtime_cluster_script_list[2];
static char       ngx_http_realtime_cluster_sha[2][SHA_DIGEST_LENGTH * 2 + 1];


static void
ngx_http_realtime_cluster_sha1(const ngx_str_t *text, char *hex)
{
    u_char  digest[SHA_DIGEST_LENGTH];

    SHA1(text->data, text->len, digest);
    ngx_hex_dump((u_char *) hex, digest, SHA_DIGEST_LENGTH);
    hex[SHA_DIGEST_LENGTH * 2] = '\0';
}


void
ngx_http_realtime_cluster_scripts(const ngx_str_t **scripts, ngx_uint_t *n)
    noexcept
{
    if (ngx_http_realtime_cluster_script_list[0].len == 0) {
        ngx_http_realtime_cluster_script_list[0] =
            ngx_http_realtime_publish_script;
        ngx_http_realtime_cluster_script_list[1] =
            ngx_http_realtime_read_script;

        ngx_http_realtime_cluster_sha1(&ngx_http_realtime_publish_script,
                                       ngx_http_realtime_cluster_sha[0]);
        ngx_http_realtime_cluster_sha1(&ngx_http_realtime_read_script,
                                       ngx_http_realtime_cluster_sha[1]);
    }

    *scripts = ngx_http_realtime_cluster_script_list;
    *n = 2;
}


const char *
ngx_http_realtime_cluster_publish_sha(void) noexcept
{
    return ngx_http_realtime_cluster_sha[0];
}


const char *
ngx_http_realtime_cluster_read_sha(void) noexcept
{
    return ngx_http_realtime_cluster_sha[1];
}


std::string
ngx_http_realtime_cluster_key(ngx_http_realtime_zone_t *z, char kind,
    std::string_view group)
{
    std::string  key(ngx_http_realtime_sv(z->redis->prefix));

    key += ':';
    key += kind;
    key += ':';
    key.append(group.data(), group.size());

    return key;
}


uint64_t
ngx_http_realtime_cluster_parse_epoch(const char *s, size_t len) noexcept
{
    uint64_t  v = 0;

    if (len == 0 || len > 16) {
        return 0;
    }

    for (size_t i = 0; i < len; i++) {
        char  c = s[i];
        int   d = (c >= '0' && c <= '9') ? c - '0'
                  : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;

        if (d < 0) {
            return 0;
        }

        v = v << 4 | (uint64_t) d;
    }

    return v;
}


bool
ngx_http_realtime_cluster_noscript(ngx_http_realtime_redis_link_t *link,
    const redisReply *reply) noexcept
{
    if (reply == NULL || reply->type != REDIS_REPLY_ERROR || reply->len < 8
        || ngx_strncmp(reply->str, "NOSCRIPT", 8) != 0)
    {
        return false;
    }

    ngx_http_realtime_redis_fail(link, "it lost the module's scripts");

    return true;
}
