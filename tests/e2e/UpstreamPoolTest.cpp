// UpstreamPool (gateway/http/UpstreamPool.h) over real loopback connections: an idle connection goes
// back to a request on the event loop that last used it when it can (a socket stays registered in the
// epoll set of every loop that waited on it, so moving between loops costs wake-ups), else to the most
// recently returned one; a plain thread gets the most recent. A listener of the test's own accepts and
// holds the connections; nothing is sent on them.
#define BOOST_TEST_MODULE e2e upstream pool
#include <boost/test/unit_test.hpp>

#include "gateway/http/UpstreamPool.h"
#include "gateway/io/Fiber.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <thread>
#include <vector>

using idem::http::Address;
using idem::http::UpstreamPool;
using idem::http::UpstreamSocket;
using namespace std::chrono_literals;

namespace {

/// A loopback listener that accepts every connection and keeps it open until destroyed.
struct Listener {
    int fd = -1;
    Address address;
    std::vector<int> accepted;
    std::atomic<bool> stop{false};
    std::thread acceptor;

    Listener() {
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in in{};
        in.sin_family = AF_INET;
        in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        BOOST_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&in), sizeof in) == 0);
        BOOST_REQUIRE(::listen(fd, 16) == 0);
        socklen_t len = sizeof in;
        BOOST_REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&in), &len) == 0);
        std::memcpy(&address.storage, &in, sizeof in);
        address.length = sizeof in;
        acceptor = std::thread([this] {
            while (!stop.load()) {
                const int c = ::accept(fd, nullptr, nullptr);
                if (c >= 0) accepted.push_back(c);
            }
        });
    }
    ~Listener() {
        stop = true;
        ::shutdown(fd, SHUT_RDWR);  // wakes accept()
        acceptor.join();
        ::close(fd);
        for (int c : accepted) ::close(c);
    }
};

/// Runs a loop on its own thread until destroyed.
struct Runner {
    idem::io::Loop loop;
    std::thread thread{[this] { loop.run(); }};
    ~Runner() {
        loop.stop();
        thread.join();
    }
    /// Runs `fn` on a fiber of this loop and waits for it.
    void run(const std::function<void()>& fn) {
        std::promise<void> done;
        loop.spawn([&] {
            fn();
            done.set_value();
        });
        done.get_future().wait();
    }
};

/// acquire() on the calling thread or fiber: the socket reused, or a new connection in the slot given.
std::unique_ptr<UpstreamSocket> take(UpstreamPool& pool, const Listener& listener, bool& reused) {
    std::unique_ptr<UpstreamSocket> socket;
    const auto got = pool.acquire(std::chrono::steady_clock::now() + 2s, 0, socket);
    reused = got == UpstreamPool::Acquired::Reused;
    if (got == UpstreamPool::Acquired::Connect) {
        auto c = UpstreamSocket::connect(listener.address, std::chrono::steady_clock::now() + 2s, nullptr, "127.0.0.1", true);
        if (!c.socket) pool.cancel();
        socket = std::move(c.socket);
    }
    return socket;
}

}  // namespace

BOOST_AUTO_TEST_CASE(an_idle_connection_goes_back_to_the_loop_that_used_it_last) {
    Listener listener;
    UpstreamPool pool(8, 8, 60s);
    Runner one, two;
    const UpstreamSocket* a = nullptr;
    const UpstreamSocket* b = nullptr;
    bool reused = true;
    int newOnes = 0;
    // Loop one opens A and loop two opens B; A is returned first, B last (B is the most recent).
    std::unique_ptr<UpstreamSocket> onOne, onTwo;
    one.run([&] {
        onOne = take(pool, listener, reused);
        newOnes += reused ? 0 : 1;
    });
    two.run([&] {
        onTwo = take(pool, listener, reused);
        newOnes += reused ? 0 : 1;
    });
    BOOST_REQUIRE(onOne && onTwo);
    a = onOne.get();
    b = onTwo.get();
    one.run([&] { pool.release(std::move(onOne), true, 0); });
    two.run([&] { pool.release(std::move(onTwo), true, 0); });
    BOOST_TEST(newOnes == 2);
    BOOST_TEST(pool.idle() == 2u);

    // Loop one gets its own A back, not the more recent B.
    const UpstreamSocket* gotOnOne = nullptr;
    bool reusedOnOne = false;
    one.run([&] {
        onOne = take(pool, listener, reusedOnOne);
        gotOnOne = onOne.get();
        pool.release(std::move(onOne), true, 0);
    });
    BOOST_TEST(reusedOnOne);
    BOOST_TEST(gotOnOne == a);

    // A plain thread (no loop) gets the most recently returned: A again (loop one just returned it).
    bool reusedOnThread = false;
    auto onThread = take(pool, listener, reusedOnThread);
    BOOST_TEST(reusedOnThread);
    BOOST_TEST(onThread.get() == a);
    pool.release(std::move(onThread), true, 0);

    // Loop two gets its own B, although A was returned more recently.
    const UpstreamSocket* gotOnTwo = nullptr;
    two.run([&] {
        bool r = false;
        onTwo = take(pool, listener, r);
        gotOnTwo = r ? onTwo.get() : nullptr;
        pool.release(std::move(onTwo), true, 0);
    });
    BOOST_TEST(gotOnTwo == b);
    BOOST_TEST(pool.open() == 2u);  // every request reused one of the two connections
}
