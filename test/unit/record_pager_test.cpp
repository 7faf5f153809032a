// Listing process records page by page without I/O: the requests the pager makes, scripted
// pages (full, short, empty), and a malformed page at every position.
#include "client/record_pager.hpp"
#include "protocol/ops.hpp"
#include "protocol/process_records.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using zproc::json;
using zproc::detail::record_pager;
namespace wire = zproc::protocol::process;
namespace rf = zproc::protocol::process::record_field;

namespace {

json record(std::uint64_t id) {
  return json{{rf::id, id}, {rf::pid, 1000 + id}, {rf::target, "t"}, {rf::state, "running"}};
}

json page(std::initializer_list<std::uint64_t> ids) {
  json p = json::array();
  for (auto id : ids) p.push_back(record(id));
  return p;
}

}  // namespace

TEST_SUITE("client_algorithms") {
  TEST_CASE("record_pager: asks after the last id, ends on a short page") {
    record_pager pager(2);
    json r = pager.request();
    CHECK(r[wire::after] == 0);
    CHECK(r[wire::max] == 2);
    zproc::error_code ec;
    std::string message;
    CHECK(pager.on_reply(page({1, 2}), ec, message));  // full: more may follow
    CHECK(!ec);
    CHECK(pager.request()[wire::after] == 2);
    CHECK(pager.on_reply(page({5, 9}), ec, message));
    CHECK(pager.request()[wire::after] == 9);
    CHECK_FALSE(pager.on_reply(page({12}), ec, message));  // short: the end
    CHECK(!ec);
    const auto got = pager.take();
    REQUIRE(got.size() == 5);
    CHECK(got.front().id == 1);
    CHECK(got.front().pid == 1001);
    CHECK(got.back().id == 12);
  }

  TEST_CASE("record_pager: an empty first page is an empty list; page size at least 1") {
    record_pager pager(0);
    CHECK(pager.request()[wire::max] == 1);
    zproc::error_code ec;
    std::string message;
    CHECK_FALSE(pager.on_reply(json::array(), ec, message));
    CHECK(!ec);
    CHECK(pager.take().empty());
  }

  TEST_CASE("record_pager: a malformed page fails with protocol_error at any position") {
    const std::vector<json> bad = {
        json::object(),                              // not an array
        json("records"),                             // not an array
        page({1, 2, 3}),                             // more than asked for
        json::array({record(1), json{{rf::pid, 5}}}),  // a record without an id
        json::array({record(1), json(7)}),           // not a record
        json::array({record(1), json{{rf::id, "x"}}}),  // an id that is not a number
        page({2, 2}),                                // an id that does not go up
        page({3, 1}),
    };
    for (std::size_t first_pages = 0; first_pages < 2; ++first_pages) {
      for (const auto& b : bad) {
        CAPTURE(b.dump());
        CAPTURE(first_pages);
        record_pager pager(2);
        zproc::error_code ec;
        std::string message;
        if (first_pages == 1) {
          REQUIRE(pager.on_reply(page({10, 20}), ec, message));
        }
        json copy = b;
        if (first_pages == 1 && b.is_array() && b.size() == 2 && b[0].is_object() &&
            b[0].value(rf::id, 0) == 1) {
          copy[0][rf::id] = 21;  // valid after the first page; the second entry is the fault
        }
        CHECK_FALSE(pager.on_reply(std::move(copy), ec, message));
        CHECK(ec == zproc::client_errc::protocol_error);
        CHECK(message.find("proc_list") != std::string::npos);
        CHECK(pager.take().empty());  // nothing half-listed
      }
    }
  }

  TEST_CASE("record_pager: a page that starts at or before the last id received is refused") {
    record_pager pager(2);
    zproc::error_code ec;
    std::string message;
    REQUIRE(pager.on_reply(page({4, 5}), ec, message));
    CHECK_FALSE(pager.on_reply(page({5, 6}), ec, message));  // would page for ever
    CHECK(ec == zproc::client_errc::protocol_error);
  }
}
