// Per-request handler of the mock upstream. Paths under /__ are control endpoints; every
// other request is an execution: counted per Idempotency-Key, recorded, then answered per
// the key's script, else the X-Mock-* headers, else the default answer.
#pragma once

#include "MockState.h"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServerRequestImpl.h>

namespace idem::mock {

struct Framing;

class MockHandler : public Poco::Net::HTTPRequestHandler {
public:
    explicit MockHandler(MockState& state) : state_(state) {}

    void handleRequest(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) override;

private:
    void execute(Poco::Net::HTTPServerRequestImpl& request, Poco::Net::HTTPServerResponse& response,
                 const Framing& framing);
    void control(Poco::Net::HTTPServerRequestImpl& request, Poco::Net::HTTPServerResponse& response,
                 const Framing& framing);

    MockState& state_;
};

class MockHandlerFactory : public Poco::Net::HTTPRequestHandlerFactory {
public:
    explicit MockHandlerFactory(MockState& state) : state_(state) {}

    Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override
    {
        return new MockHandler(state_);
    }

private:
    MockState& state_;
};

}  // namespace idem::mock
