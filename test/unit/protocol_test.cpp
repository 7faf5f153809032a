// The wire protocol without sockets: framing, request matching, hello, errors.
#include "protocol/frame.hpp"
#include "protocol/message.hpp"
#include "protocol/msgpack.hpp"
#include "protocol/packed_request.hpp"
#include "protocol/request_table.hpp"
#include "protocol/target_request.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <limits>
#include <string>
#include <vector>

using namespace zproc;
using namespace zproc::protocol;
using nlohmann::json;

namespace {
void feed(frame_decoder& d, std::string_view bytes) {
  auto space = d.prepare(bytes.size());
  std::memcpy(space.data(), bytes.data(), bytes.size());
  d.commit(bytes.size());
}
}  // namespace

TEST_SUITE("protocol") {
  TEST_CASE("cancel and more are read once: target, credit, the namespace when named") {
    auto t = read_target_request(cancel_request(42, "kitchen"), op::cancel);
    REQUIRE(t);
    CHECK(t->code == op::cancel);
    CHECK(t->target == 42);
    CHECK(t->credit == 0);
    CHECK(t->ns == "kitchen");
    t = read_target_request(cancel_request(7), op::cancel);  // a client of protocol 2
    REQUIRE(t);
    CHECK(!t->ns);
    t = read_target_request(json{{"o", "more"}, {"target", 9u}, {"credit", 16u}}, op::more);
    REQUIRE(t);
    CHECK(t->credit == 16);
    // A namespace of the wrong type is no namespace (the target is looked for everywhere).
    t = read_target_request(json{{"o", "cancel"}, {"target", 9u}, {"n", 3}}, op::cancel);
    REQUIRE(t);
    CHECK(!t->ns);
    for (const json& bad : {json{{"o", "cancel"}}, json{{"o", "cancel"}, {"target", -1}},
                            json{{"o", "cancel"}, {"target", "9"}}, json::array()}) {
      CAPTURE(bad);
      CHECK(!read_target_request(bad, op::cancel));
    }
    for (const json& bad : {json{{"o", "more"}, {"target", 9u}},
                            json{{"o", "more"}, {"target", 9u}, {"credit", 0u}},
                            json{{"o", "more"}, {"target", 9u}, {"credit", -2}}}) {
      CAPTURE(bad);
      CHECK(!read_target_request(bad, op::more));
    }
    CHECK(!read_target_request(json{{"o", "get"}, {"target", 9u}}, op::get));
    CHECK(std::string(target_request_error(op::more)).find("credit") != std::string::npos);
  }

  TEST_CASE("cancel and more read without a json tree take what the json reader takes, and "
            "nothing else") {
    const auto msgpack = [](const json& j) {
      const auto b = json::to_msgpack(j);
      return std::string(b.begin(), b.end());
    };
    const std::vector<json> requests = {
        {{"i", 5u}, {"o", "more"}, {"target", 9u}, {"credit", 16u}, {"n", "kitchen"}},
        {{"i", 5u}, {"o", "more"}, {"target", 9u}, {"credit", 16u}},
        {{"i", 5u}, {"o", "cancel"}, {"target", 42u}, {"n", "kitchen"}},
        {{"i", 5u}, {"o", "cancel"}, {"target", 42u}},
        {{"i", 5u}, {"o", "cancel"}, {"target", 42u}, {"n", 3}},       // ns ignored
        {{"i", 5u}, {"o", "cancel"}, {"target", 42u}, {"credit", 1u}},  // credit ignored
        {{"i", 5u}, {"o", "more"}, {"target", 9u}},                      // no credit
        {{"i", 5u}, {"o", "more"}, {"target", 9u}, {"credit", 0u}},
        {{"i", 5u}, {"o", "more"}, {"target", 9u}, {"credit", -2}},
        {{"i", 5u}, {"o", "cancel"}, {"target", -1}},
        {{"i", 5u}, {"o", "cancel"}, {"target", "9"}},
        {{"i", 5u}, {"o", "cancel"}},
        {{"i", 5u}, {"o", "cancel"}, {"target", 42u}, {"x", 1}},  // unknown: the json path's
        {{"o", "cancel"}, {"target", 42u}},                        // no id: the json path's
        {{"i", 5u}, {"o", "get"}, {"target", 42u}},
    };
    std::size_t flat = 0;
    for (const json& r : requests) {
      CAPTURE(r.dump());
      std::uint64_t id = 0;
      target_request t;
      const bool read = decode_target_request(msgpack(r), id, t);
      const auto code = op_of(r);
      const auto by_json = code ? read_target_request(r, *code) : std::nullopt;
      if (!read) continue;  // (the json path reads it, and answers)
      ++flat;
      REQUIRE(by_json);
      CHECK(id == 5);
      CHECK(t.code == by_json->code);
      CHECK(t.target == by_json->target);
      CHECK(t.credit == by_json->credit);
      CHECK(t.ns == by_json->ns);
    }
    CHECK(flat == 6);  // the first six
    // Payloads json::to_msgpack() does not write: both readers still agree.
    const auto both = [](const std::string& p, op code, std::optional<target_request>& by_json) {
      std::uint64_t id = 99;
      target_request t;
      const bool read = decode_target_request(p, id, t);
      const json j = decode_payload(p);
      by_json = j.is_discarded() ? std::nullopt : read_target_request(j, code);
      if (read) {
        REQUIRE(by_json);
        CHECK(t.target == by_json->target);
        CHECK(t.credit == by_json->credit);
        CHECK(t.ns == by_json->ns);
      }
      return read;
    };
    std::optional<target_request> j;
    // Maps written byte by byte: a fixstr of each name, then its value's bytes.
    const auto str = [](std::string_view text) {
      return std::string(1, static_cast<char>(0xa0 | text.size())) + std::string(text);
    };
    const auto raw = [](std::initializer_list<int> bytes) {
      std::string out;
      for (int b : bytes) out += static_cast<char>(b);
      return out;
    };
    // {"i": 5, "o": "more", "target": 9 as a signed int 8, "credit": 16}: json reads a signed
    // form as number_integer, not unsigned: refused by both.
    const std::string signed_target = raw({0x84}) + str("i") + raw({5}) + str("o") + str("more") +
                                      str("target") + raw({0xd0, 9}) + str("credit") + raw({16});
    CHECK(!both(signed_target, op::more, j));
    CHECK(!j);
    // target given twice: the last stands on both.
    const std::string twice_target = raw({0x84}) + str("i") + raw({5}) + str("o") + str("cancel") +
                                     str("target") + raw({7}) + str("target") + raw({8});
    CHECK(both(twice_target, op::cancel, j));
    REQUIRE(j);
    CHECK(j->target == 8);
    // Cut short, or with a byte after the map: neither reads it.
    const std::string whole = msgpack(json{{"i", 5u}, {"o", "cancel"}, {"target", 42u}});
    CHECK(both(whole, op::cancel, j));
    CHECK(!both(whole.substr(0, whole.size() - 1), op::cancel, j));
    CHECK(!j);
    CHECK(!both(whole + '\x01', op::cancel, j));
    CHECK(!j);
    // A namespace given twice: the last stands, as in json's map (here one of another type).
    std::string twice = msgpack(json{{"i", 5u}, {"o", "cancel"}, {"target", 42u}, {"n", "a"}});
    twice[0] = static_cast<char>(0x85);
    twice += msgpack(json{{"n", 7}}).substr(1);
    std::uint64_t id = 0;
    target_request t;
    REQUIRE(decode_target_request(twice, id, t));
    CHECK(!t.ns);
    const auto twice_json = read_target_request(decode_payload(twice), op::cancel);
    REQUIRE(twice_json);
    CHECK(!twice_json->ns);
  }

  TEST_CASE("watch_reply_head: the envelope of a one-update watch reply, the update after it") {
    const json update = {{"rev", 3}, {"k", "x"}};
    const auto u = json::to_msgpack(update);
    for (const std::uint64_t id : {std::uint64_t{1}, std::uint64_t{200}, std::uint64_t{70000},
                                   std::numeric_limits<std::uint64_t>::max()})
      for (const std::uint64_t cursor : {std::uint64_t{0}, std::uint64_t{128},
                                         std::uint64_t{1} << 40}) {
        CAPTURE(id);
        CAPTURE(cursor);
        const reply_bytes head = watch_reply_head(id, cursor);
        CHECK(head.size() <= reply_bytes::inline_capacity);
        std::string whole(head.view());
        whole.append(u.begin(), u.end());
        const json expected = {
            {"i", id}, {"r", {{"cursor", cursor}, {"updates", json::array({update})}}}};
        const auto e = json::to_msgpack(expected);
        CHECK(whole == std::string(e.begin(), e.end()));
      }
  }

  TEST_CASE("encode_reply: the bytes of make_reply() encoded, without the json object") {
    const std::vector<json> results = {
        nullptr, true, false, 0, 1, 127, 128, 255, 256, 65535, 65536, 4294967295u,
        4294967296u, std::numeric_limits<std::uint64_t>::max(), -1, -33, -129, -70000,
        std::numeric_limits<std::int64_t>::min(), 1.5, 0.1, -2.5e300, "", "abc",
        std::string(31, 'y'), std::string(32, 'z'), std::string(300, 'x'),
        std::string(70000, 'w'), json::array({1, "two"}), json{{"k", 1}},
        json::binary({1, 2, 3})};
    for (const json& r : results)
      for (const std::uint64_t id : {std::uint64_t{1}, std::uint64_t{200}, std::uint64_t{1} << 40}) {
        CAPTURE(r.dump());
        CAPTURE(id);
        const auto as_string = [](const std::vector<std::uint8_t>& v) {
          return std::string(v.begin(), v.end());
        };
        CHECK(protocol::encode_reply(id, r).view() ==
              as_string(json::to_msgpack(protocol::make_reply(id, r))));
        CHECK(protocol::encode_reply(id, r, 7).view() ==
              as_string(json::to_msgpack(protocol::make_reply(id, r, 7))));
        CHECK(protocol::encode_reply(id, r, std::uint64_t{1} << 33).view() ==
              as_string(json::to_msgpack(protocol::make_reply(id, r, std::uint64_t{1} << 33))));
      }
  }

  TEST_CASE("a frame round-trips, whole or byte by byte") {
    const json msg = {{"i", 7}, {"o", "set"}, {"k", "cookies"}, {"v", {1, 2.5, "x", nullptr}}};
    std::string wire;
    const auto size = append_frame(wire, msg);
    CHECK(wire.size() == size + frame_header_size);

    frame_decoder whole;
    feed(whole, wire);
    std::string_view payload;
    REQUIRE(whole.next(payload) == frame_decoder::status::frame);
    CHECK(decode_payload(payload) == msg);
    CHECK(whole.next(payload) == frame_decoder::status::need_more);

    frame_decoder bytewise;
    for (std::size_t i = 0; i + 1 < wire.size(); ++i) {
      feed(bytewise, wire.substr(i, 1));
      CHECK(bytewise.next(payload) == frame_decoder::status::need_more);
    }
    feed(bytewise, wire.substr(wire.size() - 1));
    REQUIRE(bytewise.next(payload) == frame_decoder::status::frame);
    CHECK(decode_payload(payload) == msg);
  }

  TEST_CASE("many frames in one read come out in order") {
    std::string wire;
    for (int i = 0; i < 1000; ++i) append_frame(wire, json{{"i", i}});
    frame_decoder d;
    feed(d, wire);
    std::string_view payload;
    for (int i = 0; i < 1000; ++i) {
      REQUIRE(d.next(payload) == frame_decoder::status::frame);
      CHECK(decode_payload(payload)["i"] == i);
    }
    CHECK(d.next(payload) == frame_decoder::status::need_more);
    CHECK(d.buffered() == 0);
  }

  TEST_CASE("an oversized frame is reported from its header alone") {
    frame_decoder d(1024);
    const char header[4] = {0, 0, 0x04, 0x01};  // 1025 bytes announced
    feed(d, std::string_view(header, 4));
    std::string_view payload;
    CHECK(d.next(payload) == frame_decoder::status::too_large);
    CHECK(d.announced_size() == 1025);
  }

  TEST_CASE("packed_size: never less than the encoding, exact but for numbers") {
    const auto exact = [](const json& v) { return json::to_msgpack(v).size(); };
    for (std::size_t n : {0, 1, 31, 32, 255, 256, 65535, 65536, 70000}) {
      INFO(n);
      const json s = std::string(n, 's');
      CHECK(packed_size(s) == exact(s));
      const json bin = json::binary(std::vector<std::uint8_t>(n, 7));
      CHECK(packed_size(bin) >= exact(bin));
      json arr = json::array();
      json obj = json::object();
      for (std::size_t i = 0; i < std::min<std::size_t>(n, 70000); ++i) {
        arr.push_back(nullptr);
        obj["k" + std::to_string(i)] = true;
      }
      CHECK(packed_size(arr) == exact(arr));
      CHECK(packed_size(obj) == exact(obj));
    }
    for (const json& v : {json(0), json(-1), json(1u << 31), json(-1e300), json(0.5),
                          json(std::numeric_limits<std::uint64_t>::max()),
                          json::parse(R"({"a":[1,2.5,"x",{"b":null}],"c":false})")}) {
      INFO(v.dump());
      CHECK(packed_size(v) >= exact(v));
    }
  }

  TEST_CASE("a payload that is not MessagePack decodes as discarded") {
    CHECK(decode_payload("\xc1garbage").is_discarded());
    CHECK(decode_payload("").is_discarded());
    CHECK(decode_payload("\x92\x01").is_discarded());  // array of 2 with 1 element: truncated
  }

  TEST_CASE("request ids are unique and replies match in any order") {
    request_table<std::string> t;
    const auto a = t.add("a");
    const auto b = t.add("b");
    const auto c = t.add("c");
    CHECK(a != 0);
    CHECK(a != b);
    CHECK(b != c);
    CHECK(t.take(c) == "c");
    CHECK(t.take(a) == "a");
    CHECK_FALSE(t.take(a).has_value());  // a late or duplicate reply finds nothing
    CHECK_FALSE(t.take(999).has_value());
    t.add("d");
    auto rest = t.take_all();
    CHECK(rest.size() == 2);
    CHECK(t.empty());
  }

  TEST_CASE("hello: accepted, wrong magic, wrong version") {
    error_code ec;
    std::string why;
    auto hello = check_hello(make_hello(12345), ec, why);
    REQUIRE(hello.has_value());
    CHECK(hello->max_frame_size == 12345);
    CHECK(hello->client_nonce.empty());
    hello = check_hello(make_hello(100, "abc"), ec, why);
    REQUIRE(hello.has_value());
    CHECK(hello->client_nonce == "abc");
    json bad_nonce = make_hello(100);
    bad_nonce["cn"] = 5;
    CHECK_FALSE(check_hello(bad_nonce, ec, why));

    CHECK_FALSE(check_hello(json{{"hello", "redis"}, {"version", version}}, ec, why));
    CHECK(ec == server_errc::handshake_required);
    CHECK_FALSE(check_hello(json{{"o", "get"}}, ec, why));
    CHECK(ec == server_errc::handshake_required);
    CHECK_FALSE(check_hello(json{{"hello", "zproc"}, {"version", version + 1}}, ec, why));
    CHECK(ec == server_errc::version_mismatch);
    CHECK(why.find("version") != std::string::npos);
    // A client of the version before (no streaming watch) is still served, in its version.
    CHECK(hello->version == version);
    json older = make_hello(100);
    older["version"] = version - 1;
    hello = check_hello(older, ec, why);
    REQUIRE(hello.has_value());
    CHECK(hello->version == version - 1);
    older["version"] = oldest_version - 1;
    CHECK_FALSE(check_hello(older, ec, why));
    CHECK(ec == server_errc::version_mismatch);
  }

  TEST_CASE("hello reply: accepted, error, other version") {
    error_code ec;
    std::string why;
    auto r = parse_hello_reply(make_hello_reply({42, 7, 99}), ec, why);
    REQUIRE(r.has_value());
    CHECK(r->server_pid == 42);
    CHECK(r->client_id == 7);
    CHECK(r->max_frame_size == 99);
    CHECK(r->server_id.empty());  // a server that names none
    auto named = parse_hello_reply(make_hello_reply({42, 7, 99, "0123456789abcdef"}), ec, why);
    REQUIRE(named.has_value());
    CHECK(named->server_id == "0123456789abcdef");

    auto mismatch = make_error_reply(0, server_errc::version_mismatch, "old server");
    CHECK_FALSE(parse_hello_reply(mismatch, ec, why));
    CHECK(ec == client_errc::version_mismatch);
    CHECK(why == "old server");

    hello_reply in_older{1, 1, 1};
    in_older.version = version - 1;
    CHECK(make_hello_reply(in_older).at("version") == version - 1);
    CHECK(make_challenge("nonce", version - 1).at("version") == version - 1);

    json newer = make_hello_reply({1, 1, 1});
    newer["version"] = version + 1;
    CHECK_FALSE(parse_hello_reply(newer, ec, why));
    CHECK(ec == client_errc::version_mismatch);

    CHECK_FALSE(parse_hello_reply(json{{"HTTP", 1}}, ec, why));
    CHECK(ec == client_errc::protocol_error);
  }

  TEST_CASE("errors travel as {category, code, message}") {
    std::string message;
    CHECK(decode_error(encode_error(server_errc::key_not_found, "no 'x'"), message) ==
          server_errc::key_not_found);
    CHECK(message == "no 'x'");
    CHECK(decode_error(encode_error(client_errc::timeout, ""), message) == client_errc::timeout);
    // A local category (here: generic) does not cross the wire as a raw integer.
    CHECK(decode_error(encode_error(make_error_code(std::errc::io_error), "disk"), message) ==
          server_errc::internal);
    CHECK(decode_error(json{{"c", "mysql"}, {"n", 1}, {"m", "?"}}, message) ==
          client_errc::protocol_error);
  }
}

