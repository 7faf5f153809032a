// The zproc command: each subcommand against a real server, and its errors.
#include "protocol/ops.hpp"
#include "protocol/process_records.hpp"
#include "support/server_process.hpp"

#include <zproc/client.hpp>
#include <zproc/process_record.hpp>
#include <zproc/state.hpp>

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>
#include <sstream>

#include <sys/stat.h>
#include <unistd.h>

using zproc::test::run_program;
using namespace std::chrono_literals;

namespace {
zproc::test::run_result zproc_cmd(std::vector<std::string> args,
                                  std::vector<std::string> env = {}) {
  std::vector<std::string> argv{ZPROC_EXE};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, 20s, env);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

/// What a supervisor sends to register a process (the CLI only reads records).
std::uint64_t proc_start(const zproc::client& c, std::int64_t pid, const std::string& target) {
  nlohmann::json req = zproc::protocol::make(zproc::protocol::op::proc_start);
  req["record"] = {{"pid", pid},     {"ppid", 100},   {"target", target},
                   {"n", "default"}, {"host", "box"}, {"kind", "target"},
                   {"attempt", 1}};
  return zproc::detail::call<std::uint64_t>(
      c.impl(), zproc::detail::request_access::wrap(std::move(req)));
}
void proc_update(const zproc::client& c, std::uint64_t id, nlohmann::json record) {
  nlohmann::json req = zproc::protocol::make(zproc::protocol::op::proc_update);
  req[zproc::protocol::process::id] = id;
  req["record"] = std::move(record);
  zproc::detail::call<nlohmann::json>(c.impl(),
                                      zproc::detail::request_access::wrap(std::move(req)));
}
}  // namespace

namespace {
/// Whether `line` matches `pattern`, where "…" in the pattern stands for any text.
bool matches(const std::string& pattern, const std::string& line) {
  const std::string any = "\u2026";
  std::size_t p = 0, l = 0;
  bool first = true;
  while (true) {
    const std::size_t next = pattern.find(any, p);
    const std::string piece = pattern.substr(p, next == std::string::npos ? std::string::npos : next - p);
    if (first) {
      if (line.compare(0, piece.size(), piece) != 0) return false;
      l = piece.size();
      first = false;
    } else if (next == std::string::npos) {
      return line.size() >= l + piece.size() &&
             line.compare(line.size() - piece.size(), piece.size(), piece) == 0;
    } else {
      const std::size_t at = line.find(piece, l);
      if (at == std::string::npos) return false;
      l = at + piece.size();
    }
    if (next == std::string::npos) return l == line.size();
    p = next + any.size();
  }
}

}  // namespace

