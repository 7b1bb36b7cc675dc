#include "Report.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>

namespace idem::load {

namespace {

struct Quantiles {
    std::uint64_t p50, p90, p99, p999, max;
};

Quantiles quantiles(const Histogram& h)
{
    const auto v = h.percentiles({50, 90, 99, 99.9});
    return {v[0], v[1], v[2], v[3], h.max()};
}

std::string ms(std::uint64_t micros)
{
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.3f", static_cast<double>(micros) / 1000.0);
    return buffer;
}

std::string fixed(double value, int decimals)
{
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
    return buffer;
}

struct Fairness {
    std::uint64_t min = 0, median = 0, max = 0, never = 0;
};

Fairness fairness(const std::vector<std::uint64_t>& perConnection)
{
    Fairness f;
    if (perConnection.empty()) return f;
    std::vector<std::uint64_t> sorted = perConnection;
    std::sort(sorted.begin(), sorted.end());
    f.min = sorted.front();
    f.max = sorted.back();
    f.median = sorted[sorted.size() / 2];
    f.never = static_cast<std::uint64_t>(std::count(sorted.begin(), sorted.end(), std::uint64_t{0}));
    return f;
}

std::string modeText(const Options& o)
{
    std::string text = o.openLoop() ? "open loop at " + fixed(o.rate, 0) + " req/s" : std::string("closed loop");
    text += ", " + std::to_string(o.connections) + " connections";
    if (o.miss) text += ", miss path (all keys new)";
    else if (o.replay) text += ", replay path (" + std::to_string(o.keys) + " keys seen)";
    return text;
}

void appendJsonString(std::string& out, std::string_view s)
{
    out += '"';
    for (const char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (static_cast<unsigned char>(c) < 0x20) {
                char buffer[8];
                std::snprintf(buffer, sizeof buffer, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
                out += buffer;
            } else {
                out += c;
            }
        }
    }
    out += '"';
}

std::string xmlEscape(std::string_view s)
{
    std::string out;
    for (const char c : s) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        default: out += c;
        }
    }
    return out;
}

/// 1, 2, 2.5 or 5 times a power of ten, at least `value`.
double niceCeil(double value)
{
    if (value <= 0) return 1;
    const double power = std::pow(10.0, std::floor(std::log10(value)));
    for (const double m : {1.0, 2.0, 2.5, 5.0, 10.0})
        if (m * power >= value * (1 - 1e-12)) return m * power;
    return 10 * power;
}

bool writeFile(const std::string& path, const std::string& content, std::string& error)
{
    std::ofstream out(path, std::ios::trunc | std::ios::binary);
    out << content;
    out.flush();
    if (!out) {
        error = "cannot write " + path + ": " + std::strerror(errno);
        return false;
    }
    return true;
}

}  // namespace

