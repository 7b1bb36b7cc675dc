#pragma once
// ServerEngine: the HTTP/1.1 server on the request path (config `server.engine`). Both engines are thin
// adapters around the RequestDispatcher: NativeServer (default) and Poco's HTTPServer (Gateway.cpp).
//
// Lifecycle: start() binds and begins serving (throws when it cannot listen); stop(drain) stops
// accepting, closes idle keep-alive connections, lets requests in flight finish for up to `drain`,
// then closes every connection and returns once no request is running. Called from one control thread.

#include <chrono>
#include <cstdint>

namespace idem::http {

class ServerEngine {
public:
    virtual ~ServerEngine() = default;
    virtual void start() = 0;
    virtual std::uint16_t port() const = 0;
    virtual void stop(std::chrono::milliseconds drain) = 0;
};

}  // namespace idem::http
