#include "StopSignal.h"

#include <cerrno>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <system_error>
#include <unistd.h>

namespace idem::mock {

StopSignal::StopSignal()
{
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
    readFd_ = fds[0];
    writeFd_ = fds[1];
}

StopSignal::~StopSignal()
{
    ::close(readFd_);
    ::close(writeFd_);
}

void StopSignal::requestStop()
{
    if (stopping_.exchange(true, std::memory_order_acq_rel)) return;
    const char byte = 1;
    while (::write(writeFd_, &byte, 1) < 0 && errno == EINTR) {
    }
}

bool StopSignal::waitFor(std::chrono::milliseconds d) const
{
    const auto deadline = std::chrono::steady_clock::now() + d;
    for (;;) {
        if (stopping()) return true;
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        pollfd pfd{readFd_, POLLIN, 0};
        const int timeout = left.count() > 1'000'000'000 ? 1'000'000'000 : static_cast<int>(left.count());
        const int rc = ::poll(&pfd, 1, timeout);
        if (rc > 0) return true;
    }
}

void StopSignal::waitPeerGone(int socketFd) const
{
    char drain[4096];
    for (;;) {
        if (stopping()) return;
        pollfd pfds[2] = {{readFd_, POLLIN, 0}, {socketFd, POLLIN, 0}};
        const int rc = ::poll(pfds, 2, -1);
        if (rc < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if (pfds[0].revents != 0) return;
        if (pfds[1].revents & (POLLERR | POLLHUP | POLLNVAL)) return;
        if (pfds[1].revents & POLLIN) {
            const auto n = ::recv(socketFd, drain, sizeof drain, MSG_DONTWAIT);
            if (n == 0) return;
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return;
        }
    }
}

}  // namespace idem::mock