void printSummary(std::FILE* out, const RunResult& r)
{
    const Options& o = *r.options;
    std::string targets;
    for (const auto& t : o.targets) targets += (targets.empty() ? "" : ", ") + t.text();
    std::fprintf(out, "idemgate-loadtest%s%s: %s, %d threads, %s -> %s\n", r.options->label.empty() ? "" : " ",
                 o.label.c_str(), modeText(o).c_str(), r.threads, o.path.c_str(), targets.c_str());
    if (r.interrupted) std::fprintf(out, "  (interrupted)\n");
    const Quantiles q = quantiles(r.histogram);
    std::fprintf(out, "  requests      %llu answered in %.2f s: %.1f req/s; %llu request errors\n",
                 static_cast<unsigned long long>(r.answered), r.seconds, r.throughput(),
                 static_cast<unsigned long long>(r.errors.requestErrors()));
    std::fprintf(out, "  latency (ms)  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %.3f%s\n", ms(q.p50).c_str(),
                 ms(q.p90).c_str(), ms(q.p99).c_str(), ms(q.p999).c_str(), ms(q.max).c_str(),
                 r.histogram.mean() / 1000.0, o.openLoop() ? "  (from the intended send time)" : "");
    std::string statuses;
    for (const auto& [status, n] : r.statuses) statuses += "  " + std::to_string(status) + ": " + std::to_string(n);
    std::fprintf(out, "  status       %s\n", statuses.empty() ? " none" : statuses.c_str());
    if (!r.warmStatuses.empty()) {
        std::string warm;
        for (const auto& [status, n] : r.warmStatuses) warm += "  " + std::to_string(status) + ": " + std::to_string(n);
        std::fprintf(out, "  warm-up       %llu keys sent once (not measured):%s\n",
                     static_cast<unsigned long long>(r.warmKeys), warm.c_str());
    }
    std::fprintf(out, "  keys          %llu new, %llu duplicate requests (%llu with the other payload), %llu bursts (+%llu copies)\n",
                 static_cast<unsigned long long>(r.newKeys), static_cast<unsigned long long>(r.duplicates),
                 static_cast<unsigned long long>(r.conflicts), static_cast<unsigned long long>(r.bursts),
                 static_cast<unsigned long long>(r.burstCopies));
    const Fairness f = fairness(r.perConnection);
    std::fprintf(out, "  connections   answers per connection: min %llu  median %llu  max %llu  (%llu of %zu never answered)\n",
                 static_cast<unsigned long long>(f.min), static_cast<unsigned long long>(f.median),
                 static_cast<unsigned long long>(f.max), static_cast<unsigned long long>(f.never), r.perConnection.size());
    const ErrorCounts& e = r.errors;
    std::fprintf(out, "  errors        closed %llu  timeout %llu  protocol %llu  unanswered %llu  unsent %llu  | connect failures %llu, reconnects %llu\n",
                 static_cast<unsigned long long>(e.closed), static_cast<unsigned long long>(e.timeout),
                 static_cast<unsigned long long>(e.protocol), static_cast<unsigned long long>(e.unanswered),
                 static_cast<unsigned long long>(e.unsent), static_cast<unsigned long long>(e.connect),
                 static_cast<unsigned long long>(e.reconnects));
    if (!r.verify.ran) return;
    const auto& v = r.verify;
    if (v.ok) {
        std::fprintf(out, "  verify        OK: %llu keys, %llu upstream executions, every key at most once, replays identical\n",
                     static_cast<unsigned long long>(v.keysChecked), static_cast<unsigned long long>(v.executions));
        return;
    }
    std::fprintf(out, "  verify        FAILED: %llu violations (%llu keys, %llu upstream executions of them)\n",
                 static_cast<unsigned long long>(v.violations.total()), static_cast<unsigned long long>(v.keysChecked),
                 static_cast<unsigned long long>(v.executions));
    for (int k = 0; k < static_cast<int>(Violation::Count_); ++k) {
        const auto n = v.violations.count(static_cast<Violation>(k));
        if (n != 0)
            std::fprintf(out, "    %-26s %llu\n", violationName(static_cast<Violation>(k)), static_cast<unsigned long long>(n));
    }
    const auto listed = v.violations.listed();
    std::fprintf(out, "  first %zu (each kind in turn):\n", listed.size());
    for (const auto& text : listed) std::fprintf(out, "    %s\n", text.c_str());
    if (!v.hint.empty()) std::fprintf(out, "  hint: %s\n", v.hint.c_str());
}

