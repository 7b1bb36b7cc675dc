// idemgate-mock-upstream: the scripted upstream of the demo, the end-to-end tests and the load
// tests. See loadtest/mock/README.md for flags, control headers and endpoints.
#include "MockHandler.h"
#include "MockState.h"
#include "Options.h"
#include "StopSignal.h"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/ThreadPool.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <pthread.h>
#include <string>
#include <unistd.h>

namespace idem::mock {

namespace {

// Accept backlog: load tests open hundreds of connections at once.
constexpr int kBacklog = 1024;
// Stack per connection thread; handlers need a 16 KiB read buffer and little else.
constexpr int kThreadStackSize = 512 * 1024;

bool writePortFile(const std::string& path, unsigned port)
{
    const std::string temp = path + ".tmp." + std::to_string(::getpid());
    {
        std::ofstream out(temp, std::ios::trunc);
        out << port << '\n';
        if (!out.flush()) return false;
    }
    if (std::rename(temp.c_str(), path.c_str()) != 0) {
        std::remove(temp.c_str());
        return false;
    }
    return true;
}

int run(const Options& options, sigset_t& stopSignals)
{
    StopSignal stop;
    MockState state(options, stop);

    // SO_REUSEADDR but not SO_REUSEPORT (Poco's convenience constructor sets both): a second
    // instance on a taken port must fail, not silently share the port.
    Poco::Net::ServerSocket socket;
    socket.bind(Poco::Net::SocketAddress(options.host, static_cast<Poco::UInt16>(options.port)), true, false);
    socket.listen(kBacklog);

    auto* params = new Poco::Net::HTTPServerParams;
    params->setMaxThreads(options.threads);
    params->setMaxQueued(std::max(1024, options.threads * 4));
    params->setKeepAlive(true);
    params->setMaxKeepAliveRequests(0);  // unlimited
    params->setKeepAliveTimeout(Poco::Timespan(options.keepAliveTimeout.count(), 0));
    params->setThreadIdleTime(Poco::Timespan(60, 0));

    // Our own pool: the default one holds only 16 threads, and the dispatcher refuses a
    // connection when the pool cannot start a thread, so the pool must cover maxThreads.
    Poco::ThreadPool pool("mock", std::min(4, options.threads), options.threads + 4, 60, kThreadStackSize);
    Poco::Net::HTTPServer server(new MockHandlerFactory(state), pool, socket, params);
    server.start();

    const std::string address = socket.address().toString();
    std::printf("idemgate-mock-upstream listening on %s\n", address.c_str());
    std::fflush(stdout);
    if (!options.portFile.empty() && !writePortFile(options.portFile, socket.address().port())) {
        std::fprintf(stderr, "idemgate-mock-upstream: cannot write port file %s\n", options.portFile.c_str());
        server.stopAll(true);
        return 1;
    }

    int signal = 0;
    while (sigwait(&stopSignals, &signal) != 0) {
    }

    // Wake delayed and hung handlers first, then shut every connection down and wait for
    // the pool to drain: nothing can pin the process.
    stop.requestStop();
    server.stopAll(true);
    pool.joinAll();
    if (!options.quiet) std::fprintf(stderr, "idemgate-mock-upstream: stopped on signal %d\n", signal);
    return 0;
}

}  // namespace

}  // namespace idem::mock

int main(int argc, char** argv)
{
    auto options = idem::mock::parseOptions(argc, argv);
    if (!options) {
        std::fprintf(stderr, "idemgate-mock-upstream: %s\n%s", options.error().c_str(), idem::mock::usageText());
        return 2;
    }
    if (options->help) {
        std::fputs(idem::mock::usageText(), stdout);
        return 0;
    }

    // Block the stop signals in every thread (the pool inherits this mask) and take them
    // synchronously in main; SIGPIPE is ignored so a vanished peer is just a send error.
    sigset_t stopSignals;
    sigemptyset(&stopSignals);
    sigaddset(&stopSignals, SIGINT);
    sigaddset(&stopSignals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    try {
        return idem::mock::run(*options, stopSignals);
    } catch (const Poco::Exception& e) {
        std::fprintf(stderr, "idemgate-mock-upstream: %s\n", e.displayText().c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "idemgate-mock-upstream: %s\n", e.what());
    }
    return 1;
}
