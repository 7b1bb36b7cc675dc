#include "gateway/core/Problem.h"

#include "gateway/core/Json.h"

namespace idem::core {

std::string_view problemSlug(ProblemType type) {
    switch (type) {
        case ProblemType::KeyMissing: return "key-missing";
        case ProblemType::KeyInvalid: return "key-invalid";
        case ProblemType::TenantMissing: return "tenant-missing";
        case ProblemType::InvalidBody: return "invalid-body";
        case ProblemType::VersionInvalid: return "version-invalid";
        case ProblemType::BodyTooLarge: return "body-too-large";
        case ProblemType::FingerprintMismatch: return "fingerprint-mismatch";
        case ProblemType::InFlight: return "in-flight";
        case ProblemType::StoreUnavailable: return "store-unavailable";
        case ProblemType::RecordUnreadable: return "record-unreadable";
        case ProblemType::UpstreamUnreachable: return "upstream-unreachable";
        case ProblemType::OutcomeUnknown: return "outcome-unknown";
        case ProblemType::ResponseNotReplayable: return "response-not-replayable";
        case ProblemType::RouteNotFound: return "route-not-found";
        case ProblemType::RouteDisabled: return "route-disabled";
        case ProblemType::RequestInvalid: return "request-invalid";
        case ProblemType::RequestHeadTooLarge: return "request-head-too-large";
        case ProblemType::RequestTimeout: return "request-timeout";
        case ProblemType::Overloaded: return "overloaded";
        case ProblemType::Internal: return "internal";
    }
    return "internal";
}

std::string_view problemTitle(ProblemType type) {
    switch (type) {
        case ProblemType::KeyMissing: return "Idempotency key missing";
        case ProblemType::KeyInvalid: return "Idempotency key invalid";
        case ProblemType::TenantMissing: return "Tenant missing";
        case ProblemType::InvalidBody: return "Request body invalid";
        case ProblemType::VersionInvalid: return "API version invalid";
        case ProblemType::BodyTooLarge: return "Request body too large";
        case ProblemType::FingerprintMismatch: return "Idempotency key reused with a different request";
        case ProblemType::InFlight: return "Request with this idempotency key still in progress";
        case ProblemType::StoreUnavailable: return "Idempotency store unavailable";
        case ProblemType::RecordUnreadable: return "Idempotency record unreadable";
        case ProblemType::UpstreamUnreachable: return "Upstream unreachable";
        case ProblemType::OutcomeUnknown: return "Outcome unknown";
        case ProblemType::ResponseNotReplayable: return "Response not replayable";
        case ProblemType::RouteNotFound: return "Route not found";
        case ProblemType::RouteDisabled: return "Route disabled";
        case ProblemType::RequestInvalid: return "Request is not valid HTTP/1.1";
        case ProblemType::RequestHeadTooLarge: return "Request line or header fields too large";
        case ProblemType::RequestTimeout: return "Request not received in time";
        case ProblemType::Overloaded: return "Gateway at its connection limit";
        case ProblemType::Internal: return "Internal error";
    }
    return "Internal error";
}

HttpResponse makeProblem(int status, ProblemType type, std::string detail, const ProblemExtras& extras) {
    std::string body;
    body.reserve(160 + detail.size());
    body += "{\"type\":";
    appendJsonString(body, std::string("urn:idemgate:problem:").append(problemSlug(type)));
    body += ",\"title\":";
    appendJsonString(body, problemTitle(type));
    body += ",\"status\":";
    body += std::to_string(status);
    body += ",\"detail\":";
    appendJsonString(body, detail);
    if (extras.retryable) body += *extras.retryable ? ",\"retryable\":true" : ",\"retryable\":false";
    if (extras.idempotencyKey) {
        body += ",\"idempotency_key\":";
        appendJsonString(body, *extras.idempotencyKey);
    }
    if (extras.operationState) {
        body += ",\"operation_state\":";
        appendJsonString(body, *extras.operationState);
    }
    for (const auto& [name, value] : extras.strings) {
        body.push_back(',');
        appendJsonString(body, name);
        body.push_back(':');
        appendJsonString(body, value);
    }
    for (const auto& [name, value] : extras.numbers) {
        body.push_back(',');
        appendJsonString(body, name);
        body.push_back(':');
        body += std::to_string(value);
    }
    body.push_back('}');

    HttpResponse r;
    r.status = status;
    r.headers = {{"Content-Type", "application/problem+json"}, {"Cache-Control", "no-store"}};
    r.body = std::move(body);
    return r;
}

HttpResponse routeDisabledProblem(std::string_view method, std::string_view path) {
    return makeProblem(503, ProblemType::RouteDisabled,
                       "the route for " + std::string(method) + " " + std::string(path) +
                           " is switched off by the gateway's configuration; nothing was forwarded");
}

}  // namespace idem::core