bool writeJson(const std::string& path, const RunResult& r, std::string& error)
{
    const Options& o = *r.options;
    std::string j = "{\n";
    j += "  \"tool\": \"idemgate-loadtest\",\n  \"label\": ";
    appendJsonString(j, o.label);
    j += ",\n  \"mode\": \"" + std::string(o.openLoop() ? "open" : "closed") + "\",\n";
    j += "  \"path_kind\": \"" + std::string(o.miss ? "miss" : o.replay ? "replay" : "mixed") + "\",\n";
    j += "  \"targets\": [";
    for (std::size_t i = 0; i < o.targets.size(); ++i) {
        if (i) j += ", ";
        appendJsonString(j, o.targets[i].text());
    }
    j += "],\n  \"path\": ";
    appendJsonString(j, o.path);
    j += ",\n  \"connections\": " + std::to_string(o.connections) + ",\n  \"threads\": " + std::to_string(r.threads);
    j += ",\n  \"rate\": " + fixed(o.rate, 3) + ",\n  \"interrupted\": " + (r.interrupted ? "true" : "false");
    j += ",\n  \"settings\": {\"requests\": " + std::to_string(o.requests) + ", \"duration_s\": " + fixed(o.duration, 3) +
         ", \"keys\": " + std::to_string(o.keys) + ", \"duplicate_ratio\": " + fixed(o.duplicateRatio, 4) +
         ", \"burst\": " + std::to_string(o.burst) + ", \"burst_ratio\": " + fixed(o.burstRatio, 4) +
         ", \"conflict_ratio\": " + fixed(o.conflictRatio, 4) + ", \"tenants\": " + std::to_string(o.tenants) +
         ", \"payload_bytes\": " + std::to_string(o.payloadBytes) + ", \"timeout_s\": " + fixed(o.timeout, 3) +
         ", \"key_prefix\": ";
    appendJsonString(j, r.keyPrefix);
    j += "},\n  \"seconds\": " + fixed(r.seconds, 4) + ",\n  \"answered\": " + std::to_string(r.answered) +
         ",\n  \"throughput_rps\": " + fixed(r.throughput(), 1) + ",\n";
    const Quantiles q = quantiles(r.histogram);
    j += "  \"latency_us\": {\"min\": " + std::to_string(r.histogram.min()) + ", \"mean\": " + fixed(r.histogram.mean(), 1) +
         ", \"p50\": " + std::to_string(q.p50) + ", \"p90\": " + std::to_string(q.p90) + ", \"p99\": " +
         std::to_string(q.p99) + ", \"p99_9\": " + std::to_string(q.p999) + ", \"max\": " + std::to_string(q.max) +
         "},\n";
    const std::vector<double> ps = {0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100};
    const auto values = r.histogram.percentiles(ps);
    j += "  \"percentiles_us\": [";
    for (std::size_t i = 0; i < ps.size(); ++i) {
        if (i) j += ", ";
        j += "[" + fixed(ps[i], 3) + ", " + std::to_string(i + 1 == ps.size() ? r.histogram.max() : values[i]) + "]";
    }
    j += "],\n  \"status\": {";
    bool first = true;
    for (const auto& [status, n] : r.statuses) {
        j += std::string(first ? "" : ", ") + "\"" + std::to_string(status) + "\": " + std::to_string(n);
        first = false;
    }
    j += "},\n  \"warmup\": {\"keys\": " + std::to_string(r.warmKeys) + ", \"status\": {";
    first = true;
    for (const auto& [status, n] : r.warmStatuses) {
        j += std::string(first ? "" : ", ") + "\"" + std::to_string(status) + "\": " + std::to_string(n);
        first = false;
    }
    const ErrorCounts& e = r.errors;
    j += "}},\n  \"errors\": {\"request_errors\": " + std::to_string(e.requestErrors()) +
         ", \"closed\": " + std::to_string(e.closed) + ", \"timeout\": " + std::to_string(e.timeout) +
         ", \"protocol\": " + std::to_string(e.protocol) + ", \"unanswered\": " + std::to_string(e.unanswered) +
         ", \"unsent\": " + std::to_string(e.unsent) + ", \"connect_failures\": " + std::to_string(e.connect) +
         ", \"reconnects\": " + std::to_string(e.reconnects) + "},\n";
    j += "  \"keys\": {\"new\": " + std::to_string(r.newKeys) + ", \"duplicate_requests\": " + std::to_string(r.duplicates) +
         ", \"conflicting_requests\": " + std::to_string(r.conflicts) + ", \"bursts\": " + std::to_string(r.bursts) +
         ", \"burst_copies\": " + std::to_string(r.burstCopies) + "},\n";
    const Fairness f = fairness(r.perConnection);
    j += "  \"per_connection\": {\"connections\": " + std::to_string(r.perConnection.size()) + ", \"min\": " +
         std::to_string(f.min) + ", \"median\": " + std::to_string(f.median) + ", \"max\": " + std::to_string(f.max) +
         ", \"never_answered\": " + std::to_string(f.never) + "},\n";
    j += "  \"verify\": ";
    if (!r.verify.ran) {
        j += "null\n";
    } else {
        const auto& v = r.verify;
        j += "{\"ok\": " + std::string(v.ok ? "true" : "false") + ", \"keys\": " + std::to_string(v.keysChecked) +
             ", \"keys_with_2xx\": " + std::to_string(v.keysWithAnswer) + ", \"executions\": " +
             std::to_string(v.executions) + ", \"upstream_total\": " + std::to_string(v.upstreamTotal) +
             ", \"upstream_untracked\": " + std::to_string(v.untracked) + ", \"foreign_keys\": " +
             std::to_string(v.foreignKeys) + ", \"violations\": " + std::to_string(v.violations.total()) +
             ", \"by_kind\": {";
        first = true;
        for (int k = 0; k < static_cast<int>(Violation::Count_); ++k) {
            j += std::string(first ? "" : ", ") + "\"" + violationName(static_cast<Violation>(k)) +
                 "\": " + std::to_string(v.violations.count(static_cast<Violation>(k)));
            first = false;
        }
        j += "}, \"first\": [";
        const auto listed = v.violations.listed();
        for (std::size_t i = 0; i < listed.size(); ++i) {
            if (i) j += ", ";
            appendJsonString(j, listed[i]);
        }
        j += "]}\n";
    }
    j += "}\n";
    return writeFile(path, j, error);
}

