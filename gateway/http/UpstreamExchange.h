#pragma once
// One HTTP/1.1 exchange on an upstream connection: write the request, read and parse the response
// (core::HttpResponseParser), and classify the outcome the way SEMANTICS.md §5 needs it:
//   - no request byte went out (the connection was found closed on the first write): NotSent;
//   - any failure after the first request byte was written: TimedOut (a deadline passed) or Reset
//     (end of stream, reset, or a response that is not valid HTTP or is cut short). A truncated
//     response is never returned as a short one.
// Deadlines: sending is bounded by `send` (from the start of writing), the first response byte by
// `firstByte` (from the end of writing), everything by `total` (the whole call's deadline).
// Over TLS a failed write counts as sent (what reached the peer is not known precisely).
//
// Thread-safety: free functions; the socket is used by one thread at a time.

#include "gateway/core/IdempotencyMachine.h"
#include "gateway/http/UpstreamSocket.h"

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace idem::http {

/// The request line and header block for `request` (ending with the empty line): the target is
/// basePath + path [+ "?" + query]; Host is `hostHeader`; Content-Length is set from the body (for any
/// non-empty body, and for POST, PUT and PATCH). The request's headers are sent as they are, in order.
std::string requestHead(const core::HttpRequest& request, std::string_view basePath, std::string_view hostHeader);

struct ExchangeDeadlines {
    Deadline total;
    std::optional<std::chrono::milliseconds> send;
    std::optional<std::chrono::milliseconds> firstByte;
};

struct ExchangeResult {
    core::UpstreamResult result;
    bool sent = false;      ///< at least one request byte was handed to the network
    bool reusable = false;  ///< the connection may carry another request
};

/// `who` names the endpoint in details ("upstream \"payments\" at 10.0.0.1:9090").
ExchangeResult exchange(UpstreamSocket& socket, std::string_view head, std::string_view body, bool headRequest,
                        const ExchangeDeadlines& deadlines, std::string_view who,
                        const std::atomic<bool>* abort = nullptr);

}  // namespace idem::http
