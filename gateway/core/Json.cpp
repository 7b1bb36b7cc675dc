#include "gateway/core/Json.h"

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace idem::core {
namespace {

/// Length of the valid UTF-8 sequence starting at s[i] (1-4), or 0 if the bytes there are not valid
/// UTF-8 (RFC 3629: no overlong forms, no encoded surrogates, nothing above U+10FFFF).
std::size_t utf8SequenceLength(std::string_view s, std::size_t i) {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const auto cont = [&](std::size_t k, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
        return k < s.size() && byte(k) >= lo && byte(k) <= hi;
    };
    const unsigned char b0 = byte(i);
    if (b0 < 0x80) return 1;
    if (b0 >= 0xC2 && b0 <= 0xDF) return cont(i + 1) ? 2 : 0;
    if (b0 == 0xE0) return cont(i + 1, 0xA0, 0xBF) && cont(i + 2) ? 3 : 0;
    if ((b0 >= 0xE1 && b0 <= 0xEC) || b0 == 0xEE || b0 == 0xEF) return cont(i + 1) && cont(i + 2) ? 3 : 0;
    if (b0 == 0xED) return cont(i + 1, 0x80, 0x9F) && cont(i + 2) ? 3 : 0;
    if (b0 == 0xF0) return cont(i + 1, 0x90, 0xBF) && cont(i + 2) && cont(i + 3) ? 4 : 0;
    if (b0 >= 0xF1 && b0 <= 0xF3) return cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0;
    if (b0 == 0xF4) return cont(i + 1, 0x80, 0x8F) && cont(i + 2) && cont(i + 3) ? 4 : 0;
    return 0;
}

void appendUtf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

int hexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool isDigit(char c) { return c >= '0' && c <= '9'; }

/// Recursive-descent parser that writes the canonical form as it goes. Object members are written in
/// input order, then the object's span of the output is rearranged if the names were not sorted.
class Canonicalizer {
public:
    explicit Canonicalizer(std::string_view in) : in_(in) { out_.reserve(in.size()); }

    std::expected<std::string, std::string> run() {
        skipWhitespace();
        if (!value(0)) return std::unexpected(error());
        skipWhitespace();
        if (pos_ != in_.size()) {
            fail("unexpected data after the JSON value");
            return std::unexpected(error());
        }
        return std::move(out_);
    }

private:
    bool fail(const char* what) {
        if (!failed_) {
            failed_ = true;
            what_ = what;
            errorPos_ = pos_;
        }
        return false;
    }

    std::string error() const { return "invalid JSON at byte " + std::to_string(errorPos_) + ": " + what_; }

    bool atEnd() const { return pos_ >= in_.size(); }
    char peek() const { return in_[pos_]; }

    void skipWhitespace() {
        while (!atEnd() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) ++pos_;
    }

    bool literal(std::string_view word) {
        if (in_.substr(pos_, word.size()) != word) return fail("invalid literal");
        out_ += word;
        pos_ += word.size();
        return true;
    }

    bool value(std::size_t depth) {
        if (atEnd()) return fail("unexpected end of input, a value was expected");
        switch (peek()) {
            case '{': return object(depth + 1);
            case '[': return array(depth + 1);
            case '"': {
                std::string text;
                if (!string(text)) return false;
                appendJsonString(out_, text);
                return true;
            }
            case 't': return literal("true");
            case 'f': return literal("false");
            case 'n': return literal("null");
            default: return number();
        }
    }

    bool number() {
        const std::size_t start = pos_;
        if (!atEnd() && peek() == '-') ++pos_;
        if (atEnd() || !isDigit(peek())) return fail("invalid value");
        if (peek() == '0') {
            ++pos_;
            if (!atEnd() && isDigit(peek())) return fail("number with a leading zero");
        } else {
            while (!atEnd() && isDigit(peek())) ++pos_;
        }
        if (!atEnd() && peek() == '.') {
            ++pos_;
            if (atEnd() || !isDigit(peek())) return fail("number with no digit after the decimal point");
            while (!atEnd() && isDigit(peek())) ++pos_;
        }
        if (!atEnd() && (peek() == 'e' || peek() == 'E')) {
            ++pos_;
            if (!atEnd() && (peek() == '+' || peek() == '-')) ++pos_;
            if (atEnd() || !isDigit(peek())) return fail("number with no digit in the exponent");
            while (!atEnd() && isDigit(peek())) ++pos_;
        }
        out_.append(in_.substr(start, pos_ - start));
        return true;
    }

    bool hex4(std::uint32_t& cp) {
        if (in_.size() - pos_ < 4) return fail("truncated \\u escape");
        cp = 0;
        for (int k = 0; k < 4; ++k) {
            const int h = hexValue(in_[pos_ + static_cast<std::size_t>(k)]);
            if (h < 0) return fail("invalid hex digit in a \\u escape");
            cp = (cp << 4) | static_cast<std::uint32_t>(h);
        }
        pos_ += 4;
        return true;
    }

    /// Parses a string literal at pos_ into its unescaped UTF-8 bytes.
    bool string(std::string& text) {
        ++pos_;  // opening quote
        while (true) {
            if (atEnd()) return fail("unterminated string");
            const auto c = static_cast<unsigned char>(peek());
            if (c == '"') {
                ++pos_;
                return true;
            }
            if (c < 0x20) return fail("control character inside a string");
            if (c == '\\') {
                ++pos_;
                if (atEnd()) return fail("unterminated string");
                const char e = peek();
                ++pos_;
                switch (e) {
                    case '"': text.push_back('"'); break;
                    case '\\': text.push_back('\\'); break;
                    case '/': text.push_back('/'); break;
                    case 'b': text.push_back('\b'); break;
                    case 'f': text.push_back('\f'); break;
                    case 'n': text.push_back('\n'); break;
                    case 'r': text.push_back('\r'); break;
                    case 't': text.push_back('\t'); break;
                    case 'u': {
                        std::uint32_t cp = 0;
                        if (!hex4(cp)) return false;
                        if (cp >= 0xDC00 && cp <= 0xDFFF) return fail("lone low surrogate in a \\u escape");
                        if (cp >= 0xD800 && cp <= 0xDBFF) {
                            if (in_.substr(pos_, 2) != "\\u") return fail("lone high surrogate in a \\u escape");
                            pos_ += 2;
                            std::uint32_t low = 0;
                            if (!hex4(low)) return false;
                            if (low < 0xDC00 || low > 0xDFFF) return fail("high surrogate not followed by a low one");
                            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                        }
                        appendUtf8(text, cp);
                        break;
                    }
                    default: --pos_; return fail("invalid escape");
                }
                continue;
            }
            const std::size_t n = utf8SequenceLength(in_, pos_);
            if (n == 0) return fail("invalid UTF-8 inside a string");
            text.append(in_.substr(pos_, n));
            pos_ += n;
        }
    }

    bool array(std::size_t depth) {
        if (depth > kMaxJsonDepth) return fail("nesting deeper than 128");
        ++pos_;
        out_.push_back('[');
        skipWhitespace();
        if (!atEnd() && peek() == ']') {
            ++pos_;
            out_.push_back(']');
            return true;
        }
        while (true) {
            skipWhitespace();
            if (!value(depth)) return false;
            skipWhitespace();
            if (atEnd()) return fail("unterminated array");
            if (peek() == ',') {
                ++pos_;
                out_.push_back(',');
                continue;
            }
            if (peek() == ']') {
                ++pos_;
                out_.push_back(']');
                return true;
            }
            return fail("expected ',' or ']' in an array");
        }
    }

    struct Member {
        std::string name;  ///< unescaped UTF-8
        std::size_t begin;  ///< span of `"name":value` in out_
        std::size_t end;
    };

    bool object(std::size_t depth) {
        if (depth > kMaxJsonDepth) return fail("nesting deeper than 128");
        ++pos_;
        out_.push_back('{');
        const std::size_t bodyStart = out_.size();
        std::vector<Member> members;
        skipWhitespace();
        if (!atEnd() && peek() == '}') {
            ++pos_;
            out_.push_back('}');
            return true;
        }
        while (true) {
            skipWhitespace();
            if (atEnd() || peek() != '"') return fail("expected a member name");
            Member m;
            m.begin = out_.size();
            if (!string(m.name)) return false;
            appendJsonString(out_, m.name);
            skipWhitespace();
            if (atEnd() || peek() != ':') return fail("expected ':' after a member name");
            ++pos_;
            out_.push_back(':');
            skipWhitespace();
            if (!value(depth)) return false;
            m.end = out_.size();
            members.push_back(std::move(m));
            skipWhitespace();
            if (atEnd()) return fail("unterminated object");
            if (peek() == ',') {
                ++pos_;
                continue;
            }
            if (peek() == '}') {
                ++pos_;
                break;
            }
            return fail("expected ',' or '}' in an object");
        }
        return sortMembers(bodyStart, members);
    }

    /// Rewrites out_ from bodyStart as the members in name order, comma separated, then '}'.
    bool sortMembers(std::size_t bodyStart, std::vector<Member>& members) {
        const auto byName = [](const Member& a, const Member& b) {
            return std::string_view(a.name) < std::string_view(b.name);
        };
        const bool sorted = std::is_sorted(members.begin(), members.end(), byName);
        std::vector<std::size_t> order(members.size());
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        if (!sorted)
            std::stable_sort(order.begin(), order.end(),
                             [&](std::size_t a, std::size_t b) { return byName(members[a], members[b]); });
        for (std::size_t i = 1; i < order.size(); ++i)
            if (members[order[i - 1]].name == members[order[i]].name)
                return fail("duplicate member name in an object");
        std::string body;
        body.reserve(out_.size() - bodyStart + members.size() + 1);
        for (std::size_t i = 0; i < order.size(); ++i) {
            if (i > 0) body.push_back(',');
            const Member& m = members[order[i]];
            body.append(out_, m.begin, m.end - m.begin);
        }
        body.push_back('}');
        out_.resize(bodyStart);
        out_ += body;
        return true;
    }

    std::string_view in_;
    std::size_t pos_ = 0;
    std::string out_;
    bool failed_ = false;
    const char* what_ = "";
    std::size_t errorPos_ = 0;
};

}  // namespace

std::expected<std::string, std::string> canonicalizeJson(std::string_view json) {
    return Canonicalizer(json).run();
}

std::optional<std::string> canonicalJson(std::string_view json) {
    auto result = canonicalizeJson(json);
    if (!result) return std::nullopt;
    return std::move(*result);
}

void appendJsonString(std::string& out, std::string_view text) {
    static constexpr char kHex[] = "0123456789abcdef";
    out.push_back('"');
    std::size_t i = 0;
    while (i < text.size()) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c >= 0x80) {
            const std::size_t n = utf8SequenceLength(text, i);
            if (n == 0) {
                out += "\xEF\xBF\xBD";  // U+FFFD for a byte that is not valid UTF-8
                ++i;
            } else {
                out.append(text.substr(i, n));
                i += n;
            }
            continue;
        }
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    out += "\\u00";
                    out.push_back(kHex[c >> 4]);
                    out.push_back(kHex[c & 0x0F]);
                } else {
                    out.push_back(static_cast<char>(c));
                }
        }
        ++i;
    }
    out.push_back('"');
}

}  // namespace idem::core