// The fast MessagePack decoder gives what nlohmann's from_msgpack gives, for every width of
// every type, and refuses what it refuses.
#include "protocol/msgpack.hpp"

#include <random>

namespace {

nlohmann::json random_value(std::mt19937& rng, int depth) {
  using nlohmann::json;
  std::uniform_int_distribution<int> kind(0, depth > 3 ? 7 : 9);
  auto big = [&] { return std::uniform_int_distribution<std::size_t>(0, 70000)(rng); };
  switch (kind(rng)) {
    case 0: return nullptr;
    case 1: return std::uniform_int_distribution<int>(0, 1)(rng) == 1;
    case 2: {
      const std::uint64_t shifts[] = {0, 7, 8, 15, 16, 31, 32, 63};
      return static_cast<std::uint64_t>(rng()) >> shifts[rng() % 8];
    }
    case 3: {
      const int shifts[] = {58, 57, 49, 33, 1};
      return -(static_cast<std::int64_t>(static_cast<std::uint64_t>(rng()) >> shifts[rng() % 5])) - 1;
    }
    case 4: return std::uniform_real_distribution<double>(-1e9, 1e9)(rng);
    case 5: {
      const std::size_t sizes[] = {0, 5, 31, 32, 255, 256, 65535, 65536};
      return std::string(rng() % 3 == 0 ? big() : sizes[rng() % 8], 'x');
    }
    case 6: {
      const std::size_t sizes[] = {0, 1, 2, 4, 8, 16, 255, 256, 70000};
      std::vector<std::uint8_t> b(sizes[rng() % 9], 7);
      return rng() % 2 ? json::binary(b) : json::binary(b, static_cast<std::uint8_t>(rng() % 128));
    }
    case 7: return json::array();
    case 8: {
      json a = json::array();
      const std::size_t n = rng() % 20 == 0 ? 70000 : rng() % 17;
      for (std::size_t i = 0; i < n; ++i) a.push_back(n > 100 ? json(i) : random_value(rng, depth + 1));
      return a;
    }
    default: {
      json o = json::object();
      const std::size_t n = rng() % 17;
      for (std::size_t i = 0; i < n; ++i) {
        // Keys of every string form: fixstr, str8 (40 bytes), str16 (300 bytes).
        const std::size_t r = rng() % 6;
        const std::string prefix = r == 0 ? std::string(40, 'q') : r == 1 ? std::string(300, 'z') : "k";
        o[prefix + std::to_string(i)] = random_value(rng, depth + 1);
      }
      return o;
    }
  }
}

}  // namespace

