// Writes answers straight to the connection's socket, bypassing Poco's response object: the
// mock needs exact control of the wire (repeated header names in order, a given number of
// chunks, half a body before a reset), and one send() for a small answer is also the fastest.
#pragma once

#include "Answer.h"

#include <Poco/Net/StreamSocket.h>

#include <string>

namespace idem::mock {

struct Framing {
    bool keepAlive = true;  // the connection stays open after this answer
    bool http10 = false;    // HTTP/1.0 request: keep-alive must be announced explicitly
    bool head = false;      // HEAD request: headers only
};

// Sends answer; returns false when the answer's own headers asked for Connection: close.
// Content-Length and Transfer-Encoding in answer.headers are ignored: the mock frames itself.
// scratch is a reusable buffer. Throws Poco::Exception on socket errors.
bool sendAnswer(Poco::Net::StreamSocket& socket, const Answer& answer, const Framing& framing, std::string& scratch);

// Sends the status line, the headers with the full Content-Length, and the first half of the
// body (a 64-byte filler body when the answer has fewer than 2 bytes). The caller then resets.
void sendHalfAnswer(Poco::Net::StreamSocket& socket, const Answer& answer, std::string& scratch);

// Closes with SO_LINGER 0, so the peer sees a TCP RST.
void resetConnection(Poco::Net::StreamSocket& socket);

// Closes normally (FIN), without answering.
void closeConnection(Poco::Net::StreamSocket& socket);

}  // namespace idem::mock