TEST_SUITE("cli") {
  TEST_CASE("docs/cli.md: every console session runs as shown") {
    std::ifstream doc(ZPROC_DOCS_DIR "/cli.md");
    REQUIRE(doc);
    zproc::test::server_process srv;
    const std::string bin_dir = std::filesystem::path(ZPROC_EXE).parent_path().string();
    const std::vector<std::string> env = {"ZPROC_ADDRESS=" + srv.ipc(),
                                          "PATH=" + bin_dir + ":/usr/bin:/bin"};
    // The commands of the ```console blocks, each with the lines it should print.
    struct step {
      std::string command;
      std::vector<std::string> expected;
      int exit_code = 0;
    };
    std::vector<step> steps;
    bool in_console = false;
    for (std::string line; std::getline(doc, line);) {
      if (line == "```console") {
        in_console = true;
      } else if (line.rfind("```", 0) == 0) {
        in_console = false;
      } else if (in_console && line.rfind("$ ", 0) == 0) {
        steps.push_back({line.substr(2), {}, 0});
      } else if (in_console && !steps.empty()) {
        if (line.rfind("(exit code ", 0) == 0) {
          steps.back().exit_code = std::stoi(line.substr(11));
        } else {
          steps.back().expected.push_back(line);
        }
      }
    }
    CHECK(steps.size() >= 25);
    for (const auto& s : steps) {
      INFO("$ " << s.command);
      auto r = run_program({"/bin/sh", "-c", s.command}, 20s, env);
      INFO("stdout: " << r.out);
      INFO("stderr: " << r.err);
      CHECK(r.exit_code == s.exit_code);
      const auto got = lines_of(r.out + r.err);
      REQUIRE(got.size() == s.expected.size());
      for (std::size_t i = 0; i < got.size(); ++i) {
        INFO("line " << i << ": " << got[i]);
        CHECK(matches(s.expected[i], got[i]));
      }
    }
  }

  TEST_CASE("help: the whole text, one command's, and an unknown one; --version") {
    auto all = zproc_cmd({"--help"});
    CHECK(all.exit_code == 0);
    CHECK(all.out.find("Exit codes:") != std::string::npos);
    for (const char* cmd : {"server", "ping", "get", "set", "del", "keys", "dump", "incr", "cas",
                            "watch", "history", "ps", "workers"}) {
      INFO(cmd);
      CHECK(all.out.find("\n  " + std::string(cmd) + " ") != std::string::npos);
      auto one = zproc_cmd({cmd, "--help"});
      CHECK(one.exit_code == 0);
      CHECK(one.out.find("Usage: zproc " + std::string(cmd)) != std::string::npos);
      CHECK(one.out.find("\nGlobal options:\n") != std::string::npos);
      CHECK(one.out.find("--address") != std::string::npos);
      CHECK(zproc_cmd({"help", cmd}).out == one.out);
    }
    CHECK(zproc_cmd({"server", "--help"}).out.find("--data-dir") != std::string::npos);
    CHECK(zproc_cmd({"get", "--help"}).out.find("--data-dir") == std::string::npos);
    CHECK(zproc_cmd({"help", "nope"}).exit_code == 2);
    CHECK(run_program({ZPROC_EXE}, 20s).exit_code == 2);  // no command
    auto version = zproc_cmd({"--version"});
    CHECK(version.exit_code == 0);
    CHECK(std::regex_match(version.out, std::regex("zproc [0-9]+\\.[0-9]+\\.[0-9]+\n")));
  }

  TEST_CASE("usage errors: exit code 2 and a hint; --opt=value, --, options of other commands") {
    zproc::test::server_process srv;
    const std::string env = "ZPROC_ADDRESS=" + srv.ipc();
    // An option of another command is refused, not ignored.
    auto other = zproc_cmd({"set", "k", "1", "--listen", "foo"}, {env});
    CHECK(other.exit_code == 2);
    CHECK(other.err.find("--listen foo") != std::string::npos);
    CHECK(other.err.find("see 'zproc set --help'") != std::string::npos);
    CHECK(zproc_cmd({"get", "k", "--bogus=1"}, {env}).exit_code == 2);
    auto missing_value = zproc_cmd({"get", "k", "--address"}, {env});
    CHECK(missing_value.exit_code == 2);
    auto bad_choice = zproc_cmd({"server", "--listen", srv.ipc(), "--fsync", "sometimes"});
    CHECK(bad_choice.exit_code == 2);
    CHECK(bad_choice.err.find("always") != std::string::npos);
    auto no_threads = zproc_cmd({"server", "--listen", srv.ipc(), "--threads", "0"});
    CHECK(no_threads.exit_code == 2);
    CHECK(no_threads.err.find("--threads needs a number > 0") != std::string::npos);
    CHECK(zproc_cmd({"ping", "--log-level", "loud"}, {env}).exit_code == 2);
    CHECK(zproc_cmd({"ping", "extra"}, {env}).exit_code == 2);
    // --opt=value, global options before or after the command, and a key after --.
    CHECK(zproc_cmd({"--namespace=n1", "set", "k", "1"}, {env}).exit_code == 0);
    CHECK(zproc_cmd({"get", "k", "--namespace=n1", "--address=" + srv.tcp()}).out == "1\n");
    CHECK(zproc_cmd({"set", "--", "-dash", "2"}, {env}).exit_code == 0);
    CHECK(zproc_cmd({"get", "--", "-dash"}, {env}).out == "2\n");
    CHECK(zproc_cmd({"--log-level", "error", "ping"}, {env}).exit_code == 0);
    // Every command refuses an option it does not have, and one without its value.
    for (const char* cmd : {"server", "ping", "get", "set", "del", "keys", "dump", "incr", "cas",
                            "watch", "history", "ps", "workers"}) {
      INFO(cmd);
      auto r = zproc_cmd({cmd, "--bogus"}, {env});
      CHECK(r.exit_code == 2);
      CHECK(r.err.find("--bogus") != std::string::npos);
      CHECK(r.err.find("(see 'zproc " + std::string(cmd) + " --help')") != std::string::npos);
      CHECK(zproc_cmd({cmd, "--namespace"}, {env}).exit_code == 2);
    }
  }

  TEST_CASE("values from stdin ('-') and from a file ('@FILE'); several keys at once") {
    zproc::test::server_process srv;
    const std::string env = "ZPROC_ADDRESS=" + srv.ipc();
    auto sh = [&](const std::string& line) {
      return run_program({"/bin/sh", "-c", line}, 20s, {env});
    };
    const std::string z = std::string("'") + ZPROC_EXE + "'";
    CHECK(sh("echo 5 | " + z + " set five -").exit_code == 0);
    CHECK(zproc_cmd({"get", "five"}, {env}).out == "5\n");
    const std::string file = "/tmp/zproc-cli-value-" + std::to_string(::getpid()) + ".json";
    CHECK(sh("printf '{\"a\": [1, 2]}' > " + file).exit_code == 0);
    CHECK(zproc_cmd({"set", "obj", "@" + file}, {env}).exit_code == 0);
    CHECK(zproc_cmd({"get", "obj"}, {env}).out == R"({"a":[1,2]})" "\n");
    CHECK(zproc_cmd({"cas", "five", "@" + file, "6"}, {env}).exit_code == 4);  // not that value
    std::remove(file.c_str());
    auto no_file = zproc_cmd({"set", "x", "@" + file}, {env});
    CHECK(no_file.exit_code == 2);
    CHECK(no_file.err.find("cannot read") != std::string::npos);
    auto bad_stdin = sh("echo 'not json' | " + z + " set x -");
    CHECK(bad_stdin.exit_code == 2);
    CHECK(bad_stdin.err.find("not valid JSON") != std::string::npos);
    // A value of 10 MB on stdin: beyond the frame limit, one clear line (not an argv limit).
    auto big = sh("printf '\"%010000000d\"' 0 | " + z + " set big -");
    CHECK(big.exit_code == 1);
    CHECK(big.err.find("more than the maximum frame") != std::string::npos);
    // A value of 1 MB goes.
    CHECK(sh("printf '\"%01000000d\"' 0 | " + z + " set big -").exit_code == 0);
    CHECK(zproc_cmd({"get", "big"}, {env}).out.size() == 1'000'000 + 3);

    // get of several keys: one object of those that exist; exit code 3 names the missing.
    CHECK(zproc_cmd({"get", "five", "obj"}, {env}).out == R"({"five":5,"obj":{"a":[1,2]}})" "\n");
    auto some = zproc_cmd({"get", "five", "nope", "gone"}, {env});
    CHECK(some.exit_code == 3);
    CHECK(some.out == "{\"five\":5}\n");
    CHECK(some.err.find("'nope', 'gone'") != std::string::npos);
  }

  TEST_CASE("an unreachable server: exit code 1 and what to do") {
    auto r = zproc_cmd({"get", "x", "--address", "ipc:///tmp/zproc-nobody-listens.sock"});
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("cannot connect to ipc:///tmp/zproc-nobody-listens.sock") != std::string::npos);
    CHECK(r.err.find("zproc server --listen ADDR") != std::string::npos);
  }

  TEST_CASE("ping, set, get, keys, dump, del over --address and ZPROC_ADDRESS") {
    zproc::test::server_process srv;
    const std::string env = "ZPROC_ADDRESS=" + srv.ipc();

    auto r = zproc_cmd({"ping", "--address", srv.tcp()});
    CHECK(r.exit_code == 0);
    CHECK(r.out == std::to_string(srv.pid()) + "\n");

    CHECK(zproc_cmd({"set", "cookies", "5"}, {env}).out == "1\n");
    CHECK(zproc_cmd({"set", "who", R"({"name":"bob","tags":[1,2]})"}, {env}).out == "2\n");
    CHECK(zproc_cmd({"get", "cookies"}, {env}).out == "5\n");
    CHECK(zproc_cmd({"get", "who", "--address", srv.tcp()}).out ==
          R"({"name":"bob","tags":[1,2]})" "\n");
    CHECK(zproc_cmd({"keys"}, {env}).out == "\"cookies\"\n\"who\"\n");
    CHECK(zproc_cmd({"dump"}, {env}).out == R"({"cookies":5,"who":{"name":"bob","tags":[1,2]}})" "\n");
    CHECK(zproc_cmd({"del", "cookies"}, {env}).out == "3\n");
    CHECK(zproc_cmd({"dump"}, {env}).out == R"({"who":{"name":"bob","tags":[1,2]}})" "\n");

    CHECK(zproc_cmd({"--namespace", "other", "set", "x", "true"}, {env}).exit_code == 0);
    CHECK(zproc_cmd({"dump", "--namespace", "other"}, {env}).out == "{\"x\":true}\n");
    CHECK(zproc_cmd({"keys", "--namespace", "empty"}, {env}).out == "");
  }

  TEST_CASE("history and watch print JSON lines") {
    zproc::test::server_process srv;
    const std::string env = "ZPROC_ADDRESS=" + srv.ipc();
    zproc_cmd({"set", "a", "1"}, {env});
    zproc_cmd({"set", "b", "2"}, {env});
    zproc_cmd({"del", "a"}, {env});
    auto h = zproc_cmd({"history"}, {env});
    CHECK(h.exit_code == 0);
    std::vector<nlohmann::json> lines;
    std::istringstream in(h.out);
    for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
    REQUIRE(lines.size() == 3);
    CHECK(lines[0]["revision"] == 1);
    CHECK(lines[0]["changes"][0] == nlohmann::json({{"key", "a"}, {"after", 1}}));
    CHECK(lines[2]["changes"][0] == nlohmann::json({{"key", "a"}, {"before", 1}}));
    CHECK(zproc_cmd({"history", "--from", "2", "--to", "2"}, {env}).out.find("\"revision\":2") !=
          std::string::npos);
    // One schema: each line is what zproc::to_json makes of the update, and reads back.
    zproc::client c;
    c.connect(srv.ipc());
    const auto updates = zproc::state(c, "default").history();
    REQUIRE(updates.size() == lines.size());
    for (std::size_t i = 0; i < lines.size(); ++i) {
      CHECK(lines[i] == nlohmann::json(updates[i]));
      const auto back = lines[i].get<zproc::update>();
      CHECK(back.revision == updates[i].revision);
      CHECK(back.client_id == updates[i].client_id);
      CHECK(back.changes.size() == updates[i].changes.size());
      CHECK(back.time == updates[i].time);
    }

    // watch runs until interrupted: replay from revision 0, then stop it after a moment.
    auto w = zproc::test::run_program({ZPROC_EXE, "watch", "b", "--from", "0"}, 2s, {env});
    CHECK(w.out.find("\"key\":\"b\"") != std::string::npos);
    CHECK(w.out.find("\"key\":\"a\"") == std::string::npos);  // filtered on the server
    CHECK(zproc_cmd({"history", "--from", "x"}, {env}).exit_code == 2);
  }

  TEST_CASE("history and watch --format pretty: a readable line per update; ps --watch") {
    zproc::test::server_process srv;
    const std::string env = "ZPROC_ADDRESS=" + srv.ipc();
    zproc_cmd({"set", "a", "1"}, {env});
    zproc_cmd({"set", "a", "2"}, {env});
    zproc_cmd({"del", "a"}, {env});
    const auto pretty = lines_of(zproc_cmd({"history", "--format", "pretty"}, {env}).out);
    REQUIRE(pretty.size() == 3);
    CHECK(std::regex_match(pretty[0], std::regex("rev 1  [0-9:.]{12}  client [0-9]+  a: \\(absent\\) \u2192 1")));
    CHECK(pretty[1].find("a: 1 \u2192 2") != std::string::npos);
    CHECK(pretty[2].find("a: 2 \u2192 (deleted)") != std::string::npos);
    CHECK(pretty[0].find('\x1b') == std::string::npos);  // no colours when not on a terminal
    // Piped, the default is JSON.
    CHECK(nlohmann::json::parse(lines_of(zproc_cmd({"history"}, {env}).out).at(0))["revision"] == 1);
    auto w = zproc::test::run_program({ZPROC_EXE, "watch", "--from", "0", "--format=pretty"}, 2s, {env});
    CHECK(w.out.find("a: 1 \u2192 2") != std::string::npos);
    CHECK(zproc_cmd({"history", "--format", "xml"}, {env}).exit_code == 2);

    // ps --watch prints the table again when the records change.
    std::thread later([&] {
      std::this_thread::sleep_for(700ms);
      zproc::client supervisor;
      supervisor.connect(srv.ipc());
      proc_start(supervisor, 4242, "watched");
      std::this_thread::sleep_for(700ms);
    });
    auto ps = zproc::test::run_program({ZPROC_EXE, "ps", "--watch"}, 3s, {env});
    later.join();
    const auto tables = lines_of(ps.out);
    REQUIRE(tables.size() >= 4);  // the empty table, a blank line, the table with the record
    CHECK(tables[0].rfind("ID ", 0) == 0);
    CHECK(tables[1].empty());
    CHECK(tables[2].rfind("ID ", 0) == 0);
    CHECK(tables[3].find("watched") != std::string::npos);
    CHECK(zproc_cmd({"ps", "--watch", "--json"}, {env}).exit_code == 2);
  }

  TEST_CASE("keys, dump and history of a namespace too big for one reply: page by page") {
    zproc::test::server_process srv;
    const std::string env = "ZPROC_ADDRESS=" + srv.ipc();
    // 100 keys of 100 KB (10 MB of keys: more than a frame), written 20 per update.
    const auto key = [](int i) {
      std::string k = std::to_string(100 + i).substr(1);  // "00".."99"
      return "k" + k + std::string(100'000, 'x');
    };
    zproc::client c;
    c.connect(srv.ipc());
    zproc::state st(c, "big");
    nlohmann::json expected = nlohmann::json::object();
    for (int i = 0; i < 100;) {
      nlohmann::json batch = nlohmann::json::object();
      for (const int end = i + 20; i < end; ++i) batch[key(i)] = i;
      expected.update(batch);
      st.update(std::move(batch));
    }
    // What `zproc keys`, `dump` and `history` read in one reply before: too large now.
    CHECK_THROWS_AS(st.keys(), zproc::error);
    CHECK_THROWS_AS(st.copy(), zproc::error);

    auto keys = zproc_cmd({"keys", "--namespace", "big"}, {env});
    CHECK(keys.exit_code == 0);
    CHECK(keys.err == "");
    auto lines = lines_of(keys.out);
    REQUIRE(lines.size() == 100);
    for (int i = 0; i < 100; ++i) CHECK(lines[i] == nlohmann::json(key(i)).dump());

    auto dump = zproc_cmd({"dump", "--namespace", "big"}, {env});
    CHECK(dump.exit_code == 0);
    CHECK(dump.out == expected.dump() + "\n");

    // --prefix: only the keys that start with it.
    auto some = lines_of(zproc_cmd({"keys", "--namespace", "big", "--prefix", "k7"}, {env}).out);
    REQUIRE(some.size() == 10);
    CHECK(some.front() == nlohmann::json(key(70)).dump());
    CHECK(some.back() == nlohmann::json(key(79)).dump());
    auto part = nlohmann::json::parse(
        zproc_cmd({"dump", "--namespace", "big", "--prefix", "k7"}, {env}).out);
    CHECK(part.size() == 10);
    CHECK(part[key(75)] == 75);
    CHECK(zproc_cmd({"keys", "--namespace", "big", "--prefix", "nope"}, {env}).out == "");
    CHECK(zproc_cmd({"dump", "--namespace", "big", "--prefix", "nope"}, {env}).out == "{}\n");

    // history: five records of 2 MB; more than one page.
    auto h = zproc_cmd({"history", "--namespace", "big"}, {env});
    CHECK(h.exit_code == 0);
    auto records = lines_of(h.out);
    REQUIRE(records.size() == 5);
    for (int r = 0; r < 5; ++r) CHECK(nlohmann::json::parse(records[r])["revision"] == r + 1);
    CHECK(lines_of(zproc_cmd({"history", "--namespace", "big", "--from", "2", "--to", "4"}, {env}).out)
              .size() == 3);
  }

  TEST_CASE("incr and cas") {
    zproc::test::server_process srv;
    const std::string env = "ZPROC_ADDRESS=" + srv.ipc();
    CHECK(zproc_cmd({"incr", "n"}, {env}).out == "1\n");
    CHECK(zproc_cmd({"incr", "n", "10"}, {env}).out == "11\n");
    CHECK(zproc_cmd({"incr", "n", "x"}, {env}).exit_code == 2);
    CHECK(zproc_cmd({"cas", "owner", "absent", "\"me\""}, {env}).out == "true\n");
    auto lost = zproc_cmd({"cas", "owner", "absent", "\"you\""}, {env});
    CHECK(lost.out == "false\n");
    CHECK(lost.exit_code == 4);
    CHECK(zproc_cmd({"cas", "owner", "\"me\"", "\"you\""}, {env}).exit_code == 0);
    CHECK(zproc_cmd({"get", "owner"}, {env}).out == "\"you\"\n");
    CHECK(zproc_cmd({"set", "s", "\"text\""}, {env}).exit_code == 0);
    auto wrong = zproc_cmd({"incr", "s"}, {env});
    CHECK(wrong.exit_code == 1);
    CHECK(wrong.err.find("not a number") != std::string::npos);
  }

  TEST_CASE("errors: exit codes and one clear line") {
    zproc::test::server_process srv;
    const std::string env = "ZPROC_ADDRESS=" + srv.ipc();

    auto missing = zproc_cmd({"get", "nope"}, {env});
    CHECK(missing.exit_code == 3);
    CHECK(missing.err == "zproc: key 'nope' not found in namespace 'default'\n");

    auto bad_json = zproc_cmd({"set", "k", "not json"}, {env});
    CHECK(bad_json.exit_code == 2);
    CHECK(bad_json.err.find("not valid JSON") != std::string::npos);

    auto no_server = zproc_cmd({"ping", "--address", zproc::test::fresh_ipc_address()});
    CHECK(no_server.exit_code == 1);
    CHECK(no_server.err.find("cannot connect") != std::string::npos);

    auto no_address = zproc_cmd({"ping"}, {"ZPROC_ADDRESS="});
    CHECK(no_address.exit_code == 2);
    CHECK(no_address.err.find("ZPROC_ADDRESS") != std::string::npos);

    CHECK(zproc_cmd({"fly"}, {env}).exit_code == 2);
    CHECK(zproc_cmd({"get"}, {env}).exit_code == 2);
    CHECK(zproc_cmd({"get", "--bogus"}, {env}).exit_code == 2);
    CHECK(zproc_cmd({"ping", "--address", "http://x"}).exit_code == 1);

    auto help = zproc_cmd({"--help"});
    CHECK(help.exit_code == 0);
    CHECK(help.out.find("\n  server ") != std::string::npos);
  }

  TEST_CASE("ps: a table with crash reports, --running, --json lines") {
    zproc::test::server_process srv;
    const std::string env = "ZPROC_ADDRESS=" + srv.ipc();
    const std::string header = "ID  PID  PPID  TARGET  NAMESPACE  STATE  EXIT  STARTED\n";
    CHECK(zproc_cmd({"ps"}, {env}).out == header);  // no records yet

    zproc::client supervisor({.request_timeout = 10s});
    supervisor.connect(srv.ipc());
    proc_start(supervisor, 4242, "worker");
    const auto crashed = proc_start(supervisor, 4243, "parser");
    const std::string report = "Segmentation fault (signal 11)\n#0 parse()";
    proc_update(supervisor, crashed,
                {{"state", "crashed"}, {"exitcode", -11}, {"crash_report", report}});
    const auto exited = proc_start(supervisor, 4244, "job");
    proc_update(supervisor, exited, {{"state", "exited"}, {"exitcode", 0}});

    auto table = zproc_cmd({"ps"}, {env});
    CHECK(table.exit_code == 0);
    INFO(table.out);
    const auto lines = lines_of(table.out);
    REQUIRE(lines.size() == 6);  // header, 3 rows, a blank line, one crash report line
    const auto matches = [](const std::string& line, const std::string& pattern) {
      const std::string clock = "[0-2][0-9]:[0-5][0-9]:[0-5][0-9]";
      return std::regex_match(line, std::regex(" *" + pattern + " +" + clock));
    };
    const std::regex columns("ID +PID +PPID +TARGET +NAMESPACE +STATE +EXIT +STARTED");
    CHECK(std::regex_match(lines[0], columns));
    CHECK(matches(lines[1], "1 +4242 +100 +worker +default +running +-"));
    CHECK(matches(lines[2], "2 +4243 +100 +parser +default +crashed +-11"));
    CHECK(matches(lines[3], "3 +4244 +100 +job +default +exited +0"));
    CHECK(lines[4].empty());
    CHECK(lines[5] == "2 parser crashed: Segmentation fault (signal 11)");  // the first line only
    // Columns line up: every row has STATE where the header has it.
    const auto state_column = lines[0].find("STATE");
    for (int i = 1; i <= 3; ++i)
      CHECK(lines[i].find_first_not_of(' ', state_column - 1) == state_column);

    auto running = lines_of(zproc_cmd({"ps", "--running"}, {env}).out);
    REQUIRE(running.size() == 2);
    CHECK(running[1].find("worker") != std::string::npos);

    auto json_lines = zproc_cmd({"ps", "--json", "--all"}, {env});
    CHECK(json_lines.exit_code == 0);
    const auto objects = lines_of(json_lines.out);
    REQUIRE(objects.size() == 3);
    const auto second = nlohmann::json::parse(objects[1]);
    CHECK(second["id"] == 2);
    CHECK(second["pid"] == 4243);
    CHECK(second["target"] == "parser");
    CHECK(second["ns"] == "default");
    CHECK(second["state"] == "crashed");
    CHECK(second["exitcode"] == -11);
    CHECK(second["crash_report"] == report);
    CHECK(second["client"] == supervisor.id());
    CHECK(second["ended_ms"].get<std::int64_t>() >= second["started_ms"].get<std::int64_t>());
    // One schema: what the command prints is what zproc::to_json makes of the records.
    const auto records = zproc::list_processes(supervisor);
    REQUIRE(records.size() == objects.size());
    for (std::size_t i = 0; i < records.size(); ++i)
      CHECK(nlohmann::json::parse(objects[i]) == nlohmann::json(records[i]));
    CHECK(lines_of(zproc_cmd({"ps", "--json", "--running"}, {env}).out).size() == 1);

    // The supervisor goes: its running process is lost.
    supervisor.close();
    std::string state;
    for (int i = 0; i < 100 && state != "lost"; ++i) {
      auto line = lines_of(zproc_cmd({"ps", "--json"}, {env}).out).at(0);
      state = nlohmann::json::parse(line)["state"];
      if (state != "lost") std::this_thread::sleep_for(20ms);
    }
    CHECK(state == "lost");

    CHECK(zproc_cmd({"ps", "--all", "--running"}, {env}).exit_code == 2);
    CHECK(zproc_cmd({"ps", "extra"}, {env}).exit_code == 2);
    CHECK(zproc_cmd({"ps", "--help"}).out.find("--running") != std::string::npos);
  }

  // Issue 12, item 11: the reason of a crash is the report's "what:" line, not its heading.
  TEST_CASE("ps: the reason of a crashed or failed process is what happened") {
    zproc::test::server_process srv;
    const std::string env = "ZPROC_ADDRESS=" + srv.ipc();
    zproc::client supervisor({.request_timeout = 10s});
    supervisor.connect(srv.ipc());
    const auto failed = proc_start(supervisor, 4245, "cookie_eater");
    const std::string report =
        "[zproc] Crash report:\n  target: 'cookie_eater'\n  pid: 4245\n  ppid: 100\n"
        "  what: std::runtime_error: out of cookies\n  stacktrace:\n   0# eat() at a.cpp:3\n";
    proc_update(supervisor, failed,
                {{"state", "failed"}, {"exitcode", 1}, {"crash_report", report}});
    const auto lines = lines_of(zproc_cmd({"ps"}, {env}).out);
    INFO(zproc_cmd({"ps"}, {env}).out);
    REQUIRE(lines.size() == 4);
    CHECK(lines[3] == "1 cookie_eater failed: std::runtime_error: out of cookies");
  }

  TEST_CASE("server: listening line, socket mode 0600, clean stop on SIGTERM, address in use") {
    zproc::test::server_process srv;  // checks the "listening at" lines itself
    const std::string path = srv.ipc().substr(6);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);

    auto clash = zproc_cmd({"server", "--listen", srv.ipc()});
    CHECK(clash.exit_code == 1);
    CHECK(clash.err.find("another server is listening") != std::string::npos);

    CHECK(srv.terminate() == 0);  // SIGTERM: a clean exit...
    CHECK(::stat(path.c_str(), &st) != 0);  // ...that removes its socket file
  }
}