TEST_SUITE("protocol") {
  TEST_CASE("decode_msgpack agrees with nlohmann's decoder") {
    std::mt19937 rng(12345);
    for (int i = 0; i < 300; ++i) {
      const nlohmann::json v = random_value(rng, 0);
      const auto bytes = nlohmann::json::to_msgpack(v);
      const std::string_view view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      const auto ours = zproc::protocol::decode_msgpack(view);
      const auto theirs = nlohmann::json::from_msgpack(bytes, true, false);
      REQUIRE(!ours.is_discarded());
      CHECK(ours == theirs);
      CHECK(ours == v);
      // Cut short, or with a byte too many: refused by both.
      if (!bytes.empty()) {
        const auto cut = view.substr(0, rng() % bytes.size());
        CHECK(zproc::protocol::decode_msgpack(cut).is_discarded());
        std::string longer(view);
        longer.push_back('\0');
        CHECK(zproc::protocol::decode_msgpack(longer).is_discarded());
      }
    }
  }

  TEST_CASE("append_msgpack writes the bytes of nlohmann's to_msgpack") {
    std::mt19937 rng(777);
    const auto ours = [](const nlohmann::json& v) {
      std::string out;
      zproc::protocol::append_msgpack(out, v);
      return out;
    };
    const auto theirs = [](const nlohmann::json& v) {
      const auto b = nlohmann::json::to_msgpack(v);
      return std::string(b.begin(), b.end());
    };
    for (int i = 0; i < 300; ++i) {
      const nlohmann::json v = random_value(rng, 0);
      REQUIRE(ours(v) == theirs(v));
    }
    // Every width's edges, floats that are exact in 32 bits and those that are not.
    using nlohmann::json;
    const std::vector<json> edges = {
        0, 127, 128, 255, 256, 65535, 65536, 4294967295u, 4294967296u,
        std::numeric_limits<std::uint64_t>::max(), -1, -32, -33, -128, -129, -32768, -32769,
        std::int64_t{-2147483648LL}, std::int64_t{-2147483649LL},
        std::numeric_limits<std::int64_t>::min(), 0.0, -0.0, 1.5, 0.1, 1e300, -1e-300,
        std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN(),
        static_cast<double>(std::numeric_limits<float>::max()), json::array(),
        json::array({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}),
        json::array({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}), json::object()};
    for (const auto& v : edges) {
      CAPTURE(v.dump());
      CHECK(ours(v) == theirs(v));
    }
    for (const std::size_t n : {0u, 1u, 2u, 3u, 4u, 8u, 16u, 17u, 255u, 256u, 65535u, 65536u}) {
      const std::vector<std::uint8_t> bytes(n, 9);
      CHECK(ours(json::binary(bytes)) == theirs(json::binary(bytes)));
      CHECK(ours(json::binary(bytes, 5)) == theirs(json::binary(bytes, 5)));
      CHECK(ours(std::string(n, 'y')) == theirs(std::string(n, 'y')));
    }
    json wide = json::object();
    for (int i = 0; i < 16; ++i) wide["k" + std::to_string(i)] = i;
    CHECK(ours(wide) == theirs(wide));
  }

  TEST_CASE("decode_msgpack refuses malformed input") {
    using zproc::protocol::decode_msgpack;
    CHECK(decode_msgpack("").is_discarded());
    CHECK(decode_msgpack("\xc1").is_discarded());                  // never used
    CHECK(decode_msgpack("\x81\x01\x02").is_discarded());          // a key that is not a string
    CHECK(decode_msgpack("\xdd\xff\xff\xff\xff").is_discarded());  // an array longer than the input
    CHECK(decode_msgpack(std::string(100000, '\x91')).is_discarded());  // nested too deep
    // Nested arrays each announcing the rest of the frame: refused without allocating it.
    std::string greedy;
    for (int i = 0; i < 500; ++i) greedy += std::string("\xdd\x00\x7f\xff\xff", 5);
    greedy.resize(8 * 1024 * 1024, '\xc0');
    CHECK(decode_msgpack(greedy).is_discarded());
    CHECK(decode_msgpack("\x92\x01\x02") == nlohmann::json::array({1, 2}));
    CHECK(decode_msgpack("\x81\xd9\x05" "ab").is_discarded());  // a key cut short (str8)
    CHECK(decode_msgpack("\x81\xda\x00").is_discarded());    // a key's length cut short
    CHECK(decode_msgpack(std::string("\x81\xc0\x01", 3)).is_discarded());  // a nil key
    // A key given twice: the last value stands.
    CHECK(decode_msgpack("\x82\xa1k\x01\xa1k\x02") == nlohmann::json{{"k", 2}});
  }

  TEST_CASE("msgpack_reader: skip() steps over exactly what decode_msgpack() accepts") {
    using zproc::protocol::msgpack_reader;
    const auto skips = [](std::string_view bytes) {
      msgpack_reader r(bytes);
      return r.skip() && r.at_end();
    };
    std::mt19937 rng(4242);
    for (int i = 0; i < 300; ++i) {
      const auto bytes = nlohmann::json::to_msgpack(random_value(rng, 0));
      const std::string_view view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      CHECK(skips(view));
      const auto cut = view.substr(0, rng() % bytes.size());
      CHECK(!skips(cut));
      std::string longer(view);
      longer.push_back('\0');
      CHECK(!skips(longer));
    }
    for (const std::string& bad :
         {std::string(), std::string("\xc1"), std::string("\x81\x01\x02"),
          std::string("\xdd\xff\xff\xff\xff"), std::string(100000, '\x91'),
          std::string("\x81\xd9\x05" "ab"), std::string("\x81\xc0\x01", 3)}) {
      CHECK(!skips(bad));
      CHECK(zproc::protocol::decode_msgpack(bad).is_discarded());
    }
    // Nesting: the same limit as decode_msgpack's.
    const std::string deepest = std::string(zproc::protocol::max_msgpack_depth, '\x91') + "\x01";
    CHECK(skips(deepest));
    CHECK(!zproc::protocol::decode_msgpack(deepest).is_discarded());
    CHECK(!skips("\x91" + deepest));
    CHECK(zproc::protocol::decode_msgpack("\x91" + deepest).is_discarded());
  }

  TEST_CASE("msgpack_reader: scalars of any width, and a value of another type is left unread") {
    using zproc::protocol::msgpack_reader;
    using nlohmann::json;
    for (const json& v : {json(0), json(127), json(128), json(65536), json(4294967296u),
                          json(std::numeric_limits<std::uint64_t>::max()), json(-1), json(-129),
                          json(std::numeric_limits<std::int64_t>::min())}) {
      CAPTURE(v.dump());
      const auto b = json::to_msgpack(v);
      const std::string bytes(b.begin(), b.end());
      msgpack_reader u(bytes);
      std::uint64_t uv = 0;
      if (v.is_number_unsigned() || v.get<std::int64_t>() >= 0) {
        REQUIRE(u.unsigned_integer(uv));
        CHECK(uv == v.get<std::uint64_t>());
      } else {
        CHECK(!u.unsigned_integer(uv));
        CHECK(u.skip());  // nothing was consumed
      }
      msgpack_reader s(bytes);
      std::int64_t sv = 0;
      if (v.is_number_integer() && !(v.is_number_unsigned() && v.get<std::uint64_t>() >
                                                                 std::numeric_limits<std::int64_t>::max())) {
        REQUIRE(s.signed_integer(sv));
        CHECK(sv == v.get<std::int64_t>());
      } else {
        CHECK(!s.signed_integer(sv));
      }
    }
    // A signed encoding of a non-negative number reads as unsigned too.
    const std::string int16_256("\xd1\x01\x00", 3);
    msgpack_reader r(int16_256);
    std::uint64_t v = 0;
    CHECK(r.unsigned_integer(v));
    CHECK(v == 256);
    msgpack_reader t("\xa3" "abc");
    bool b = false;
    std::string_view sv;
    CHECK(!t.boolean(b));
    CHECK(!t.nil());
    REQUIRE(t.string(sv));
    CHECK(sv == "abc");
    CHECK(t.at_end());
  }

  TEST_CASE("packed_request: the frame of the json request with its id") {
    using nlohmann::json;
    const json req{{"o", "set"}, {"n", "ns"}, {"k", "key"}, {"v", {{"a", {1, 2.5, "x"}}}}};
    auto packed = zproc::protocol::packed_request::from(req);
    CHECK(packed.code == zproc::protocol::op::set);
    CHECK(packed.to_json() == req);
    packed.add_unsigned("max", 512);
    packed.add_bool("pin", true);
    std::string framed;
    const std::size_t size = zproc::protocol::append_request_frame(framed, packed, 77);
    json with_id = req;
    with_id["i"] = 77;
    with_id["max"] = 512;
    with_id["pin"] = true;
    REQUIRE(framed.size() == size + zproc::protocol::frame_header_size);
    zproc::protocol::frame_decoder d;
    auto space = d.prepare(framed.size());
    std::memcpy(space.data(), framed.data(), framed.size());
    d.commit(framed.size());
    std::string_view payload;
    REQUIRE(d.next(payload) == zproc::protocol::frame_decoder::status::frame);
    CHECK(zproc::protocol::decode_msgpack(payload) == with_id);
  }

  TEST_CASE("parse_reply: id, error and the result's bytes, without decoding the result") {
    using nlohmann::json;
    const auto parse = [](const json& msg, zproc::protocol::reply_view& out) {
      static std::vector<std::string> keep;  // the views point into these
      const auto b = json::to_msgpack(msg);
      keep.emplace_back(b.begin(), b.end());
      return zproc::protocol::parse_reply(keep.back(), out);
    };
    zproc::protocol::reply_view r;
    const json result{{"a", {1, 2, {{"b", nullptr}}}}};
    REQUIRE(parse(json{{"i", 7}, {"r", result}, {"rv", 3}}, r));
    CHECK(r.id == 7);
    CHECK(!r.error);
    CHECK(zproc::protocol::decode_msgpack(r.result) == result);
    REQUIRE(parse(json{{"i", 8}, {"e", {{"c", "zproc.server"}, {"n", 1}, {"m", "x"}}}}, r));
    CHECK(r.id == 8);
    REQUIRE(r.error);
    CHECK((*r.error)["m"] == "x");
    CHECK(r.result.empty());
    REQUIRE(parse(json{{"i", "seven"}, {"r", 1}}, r));  // an id that is not a count: 0
    CHECK(r.id == 0);
    const std::string signed_id("\x82\xa1i\xd0\x05\xa1r\x01", 8);  // i: int8 5
    REQUIRE(zproc::protocol::parse_reply(signed_id, r));
    CHECK(r.id == 0);  // as json read it: not number_unsigned
    CHECK(!parse(json::array({1}), r));
    const std::string deep = "\x81\xa1r" + std::string(zproc::protocol::max_msgpack_depth, '\x91') + "\x01";
    CHECK(!zproc::protocol::parse_reply(deep, r));  // as decode_msgpack() refuses it
    CHECK(zproc::protocol::decode_msgpack(deep).is_discarded());
    CHECK(!zproc::protocol::parse_reply("\x81\xa1r\x92\x01", r));  // cut short
    CHECK(r.result_checked);

    // Not checking a last result (a watch reply's decoder checks it as it reads): the rest of
    // the payload, for check_result() to judge as parse_reply() would have.
    using zproc::protocol::check_result;
    REQUIRE(zproc::protocol::parse_reply(deep, r, false));
    CHECK(!r.result_checked);
    CHECK(!check_result(r.result));
    const std::string cut("\x81\xa1r\x92\x01", 5);
    REQUIRE(zproc::protocol::parse_reply(cut, r, false));
    CHECK(!check_result(r.result));
    const std::string trailing("\x81\xa1r\x01\x02", 5);  // a value, then a byte more
    REQUIRE(zproc::protocol::parse_reply(trailing, r, false));
    CHECK(r.result == std::string_view("\x01\x02", 2));
    CHECK(!check_result(r.result));
    CHECK(!zproc::protocol::parse_reply(trailing, r));  // (checked: refused)
    const auto b = json::to_msgpack(json{{"i", 9}, {"r", result}});  // "r" sorts last
    const std::string good(b.begin(), b.end());
    REQUIRE(zproc::protocol::parse_reply(good, r, false));
    CHECK(r.id == 9);
    CHECK(!r.result_checked);
    CHECK(check_result(r.result));
    CHECK(zproc::protocol::decode_msgpack(r.result) == result);
    const auto c = json::to_msgpack(json{{"i", 7}, {"r", result}, {"rv", 3}});
    const std::string with_revision(c.begin(), c.end());
    REQUIRE(zproc::protocol::parse_reply(with_revision, r, false));  // not last: checked
    CHECK(r.result_checked);
  }
}

