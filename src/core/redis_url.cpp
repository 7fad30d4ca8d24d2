#include "redis_url.h"

namespace realtime {

namespace {

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

bool parse_port(std::string_view text, uint16_t* port) noexcept {
    if (text.empty() || text.size() > 5) {
        return false;
    }
    uint32_t n = 0;
    for (char c : text) {
        if (c < '0' || c > '9') {
            return false;
        }
        n = n * 10 + static_cast<uint32_t>(c - '0');
    }
    if (n == 0 || n > 65535) {
        return false;
    }
    *port = static_cast<uint16_t>(n);
    return true;
}

bool valid_host(std::string_view host) noexcept {
    if (host.empty() || host.size() > 253) {
        return false;
    }
    for (char c : host) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                  || c == '.' || c == '-' || c == '_' || c == ':';
        if (!ok) {
            return false;
        }
    }
    return true;
}

}  // namespace

bool percent_decode(std::string_view text, std::string* out) {
    out->clear();
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out->push_back(text[i]);
            continue;
        }
        if (i + 2 >= text.size()) {
            return false;
        }
        int hi = hex_value(text[i + 1]);
        int lo = hex_value(text[i + 2]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        out->push_back(static_cast<char>(hi << 4 | lo));
        i += 2;
    }
    return true;
}

bool parse_redis_db(std::string_view text, uint32_t* db) noexcept {
    if (text.empty() || text.size() > 10) {
        return false;
    }
    uint64_t n = 0;
    for (char c : text) {
        if (c < '0' || c > '9') {
            return false;
        }
        n = n * 10 + static_cast<uint64_t>(c - '0');
    }
    if (n > kRedisMaxDb) {
        return false;
    }
    *db = static_cast<uint32_t>(n);
    return true;
}

bool parse_redis_url(std::string_view text, RedisUrl* url, std::string* error) {
    *url = RedisUrl{};

    if (text.substr(0, 5) == "unix:") {
        std::string_view path = text.substr(5);
        if (path.empty() || path[0] != '/') {
            *error = "a unix socket URL is unix:/absolute/path";
            return false;
        }
        url->is_unix = true;
        url->path = std::string(path);
        url->display = std::string(text);
        return true;
    }

    if (text.substr(0, 9) == "rediss://") {
        *error = "rediss:// (TLS) is not supported: this build's hiredis (0.14) has no TLS; "
                 "use a unix socket or a TLS tunnel (e.g. stunnel) to a local port";
        return false;
    }

    if (text.substr(0, 8) != "redis://") {
        *error = "the URL must start with redis:// or unix:";
        return false;
    }

    std::string_view rest = text.substr(8);
    std::string_view userinfo;
    bool has_userinfo = false;

    // the password may hold '@' only escaped: the last '@' ends it anyway
    size_t at = rest.rfind('@');
    size_t slash = rest.find('/', at == std::string_view::npos ? 0 : at);
    if (at != std::string_view::npos) {
        userinfo = rest.substr(0, at);
        rest = rest.substr(at + 1);
        has_userinfo = true;
        slash = rest.find('/');
    }

    std::string_view hostport = rest.substr(0, slash);
    std::string_view dbpart =
        slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);

    if (has_userinfo) {
        size_t colon = userinfo.find(':');
        if (colon == std::string_view::npos) {
            *error = "the password is written :password@ (with a colon)";
            return false;
        }
        if (!percent_decode(userinfo.substr(0, colon), &url->user)
            || !percent_decode(userinfo.substr(colon + 1), &url->password)) {
            *error = "malformed %-escape in the user or password";
            return false;
        }
        if (url->password.empty()) {
            *error = "empty password";
            return false;
        }
    }

    std::string_view host = hostport;
    std::string_view port;

    if (!hostport.empty() && hostport[0] == '[') {
        size_t close = hostport.find(']');
        if (close == std::string_view::npos) {
            *error = "unclosed '[' in the host";
            return false;
        }
        host = hostport.substr(1, close - 1);
        std::string_view after = hostport.substr(close + 1);
        if (!after.empty()) {
            if (after[0] != ':') {
                *error = "unexpected text after the host";
                return false;
            }
            port = after.substr(1);
            if (port.empty()) {
                *error = "empty port";
                return false;
            }
        }
    } else {
        size_t colon = hostport.rfind(':');
        if (colon != std::string_view::npos) {
            host = hostport.substr(0, colon);
            port = hostport.substr(colon + 1);
            if (host.find(':') != std::string_view::npos) {
                *error = "an IPv6 address is written in brackets: [::1]:6379";
                return false;
            }
            if (port.empty()) {
                *error = "empty port";
                return false;
            }
        }
    }

    if (!valid_host(host)) {
        *error = "invalid or missing host";
        return false;
    }
    if (!port.empty() && !parse_port(port, &url->port)) {
        *error = "invalid port (1-65535)";
        return false;
    }
    if (slash != std::string_view::npos && !parse_redis_db(dbpart, &url->db)) {
        *error = "invalid database number (0-2147483647)";
        return false;
    }

    url->host = std::string(host);

    url->display = "redis://";
    if (has_userinfo) {
        url->display += std::string(userinfo.substr(0, userinfo.find(':'))) + ":***@";
    }
    url->display += std::string(hostport);
    if (slash != std::string_view::npos) {
        url->display += "/" + std::string(dbpart);
    }
    return true;
}

}  // namespace realtime
