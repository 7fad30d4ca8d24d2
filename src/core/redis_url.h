// The address of a Redis server, as realtime_redis names it:
//
//   redis://[[user]:password@]host[:port][/db]    TCP (port 6379, db 0)
//   unix:/path/to/redis.sock                      a unix socket
//
// The user and password may hold percent-escapes (%40 for '@'); an IPv6
// host is written in brackets. rediss:// (TLS) is refused: the hiredis of
// Debian 12 (0.14) has no TLS. Parsing only: the glue resolves the host
// at configuration time (a worker must not block on DNS).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace realtime {

struct RedisUrl {
    bool is_unix = false;
    std::string host;  // TCP: a name or an address, brackets removed
    uint16_t port = 6379;
    std::string path;  // unix: the socket's path
    std::string user;  // "" : AUTH with the password alone
    std::string password;  // "" : no AUTH
    uint32_t db = 0;
    std::string display;  // the URL for logs: never the password
};

// Databases are numbered from 0; Redis' own bound is its "databases"
// setting, checked by SELECT when the link connects.
constexpr uint32_t kRedisMaxDb = 2147483647;

// Fills *url from text; false with *error (which never quotes the
// password) when it is not such a URL. May throw std::bad_alloc.
bool parse_redis_url(std::string_view text, RedisUrl* url, std::string* error);

// A database number, 0..kRedisMaxDb, digits only.
bool parse_redis_db(std::string_view text, uint32_t* db) noexcept;

// Decodes %XX escapes; false on a malformed one. May throw std::bad_alloc.
bool percent_decode(std::string_view text, std::string* out);

}  // namespace realtime