#include "protocol/request_reader.hpp"
#include "protocol/value_check.hpp"

TEST_SUITE("protocol") {
  TEST_CASE("peek_op: a request's op, read without the rest of it") {
    using nlohmann::json;
    using zproc::protocol::op;
    using zproc::protocol::peek_op;
    const auto packed = [](const json& j) {
      const auto b = json::to_msgpack(j);
      return std::string(b.begin(), b.end());
    };
    CHECK(peek_op(packed(json{{"i", 1}, {"o", "set"}, {"n", "ns"}, {"v", {1, 2}}})) == op::set);
    // (json sorts keys: "a" and "i" come before "o", "z" after it.)
    CHECK(peek_op(packed(json{{"a", {{"x", {1, 2}}}}, {"i", 1}, {"o", "watch"}, {"z", 1}})) ==
          op::watch);
    CHECK(peek_op(packed(json{{"i", 1}, {"o", "more"}})) == op::more);
    CHECK(!peek_op(packed(json{{"i", 1}, {"o", "nope"}})));
    CHECK(!peek_op(packed(json{{"i", 1}, {"o", 5}})));
    CHECK(!peek_op(packed(json{{"i", 1}, {"n", "ns"}})));
    CHECK(!peek_op(packed(json::array({"o", "set"}))));
    CHECK(!peek_op(std::string("\x82\xa1i\x01\xa1o", 6)));  // cut short
    CHECK(!peek_op(""));
  }
}

