#include "Options.h"

#include <charconv>
#include <string_view>

namespace idem::mock {

namespace {

template <typename T>
bool parseNumber(std::string_view text, T& out, T min, T max)
{
    T value{};
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc{} || ptr != end || value < min || value > max) return false;
    out = value;
    return true;
}

}  // namespace

const char* usageText()
{
    return "usage: idemgate-mock-upstream --port N [--host H] [--threads N] [--port-file PATH]\n"
           "                              [--keep-alive-timeout SECONDS] [--max-keys N] [--quiet] [--verbose]\n"
           "  --port N                 listen port (0 picks a free one; it is printed)\n"
           "  --host H                 listen address (default 127.0.0.1)\n"
           "  --threads N              max connections served at once (default 256)\n"
           "  --port-file PATH         write the bound port there once listening (atomic rename)\n"
           "  --keep-alive-timeout S   idle keep-alive timeout in seconds (default 75)\n"
           "  --max-keys N             distinct keys counted individually (default 1000000)\n"
           "  --quiet                  no notes on stderr\n"
           "  --verbose                one stderr line per execution\n";
}

std::expected<Options, std::string> parseOptions(int argc, char** argv)
{
    Options options;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        std::string_view value;
        bool hasInlineValue = false;
        if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
            value = arg.substr(eq + 1);
            arg = arg.substr(0, eq);
            hasInlineValue = true;
        }
        const auto takeValue = [&]() -> std::expected<std::string_view, std::string> {
            if (hasInlineValue) return value;
            if (i + 1 >= argc) return std::unexpected(std::string(arg) + " needs a value");
            return std::string_view(argv[++i]);
        };
        const auto flagOnly = [&]() -> std::expected<void, std::string> {
            if (hasInlineValue) return std::unexpected(std::string(arg) + " takes no value");
            return {};
        };

        if (arg == "--help" || arg == "-h") {
            options.help = true;
        } else if (arg == "--quiet") {
            if (auto ok = flagOnly(); !ok) return std::unexpected(ok.error());
            options.quiet = true;
        } else if (arg == "--verbose") {
            if (auto ok = flagOnly(); !ok) return std::unexpected(ok.error());
            options.verbose = true;
        } else if (arg == "--port" || arg == "--host" || arg == "--threads" || arg == "--port-file" ||
                   arg == "--keep-alive-timeout" || arg == "--max-keys") {
            auto v = takeValue();
            if (!v) return std::unexpected(v.error());
            if (arg == "--port") {
                if (!parseNumber(*v, options.port, 0, 65535))
                    return std::unexpected("--port: expected 0..65535, got '" + std::string(*v) + "'");
            } else if (arg == "--host") {
                if (v->empty()) return std::unexpected("--host: empty");
                options.host = *v;
            } else if (arg == "--threads") {
                if (!parseNumber(*v, options.threads, 1, 16384))
                    return std::unexpected("--threads: expected 1..16384, got '" + std::string(*v) + "'");
            } else if (arg == "--port-file") {
                if (v->empty()) return std::unexpected("--port-file: empty");
                options.portFile = *v;
            } else if (arg == "--keep-alive-timeout") {
                long seconds = 0;
                if (!parseNumber(*v, seconds, 1L, 86400L))
                    return std::unexpected("--keep-alive-timeout: expected 1..86400 seconds, got '" +
                                           std::string(*v) + "'");
                options.keepAliveTimeout = std::chrono::seconds(seconds);
            } else {
                if (!parseNumber(*v, options.maxKeys, std::size_t{0}, std::size_t{1} << 40))
                    return std::unexpected("--max-keys: expected a count, got '" + std::string(*v) + "'");
            }
        } else {
            return std::unexpected("unknown argument '" + std::string(argv[i]) + "'");
        }
    }
    if (!options.help && options.port < 0) return std::unexpected(std::string("--port is required"));
    return options;
}

}  // namespace idem::mock
