#include "Worker.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <thread>

namespace idem::load {

namespace {

constexpr std::uint64_t kTimerTag = UINT64_MAX;
constexpr std::int64_t kMs = 1'000'000;
constexpr std::int64_t kConnectRetryNs = 100 * kMs;
constexpr std::size_t kReadChunk = 64 * 1024;

inline void bump(std::atomic<std::uint64_t>& a, std::uint64_t by = 1)
{
    a.store(a.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

}  // namespace

std::int64_t monotonicNs()
{
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::uint64_t Shared::reserve(std::uint64_t want)
{
    if (options.requests == 0) return want;
    std::uint64_t current = reserved.load(std::memory_order_relaxed);
    for (;;) {
        if (current >= options.requests) return 0;
        const std::uint64_t granted = std::min(want, options.requests - current);
        if (reserved.compare_exchange_weak(current, current + granted, std::memory_order_relaxed)) return granted;
    }
}

void ErrorCounts::add(const ErrorCounts& o)
{
    connect += o.connect;
    closed += o.closed;
    timeout += o.timeout;
    protocol += o.protocol;
    unanswered += o.unanswered;
    unsent += o.unsent;
    reconnects += o.reconnects;
}

Worker::Worker(Shared& shared, int index, std::vector<int> slots)
    : shared_(shared),
      options_(shared.options),
      index_(index),
      book_(shared.options, shared.workload, index, shared.threads),
      random_(std::random_device{}() ^ (static_cast<std::uint64_t>(index) << 40) ^ static_cast<std::uint64_t>(monotonicNs()))
{
    for (const int slot : slots) {
        auto c = std::make_unique<Conn>();
        c->slot = slot;
        c->target = static_cast<std::size_t>(slot) % options_.targets.size();
        conns_.push_back(std::move(c));
    }
    closed_ = conns_.size();
    const auto threads = static_cast<std::uint64_t>(shared.threads);
    const auto me = static_cast<std::uint64_t>(index);
    if (options_.keys == 0) keyLimit_ = UINT64_MAX;
    else keyLimit_ = options_.keys > me ? (options_.keys - 1 - me) / threads + 1 : 0;
    timeoutNs_ = static_cast<std::int64_t>(options_.timeout * 1e9);
    if (options_.openLoop()) intervalNs_ = 1e9 * static_cast<double>(shared.threads) / options_.rate;
    readBuffer_.reset(new char[kReadChunk]);
}

Worker::~Worker()
{
    for (auto& c : conns_)
        if (c->fd >= 0) ::close(c->fd);
    if (timer_ >= 0) ::close(timer_);
    if (epoll_ >= 0) ::close(epoll_);
}

// ------------------------------------------------------------------------------------- connections

void Worker::setState(Conn& c, ConnState s)
{
    const auto adjust = [&](ConnState st, int d) {
        switch (st) {
        case ConnState::Idle: idleCount_ += static_cast<std::size_t>(d); break;
        case ConnState::Busy: busy_ += static_cast<std::size_t>(d); break;
        case ConnState::Closed: closed_ += static_cast<std::size_t>(d); break;
        case ConnState::Connecting: break;
        }
    };
    adjust(c.state, -1);
    c.state = s;
    adjust(s, +1);
}

void Worker::setEvents(Conn& c, bool write)
{
    epoll_event ev{};
    ev.events = EPOLLIN | (write ? EPOLLOUT : 0u);
    ev.data.u64 = c.index;
    ::epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
    c.wantWrite = write;
}

void Worker::connect(Conn& c, std::int64_t now)
{
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        ++errors.connect;
        closeConn(c, now + kConnectRetryNs);
        return;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const sockaddr_in& address = options_.targets[c.target].address;
    const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
    if (rc != 0 && errno != EINPROGRESS) {
        ::close(fd);
        ++errors.connect;
        closeConn(c, now + kConnectRetryNs);
        return;
    }
    c.fd = fd;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u64 = c.index;
    ::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
    c.wantWrite = true;
    setState(c, ConnState::Connecting);
    if (rc == 0) finishConnect(c, now);
}

void Worker::finishConnect(Conn& c, std::int64_t now)
{
    int error = 0;
    socklen_t length = sizeof error;
    if (::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
    if (error != 0) {
        ++errors.connect;
        closeConn(c, now + kConnectRetryNs);
        return;
    }
    setEvents(c, false);
    makeIdle(c);
}

void Worker::closeConn(Conn& c, std::int64_t retryAt)
{
    if (c.fd >= 0) {
        ::epoll_ctl(epoll_, EPOLL_CTL_DEL, c.fd, nullptr);
        ::close(c.fd);
        c.fd = -1;
    }
    c.wantWrite = false;
    c.in.clear();
    c.parser.reset();
    if (c.state != ConnState::Closed) setState(c, ConnState::Closed);
    c.retryAt = retryAt;
    nextRetry_ = std::min(nextRetry_, retryAt);
}

void Worker::makeIdle(Conn& c)
{
    setState(c, ConnState::Idle);
    if (!c.inIdleList) {
        idle_.push_back(&c);
        c.inIdleList = true;
    }
}

Worker::Conn* Worker::popIdle()
{
    while (!idle_.empty()) {
        Conn* c = idle_.front();
        idle_.pop_front();
        c->inIdleList = false;
        if (c->state == ConnState::Idle) return c;
    }
    return nullptr;
}

void Worker::reconnect(std::int64_t now)
{
    nextRetry_ = INT64_MAX;
    for (auto& c : conns_) {
        if (c->state != ConnState::Closed) continue;
        if (c->retryAt <= now) connect(*c, now);
        else nextRetry_ = std::min(nextRetry_, c->retryAt);
    }
}

// ---------------------------------------------------------------------------------------- requests

bool Worker::generate(std::int64_t intended, std::uint64_t& produced)
{
    produced = 0;
    if (phase_ == Phase::Warm) {
        if (book_.size() >= keyLimit_) return false;
        Item item;
        item.local = book_.addKey();
        item.intended = intended;
        item.warm = true;
        pending_.push_back(item);
        produced = 1;
        return true;
    }
    const bool canNew = book_.size() < keyLimit_;
    const bool haveOld = book_.size() > 0;
    if (!canNew && (!haveOld || options_.miss)) return false;
    const bool duplicate =
        haveOld && (!canNew || (options_.duplicateRatio > 0 && random_.uniform() < options_.duplicateRatio));
    std::uint64_t want = 1;
    if (!duplicate && options_.burst > 1 && random_.uniform() < options_.burstRatio)
        want = static_cast<std::uint64_t>(options_.burst);
    const std::uint64_t granted = shared_.reserve(want);
    if (granted == 0) return false;
    Item item;
    item.intended = intended;
    if (duplicate) {
        item.local = random_.below(book_.size());
        item.kind = Item::Kind::Duplicate;
        if (options_.conflictRatio > 0 && random_.uniform() < options_.conflictRatio) item.variant = 1;
        pending_.push_back(item);
    } else {
        item.local = book_.addKey();
        item.group = static_cast<std::uint32_t>(granted);
        item.kind = granted > 1 ? Item::Kind::BurstFirst : Item::Kind::New;
        pending_.push_back(item);
        item.group = 0;  // the copies leave with the first item
        item.kind = Item::Kind::BurstCopy;
        for (std::uint64_t i = 1; i < granted; ++i) pending_.push_back(item);
    }
    produced = granted;
    return true;
}

void Worker::dispatch(std::int64_t now)
{
    for (;;) {
        if (stopIssuing_) return;
        if (pending_.empty()) {
            if (idleCount_ == 0) return;
            if (options_.openLoop() && phase_ == Phase::Measure) return;  // the schedule fills the queue
            std::uint64_t produced = 0;
            if (!generate(now, produced)) {
                if (phase_ == Phase::Measure) stopIssuing_ = true;
                return;
            }
        }
        // A burst leaves only when it can leave at once, on `group` different connections.
        const std::uint32_t group = std::max<std::uint32_t>(1, pending_.front().group);
        if (idleCount_ < group) return;
        // Taken off the queue first: a send that fails puts its item back at the front, on its own.
        batch_.clear();
        for (std::uint32_t i = 0; i < group && !pending_.empty(); ++i) {
            batch_.push_back(pending_.front());
            pending_.pop_front();
        }
        for (const Item& item : batch_) {
            Conn* c = popIdle();
            if (c == nullptr) {
                pending_.push_front(item);
                pending_.front().group = 1;
                continue;
            }
            send(*c, item, now);
        }
    }
}

void Worker::send(Conn& c, const Item& item, std::int64_t now)
{
    setState(c, ConnState::Busy);
    c.item = item;
    c.sentNs = now;
    c.out.clear();
    c.outOffset = 0;
    c.in.clear();
    c.parser.reset();
    shared_.workload.appendRequest(c.out, c.target, book_.globalKey(item.local), item.variant);
    const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        // Nothing was delivered: the server closed this idle keep-alive connection. The request goes back to
        // the front of the queue for another connection.
        Item again = item;
        again.group = 1;
        pending_.push_front(again);
        ++errors.reconnects;
        closeConn(c, now);
        return;
    }
    book_.onSend(item.local, item.variant);
    if (!item.warm) {
        switch (item.kind) {
        case Item::Kind::Duplicate:
            ++duplicates;
            if (item.variant == 1) ++conflicts;
            break;
        case Item::Kind::BurstCopy: ++burstCopies; break;
        case Item::Kind::BurstFirst: ++bursts; [[fallthrough]];
        case Item::Kind::New: ++newKeys; break;
        }
    }
    const std::size_t written = n > 0 ? static_cast<std::size_t>(n) : 0;
    if (written < c.out.size()) {
        c.outOffset = written;
        setEvents(c, true);
    }
}

void Worker::flush(Conn& c, std::int64_t now)
{
    while (c.outOffset < c.out.size()) {
        const ssize_t n = ::send(c.fd, c.out.data() + c.outOffset, c.out.size() - c.outOffset, MSG_NOSIGNAL);
        if (n > 0) {
            c.outOffset += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n < 0 && errno == EINTR) continue;
        fail(c, now, std::string("sending the request: ") + std::strerror(errno), &ErrorCounts::closed);
        return;
    }
    setEvents(c, false);
}

void Worker::onReadable(Conn& c, std::int64_t now)
{
    char* buffer = readBuffer_.get();
    for (;;) {
        const ssize_t n = ::recv(c.fd, buffer, kReadChunk, 0);
        if (n > 0) {
            if (c.state != ConnState::Busy) {
                // Bytes nobody asked for: drop the connection.
                ++errors.reconnects;
                closeConn(c, now);
                return;
            }
            c.in.append(buffer, static_cast<std::size_t>(n));
            const auto r = c.parser.parse(c.in);
            if (r == ResponseParser::Result::Done) {
                complete(c, now);
                return;
            }
            if (r == ResponseParser::Result::Error) {
                fail(c, now, "malformed response: " + c.parser.error(), &ErrorCounts::protocol);
                return;
            }
            if (static_cast<std::size_t>(n) < kReadChunk) return;
            continue;
        }
        if (n == 0) {
            if (c.state == ConnState::Busy) {
                if (c.parser.finishAtEof(c.in) == ResponseParser::Result::Done) complete(c, now);
                else fail(c, now, "connection closed before the answer", &ErrorCounts::closed);
            } else {
                ++errors.reconnects;
                closeConn(c, now);
            }
            return;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        if (errno == EINTR) continue;
        if (c.state == ConnState::Busy) {
            fail(c, now, std::string("connection error: ") + std::strerror(errno), &ErrorCounts::closed);
        } else {
            ++errors.reconnects;
            closeConn(c, now);
        }
        return;
    }
}

void Worker::complete(Conn& c, std::int64_t now)
{
    const ResponseHead& head = c.parser.head();
    const Item& item = c.item;
    const auto status = static_cast<std::size_t>(std::clamp(head.status, 0, 999));
    if (!item.warm) {
        const std::int64_t from = options_.openLoop() ? item.intended : c.sentNs;
        histogram.record(static_cast<std::uint64_t>(std::max<std::int64_t>(0, now - from)) / 1000);
        ++statuses[status];
        bump(answered);
        if (head.status < 200 || head.status >= 300) bump(non2xx);
        ++c.answered;
        lastAnswerNs = now;
    } else {
        ++warmStatuses[status];
        shared_.warmAnswered.fetch_add(1, std::memory_order_relaxed);
    }
    if (options_.verify) book_.onAnswer(item.local, item.variant, head, c.parser.body(), now, violations);
    const bool close = head.close || c.parser.consumed() != c.in.size();
    if (close) {
        ++errors.reconnects;
        closeConn(c, now);
    } else {
        c.in.clear();
        c.parser.reset();
        makeIdle(c);
    }
}

void Worker::fail(Conn& c, std::int64_t now, const std::string& why, std::uint64_t ErrorCounts::*counter)
{
    ++(errors.*counter);
    if (!c.item.warm) bump(failed);
    if (options_.verify) book_.onNoAnswer(c.item.local, why, now, violations);
    closeConn(c, now);
}

void Worker::checkTimeouts(std::int64_t now)
{
    for (auto& c : conns_)
        if (c->state == ConnState::Busy && now - c->sentNs > timeoutNs_)
            fail(*c, now, "no answer within --timeout", &ErrorCounts::timeout);
}

// ------------------------------------------------------------------------------------ open loop

void Worker::armTimer(std::int64_t at)
{
    if (timer_ < 0 || at == timerArmedFor_) return;
    itimerspec spec{};
    spec.it_value.tv_sec = static_cast<time_t>(at / 1'000'000'000);
    spec.it_value.tv_nsec = static_cast<long>(at % 1'000'000'000);
    if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) spec.it_value.tv_nsec = 1;
    ::timerfd_settime(timer_, TFD_TIMER_ABSTIME, &spec, nullptr);
    timerArmedFor_ = at;
}

void Worker::schedule(std::int64_t now)
{
    while (!stopIssuing_ && nextIntended_ <= now) {
        if (endNs_ != 0 && nextIntended_ >= endNs_) {
            stopIssuing_ = true;
            break;
        }
        std::uint64_t produced = 0;
        if (!generate(nextIntended_, produced)) {
            stopIssuing_ = true;
            break;
        }
        slot_ += produced;
        nextIntended_ = scheduleStart_ + static_cast<std::int64_t>(static_cast<double>(slot_) * intervalNs_);
    }
    if (!stopIssuing_) armTimer(nextIntended_);
}

// ------------------------------------------------------------------------------------------ phases

void Worker::startMeasuring(std::int64_t start)
{
    phase_ = Phase::Measure;
    endNs_ = options_.duration > 0 ? start + static_cast<std::int64_t>(options_.duration * 1e9) : 0;
    scheduleStart_ = start + static_cast<std::int64_t>(intervalNs_ * index_ / shared_.threads);
    slot_ = 0;
    nextIntended_ = scheduleStart_;
}

bool Worker::waitForWarmUp()
{
    if (shared_.warmedUp.fetch_add(1) + 1 == shared_.threads) shared_.startNs.store(monotonicNs());
    while (shared_.startNs.load() == 0) {
        if (shared_.interrupted.load(std::memory_order_relaxed)) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    startMeasuring(shared_.startNs.load());
    return true;
}

// -------------------------------------------------------------------------------------------- loop

void Worker::run()
{
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
    if (options_.openLoop()) {
        timer_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (timer_ < 0) throw std::runtime_error(std::string("timerfd_create: ") + std::strerror(errno));
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = kTimerTag;
        ::epoll_ctl(epoll_, EPOLL_CTL_ADD, timer_, &ev);
    }
    for (std::size_t i = 0; i < conns_.size(); ++i) conns_[i]->index = i;

    std::int64_t now = monotonicNs();
    for (auto& c : conns_) connect(*c, now);
    if (options_.replay) phase_ = Phase::Warm;
    else startMeasuring(shared_.startNs.load());

    std::vector<epoll_event> events(std::max<std::size_t>(64, conns_.size() + 1));
    std::int64_t nextTimeoutCheck = now + 100 * kMs;
    std::int64_t drainDeadline = 0;
    for (;;) {
        now = monotonicNs();
        if (!stopIssuing_) {
            if (shared_.interrupted.load(std::memory_order_relaxed)) stopIssuing_ = true;
            else if (phase_ == Phase::Measure && endNs_ != 0 && now >= endNs_) stopIssuing_ = true;
        }
        if (phase_ == Phase::Warm && !stopIssuing_ && book_.size() >= keyLimit_ && busy_ == 0 && pending_.empty()) {
            if (!waitForWarmUp()) stopIssuing_ = true;
            now = monotonicNs();
        }
        if (options_.openLoop() && phase_ == Phase::Measure && !stopIssuing_) schedule(now);
        if (closed_ > 0 && !stopIssuing_ && now >= nextRetry_) reconnect(now);
        dispatch(now);
        if (stopIssuing_) {
            if (drainDeadline == 0) drainDeadline = now + timeoutNs_;
            if (busy_ == 0) break;
            if (now >= drainDeadline) {
                for (auto& c : conns_)
                    if (c->state == ConnState::Busy)
                        fail(*c, now, "still unanswered when the run ended", &ErrorCounts::unanswered);
                break;
            }
        }
        if (now >= nextTimeoutCheck) {
            checkTimeouts(now);
            nextTimeoutCheck = now + 100 * kMs;
        }

        std::int64_t wake = nextTimeoutCheck;
        if (phase_ == Phase::Measure && endNs_ != 0 && !stopIssuing_) wake = std::min(wake, endNs_);
        if (closed_ > 0 && !stopIssuing_) wake = std::min(wake, nextRetry_);
        if (stopIssuing_) wake = std::min(wake, drainDeadline);
        const int waitMs = wake <= now ? 0 : static_cast<int>(std::min<std::int64_t>(100, (wake - now + kMs - 1) / kMs));
        const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), waitMs);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw std::runtime_error(std::string("epoll_wait: ") + std::strerror(errno));
        }
        now = monotonicNs();
        for (int i = 0; i < n; ++i) {
            const epoll_event& ev = events[static_cast<std::size_t>(i)];
            if (ev.data.u64 == kTimerTag) {
                std::uint64_t expirations = 0;
                [[maybe_unused]] const ssize_t r = ::read(timer_, &expirations, sizeof expirations);
                timerArmedFor_ = -1;
                continue;
            }
            Conn& c = *conns_[static_cast<std::size_t>(ev.data.u64)];
            if (c.fd < 0) continue;
            if (c.state == ConnState::Connecting) {
                finishConnect(c, now);
                continue;
            }
            if ((ev.events & EPOLLOUT) && c.wantWrite && c.state == ConnState::Busy) flush(c, now);
            if (c.fd >= 0 && (ev.events & (EPOLLIN | EPOLLHUP | EPOLLERR))) onReadable(c, now);
        }
    }

    // Open loop: requests scheduled but never sent are reported (the server fell behind the schedule). The
    // closed loop leaves at most a burst that was still waiting for free connections: it was never a request.
    if (options_.openLoop())
        for (const Item& item : pending_)
            if (!item.warm) ++errors.unsent;
    pending_.clear();
    for (auto& c : conns_) {
        if (c->fd >= 0) closeConn(*c, 0);
        perConnection.emplace_back(c->slot, c->answered);
    }
}

}  // namespace idem::load