TEST_SUITE("protocol") {
  TEST_CASE("value check: UTF-8 and nesting") {
    using zproc::protocol::valid_utf8;
    CHECK(valid_utf8(""));
    CHECK(valid_utf8("cookies"));
    CHECK(valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8d\xaa"));  // é € 🍪
    CHECK_FALSE(valid_utf8("\xff"));
    CHECK_FALSE(valid_utf8("\x80"));                 // a continuation byte first
    CHECK_FALSE(valid_utf8("caf\xc3"));              // cut short
    CHECK_FALSE(valid_utf8("\xc0\xaf"));             // overlong '/'
    CHECK_FALSE(valid_utf8("\xe0\x80\xaf"));         // overlong
    CHECK_FALSE(valid_utf8("\xed\xa0\x80"));         // a surrogate
    CHECK_FALSE(valid_utf8("\xf4\x90\x80\x80"));     // above U+10FFFF
    CHECK_FALSE(valid_utf8("\xc3\x28"));             // a bad continuation

    using zproc::protocol::unstorable;
    json ok = {{"o", "set"}, {"k", "caf\xc3\xa9"}, {"v", {1, "two", {{"three", 3}}}}};
    CHECK_FALSE(unstorable(ok));
    json bad_value = {{"o", "set"}, {"k", "k"}, {"v", {"fine", std::string("\xff\xfe")}}};
    REQUIRE(unstorable(bad_value));
    CHECK(unstorable(bad_value)->find("not valid UTF-8") != std::string::npos);
    CHECK(unstorable(bad_value)->find("\\xff\\xfe") != std::string::npos);
    json bad_key = {{"o", "update"}, {"v", {{std::string("k\xc0"), 1}}}};
    CHECK(unstorable(bad_key)->find("key") != std::string::npos);
    json binary = {{"v", json::binary({0xff, 0x00, 0xfe})}};
    CHECK_FALSE(unstorable(binary));  // bytes are bytes

    auto nested = [](std::size_t levels) {
      json v = 1;
      for (std::size_t i = 1; i < levels; ++i) v = json::array({std::move(v)});
      return v;
    };
    CHECK_FALSE(zproc::protocol::deeper_than(nested(10), 10));
    CHECK(zproc::protocol::deeper_than(nested(11), 10));
    CHECK_FALSE(unstorable(nested(zproc::protocol::max_request_depth)));
    REQUIRE(unstorable(nested(zproc::protocol::max_request_depth + 1)));
    CHECK(unstorable(nested(zproc::protocol::max_request_depth + 1))->find("deeper") !=
          std::string::npos);
  }
}