bool writePlot(const std::string& path, const RunResult& r, std::string& error)
{
    // x: percentile on a log scale of 1/(1-p) (0%, 90%, 99%, 99.9%, ...), y: latency in ms.
    constexpr double kWidth = 900, kHeight = 520, kLeft = 80, kRight = 30, kTop = 60, kBottom = 60;
    const double plotW = kWidth - kLeft - kRight;
    const double plotH = kHeight - kTop - kBottom;
    const std::uint64_t count = r.histogram.count();
    const int decades = std::clamp(static_cast<int>(std::ceil(std::log10(std::max<double>(10, static_cast<double>(count))))), 2, 6);

    std::vector<double> xs;
    std::vector<double> ps;
    for (double x = 0; x <= decades + 1e-9; x += 0.01) {
        xs.push_back(x);
        ps.push_back(100.0 * (1.0 - std::pow(10.0, -x)));
    }
    const auto values = r.histogram.percentiles(ps);
    double top = 0;
    for (const auto v : values) top = std::max(top, static_cast<double>(v) / 1000.0);
    top = niceCeil(top * 1.05);

    const auto px = [&](double x) { return kLeft + x / decades * plotW; };
    const auto py = [&](double msValue) { return kTop + plotH - msValue / top * plotH; };

    std::string s;
    s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fixed(kWidth, 0) + "\" height=\"" + fixed(kHeight, 0) +
         "\" viewBox=\"0 0 " + fixed(kWidth, 0) + " " + fixed(kHeight, 0) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
    s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    const Quantiles q = quantiles(r.histogram);
    std::string title = r.options->label.empty() ? std::string("idemgate-loadtest") : r.options->label;
    title += ": " + modeText(*r.options) + ", " + std::to_string(r.answered) + " requests, " +
             fixed(r.throughput(), 0) + " req/s";
    s += "<text x=\"" + fixed(kWidth / 2, 0) + "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">" + xmlEscape(title) +
         "</text>\n";
    s += "<text x=\"" + fixed(kWidth / 2, 0) + "\" y=\"44\" text-anchor=\"middle\" fill=\"#444\">p50 " + ms(q.p50) +
         " ms, p90 " + ms(q.p90) + " ms, p99 " + ms(q.p99) + " ms, p99.9 " + ms(q.p999) + " ms, max " + ms(q.max) +
         " ms" + (r.options->openLoop() ? " (from intended send time)" : "") + "</text>\n";
    // Grid and axes.
    for (int i = 0; i <= 5; ++i) {
        const double value = top * i / 5;
        const double y = py(value);
        s += "<line x1=\"" + fixed(kLeft, 1) + "\" y1=\"" + fixed(y, 1) + "\" x2=\"" + fixed(kLeft + plotW, 1) + "\" y2=\"" +
             fixed(y, 1) + "\" stroke=\"#ddd\"/>\n";
        s += "<text x=\"" + fixed(kLeft - 8, 1) + "\" y=\"" + fixed(y + 4, 1) + "\" text-anchor=\"end\">" +
             fixed(value, value < 1 ? 2 : (value < 10 ? 1 : 0)) + "</text>\n";
    }
    static const char* kLabels[] = {"0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"};
    for (int d = 0; d <= decades; ++d) {
        const double x = px(d);
        s += "<line x1=\"" + fixed(x, 1) + "\" y1=\"" + fixed(kTop, 1) + "\" x2=\"" + fixed(x, 1) + "\" y2=\"" +
             fixed(kTop + plotH, 1) + "\" stroke=\"#ddd\"/>\n";
        s += "<text x=\"" + fixed(x, 1) + "\" y=\"" + fixed(kTop + plotH + 18, 1) + "\" text-anchor=\"middle\">" +
             kLabels[d] + "</text>\n";
    }
    s += "<rect x=\"" + fixed(kLeft, 1) + "\" y=\"" + fixed(kTop, 1) + "\" width=\"" + fixed(plotW, 1) + "\" height=\"" +
         fixed(plotH, 1) + "\" fill=\"none\" stroke=\"#333\"/>\n";
    s += "<text x=\"" + fixed(kLeft + plotW / 2, 1) + "\" y=\"" + fixed(kHeight - 16, 1) +
         "\" text-anchor=\"middle\">percentile</text>\n";
    s += "<text transform=\"translate(22 " + fixed(kTop + plotH / 2, 1) +
         ") rotate(-90)\" text-anchor=\"middle\">latency (ms)</text>\n";
    // The curve.
    if (count > 0) {
        s += "<polyline fill=\"none\" stroke=\"#1f6feb\" stroke-width=\"2\" points=\"";
        for (std::size_t i = 0; i < xs.size(); ++i) {
            s += fixed(px(xs[i]), 1) + "," + fixed(py(static_cast<double>(values[i]) / 1000.0), 1);
            s += i + 1 < xs.size() ? " " : "";
        }
        s += "\"/>\n";
    } else {
        s += "<text x=\"" + fixed(kLeft + plotW / 2, 1) + "\" y=\"" + fixed(kTop + plotH / 2, 1) +
             "\" text-anchor=\"middle\">no answers</text>\n";
    }
    s += "</svg>\n";
    return writeFile(path, s, error);
}

}  // namespace idem::load
