// The guide's "Big namespaces, page by page": a namespace read a page at a time, blocking and
// with co_await. Fails (exit code 1) if a page misses or repeats a key.
#include <zproc/zproc.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <iostream>
#include <string>

boost::asio::awaitable<std::uint64_t> count_users(zproc::client& c) {
  zproc::state users(c, "users");
  std::uint64_t count = 0;
  zproc::page_request req{.prefix = "user:", .limit = 10'000};
  for (;;) {
    zproc::key_page page = co_await users.async_keys_page(req);
    count += page.keys.size();
    if (!page.next) break;
    req.after = std::move(page.next);
  }
  co_return count;
}

int main() {
  zproc::server_thread server;
  zproc::client c;
  c.connect(server.address());
  zproc::state users(c, "users");
  constexpr long n = 300'000;  // ~5 MB of keys and values: past 800,000, keys() would fail
  for (long i = 0; i < n;) {
    zproc::json batch = zproc::json::object();
    for (const long end = i + 50'000; i < end; ++i) batch["user:" + std::to_string(i)] = i;
    users.update(std::move(batch));
  }
  users.set("admin", -1);  // not a "user:"

  // One page at a time: the pairs whose key starts with "user:", 10,000 per request.
  long total = 0;
  zproc::page_request req{.prefix = "user:", .limit = 10'000};
  for (;;) {
    zproc::item_page page = users.items_page(req);
    for (const auto& [key, value] : page.items) total += value.get<long>();
    if (!page.next) break;     // that was the last page
    req.after = page.next;     // the next one starts after this page's last key
  }

  // Or let for_each_key() / for_each_item() turn the pages.
  std::string last;
  std::uint64_t keys = users.for_each_key([&](const std::string& key) { last = key; },
                                          {.prefix = "user:"});

  boost::asio::io_context ioc;
  std::uint64_t counted = 0;
  boost::asio::co_spawn(ioc, [&]() -> boost::asio::awaitable<void> {
    zproc::client ac(ioc.get_executor());
    co_await ac.async_connect(server.address());
    counted = co_await count_users(ac);
  }, boost::asio::detached);
  ioc.run();

  std::cout << keys << " users, " << counted << " counted with co_await, total " << total << "\n";
  const bool ok = keys == n && counted == n && total == n * (n - 1) / 2 && last == "user:99999";
  return ok ? 0 : 1;
}
