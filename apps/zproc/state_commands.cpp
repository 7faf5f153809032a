// zproc ping | get | set | del | keys | dump: one blocking client, one request.
#include "cli.hpp"

#include <zproc/client.hpp>
#include <zproc/state.hpp>

#include <iostream>
#include <optional>

namespace zproc::cli {

namespace {

json parse_json_argument(const std::string& text) {
  json v = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded())
    throw usage_error{"not valid JSON: " + text + " (strings need quotes: '\"text\"')"};
  return v;
}

}  // namespace

int run_state_command(const arguments& args) {
  const std::string& cmd = args.command;
  static const char* const known[] = {"ping", "get", "set", "del", "keys", "dump", "incr", "cas"};
  if (std::find(std::begin(known), std::end(known), cmd) == std::end(known))
    throw usage_error{"unknown command '" + cmd + "'"};

  // Check the arguments before touching the network.
  json value;
  if (cmd == "ping" || cmd == "keys" || cmd == "dump") args.expect(0, "no arguments");
  if (cmd == "get" || cmd == "del") args.expect(1, "one argument: KEY");
  if (cmd == "set") {
    args.expect(2, "two arguments: KEY JSON");
    value = parse_json_argument(args.positional[1]);
  }
  json delta = 1;
  if (cmd == "incr") {
    if (args.positional.size() != 1 && args.positional.size() != 2)
      throw usage_error{"'incr' takes KEY [DELTA]"};
    if (args.positional.size() == 2) delta = parse_json_argument(args.positional[1]);
    if (!delta.is_number()) throw usage_error{"DELTA must be a number"};
  }
  std::optional<json> expected;
  if (cmd == "cas") {
    args.expect(3, "three arguments: KEY EXPECTED DESIRED (EXPECTED 'absent': create only)");
    if (args.positional[1] != "absent") expected = parse_json_argument(args.positional[1]);
    value = parse_json_argument(args.positional[2]);
  }

  client c;
  c.connect(args.require_address());
  state st(c, args.ns);
  if (cmd == "ping") {
    std::cout << c.ping() << "\n";
  } else if (cmd == "get") {
    std::cout << st.get(args.positional[0]).dump() << "\n";
  } else if (cmd == "set") {
    std::cout << st.set(args.positional[0], std::move(value)) << "\n";
  } else if (cmd == "del") {
    std::cout << st.erase(args.positional[0]) << "\n";
  } else if (cmd == "keys") {
    // Page by page: a namespace of any size (one reply of all keys stops at ~800,000).
    st.for_each_key([](const std::string& k) { std::cout << json(k).dump() << "\n"; },
                    {.prefix = args.prefix, .limit = 10'000});
  } else if (cmd == "incr") {
    std::cout << st.increment(args.positional[0], delta).dump() << "\n";
  } else if (cmd == "cas") {
    const bool done = st.compare_and_set(args.positional[0], expected, value);
    std::cout << (done ? "true" : "false") << "\n";
    return done ? 0 : 3;  // scripts can test it
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
  return 0;
}

}  // namespace zproc::cli
