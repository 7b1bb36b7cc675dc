#include "gateway/http/Metrics.h"

namespace idem::http {
namespace {

/// One metric in the Prometheus text format: HELP, TYPE (`counter` or `gauge`) and the value.
void metric(std::string& out, const char* type, const char* name, const char* help, std::uint64_t value) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
    out += name;
    out += ' ';
    out += std::to_string(value);
    out += '\n';
}

void counter(std::string& out, const char* name, const char* help, std::uint64_t value) {
    metric(out, "counter", name, help, value);
}

void gauge(std::string& out, const char* name, const char* help, std::uint64_t value) {
    metric(out, "gauge", name, help, value);
}

}  // namespace

std::string Metrics::render(const storage::Store::Stats& store) const {
    std::string out;
    out.reserve(2048);
    counter(out, "idemgate_requests_total", "Requests received on configured routes.", requests.load(std::memory_order_relaxed));
    counter(out, "idemgate_pass_through_total", "Requests forwarded without idempotency (method, mode or no key).", passThrough.load(std::memory_order_relaxed));
    counter(out, "idemgate_forwarded_total", "First requests forwarded under an idempotency record.", forwarded.load(std::memory_order_relaxed));
    counter(out, "idemgate_replayed_total", "Responses replayed from a record.", replayed.load(std::memory_order_relaxed));
    counter(out, "idemgate_released_total", "Records released after forwarding (release_on, not sent, on_unknown: release).", released.load(std::memory_order_relaxed));
    counter(out, "idemgate_rejected_total", "Requests answered by the gateway itself.", rejected.load(std::memory_order_relaxed));
    counter(out, "idemgate_in_flight_conflicts_total", "409 answers: same key still in flight.", inFlightConflicts.load(std::memory_order_relaxed));
    counter(out, "idemgate_fingerprint_mismatches_total", "422 answers: same key, different request.", mismatches.load(std::memory_order_relaxed));
    counter(out, "idemgate_unprotected_forwards_total", "Requests forwarded without protection because the store failed (store_failure: open).", unprotected.load(std::memory_order_relaxed));
    counter(out, "idemgate_store_errors_total", "Store calls that failed.", storeErrors.load(std::memory_order_relaxed));
    counter(out, "idemgate_complete_failures_total", "Upstream answers that could not be recorded (fenced or store error).", completeFailures.load(std::memory_order_relaxed));
    counter(out, "idemgate_upstream_failures_total", "Upstream calls that were not sent, timed out or were reset.", upstreamFailures.load(std::memory_order_relaxed));
    counter(out, "idemgate_takeovers_total", "Abandoned records taken over (on_unknown: release).", takeovers.load(std::memory_order_relaxed));
    counter(out, "idemgate_abandoned_settled_total", "Abandoned records settled as unknown (on_unknown: hold).", abandonedSettled.load(std::memory_order_relaxed));
    counter(out, "idemgate_store_reaped_records_total", "Expired records removed by the store's background cleaner.", store.reapedRecords);
    counter(out, "idemgate_store_reap_passes_total", "Background cleaner passes run by this instance.", store.reapPasses);
    counter(out, "idemgate_store_reap_failures_total", "Background cleaner passes that failed.", store.reapFailures);
    if (store.records)
        gauge(out, "idemgate_store_records", "Records held by the embedded memory store (in flight and completed).", *store.records);
    return out;
}

}  // namespace idem::http
