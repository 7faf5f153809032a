// zproc ping | get | set | del | keys | dump: one blocking client, one request.
#include "cli.hpp"

#include <zproc/client.hpp>
#include <zproc/state.hpp>

#include <iostream>
#include <optional>

namespace zproc::cli {

namespace {

json parse_json_argument(const std::string& argument) {
  const std::string text = read_value_argument(argument);
  json v = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) {
    const std::string shown = text.size() > 80 ? text.substr(0, 80) + "..." : text;
    throw usage_error{"not valid JSON: " + shown + " (strings need quotes: '\"text\"')", {}};
  }
  return v;
}

}  // namespace

int run_state_command(const arguments& args) {
  const std::string& cmd = args.command;
  // The values are read before touching the network.
  json value;
  if (cmd == "set" || cmd == "cas") value = parse_json_argument(args.value_text);
  json delta = 1;
  if (cmd == "incr" && !args.value_text.empty()) {
    delta = parse_json_argument(args.value_text);
    if (!delta.is_number()) throw usage_error{"DELTA must be a number", "see 'zproc incr --help'"};
  }
  std::optional<json> expected;
  if (cmd == "cas" && args.expected_text != "absent")
    expected = parse_json_argument(args.expected_text);

  client c;
  c.connect(args.require_address());
  state st(c, args.ns);
  if (cmd == "ping") {
    std::cout << c.ping() << "\n";
  } else if (cmd == "get" && args.positional.size() == 1) {
    std::cout << st.get(args.positional[0]).dump() << "\n";
  } else if (cmd == "get") {  // several: one object of those that exist
    json found = json::object();
    std::string missing;
    for (const auto& k : args.positional) {
      error_code ec;
      diagnostics diag;
      json v = st.get(k, ec, diag);
      if (ec == server_errc::key_not_found) {
        missing += (missing.empty() ? "'" : ", '") + k + "'";
      } else if (ec) {
        throw zproc::error(ec, diag.message());
      } else {
        found[k] = std::move(v);
      }
    }
    std::cout << found.dump() << "\n";
    if (!missing.empty()) {
      std::cerr << "zproc: not found in namespace '" << args.ns << "': " << missing << "\n";
      return exit_code::not_found;
    }
  } else if (cmd == "set") {
    std::cout << st.set(args.key, std::move(value)) << "\n";
  } else if (cmd == "del") {
    std::cout << st.erase(args.key) << "\n";
  } else if (cmd == "keys") {
    // Page by page: a namespace of any size (one reply of all keys stops at ~800,000).
    st.for_each_key([](const std::string& k) { std::cout << json(k).dump() << "\n"; },
                    {.prefix = args.prefix, .limit = 10'000});
  } else if (cmd == "incr") {
    std::cout << st.increment(args.key, delta).dump() << "\n";
  } else if (cmd == "cas") {
    const bool done = st.compare_and_set(args.key, expected, value);
    std::cout << (done ? "true" : "false") << "\n";
    return done ? exit_code::ok : exit_code::unchanged;  // scripts can test it
  } else if (cmd == "dump") {
    // The object as copy().dump() would print it, written page by page.
    std::cout << '{';
    const char* sep = "";
    st.for_each_item(
        [&](const std::string& k, const json& v) {
          std::cout << sep << json(k).dump() << ':' << v.dump();
          sep = ",";
        },
        {.prefix = args.prefix, .limit = 10'000});
    std::cout << "}\n";
  }
  return exit_code::ok;
}

}  // namespace zproc::cli
