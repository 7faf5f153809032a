#include "process/channel.hpp"

#include <cstring>
#include <stdexcept>

namespace zproc::process_detail {
namespace {

void put_u32(std::string& out, std::uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  out.append(b, 4);
}
std::uint32_t get_u32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (std::uint32_t{u[0]} << 24) | (std::uint32_t{u[1]} << 16) | (std::uint32_t{u[2]} << 8) |
         std::uint32_t{u[3]};
}
std::string message(report_kind kind, std::string_view payload) {
  std::string out;
  out.reserve(5 + payload.size());
  out.push_back(static_cast<char>(kind));
  put_u32(out, static_cast<std::uint32_t>(payload.size()));
  out.append(payload);
  return out;
}

// A little cursor over the signal dump (written by encode_signal without allocation).
struct reader {
  std::string_view in;
  bool ok = true;
  template <class T>
  T get() {
    T v{};
    if (in.size() < sizeof v) {
      ok = false;
      return v;
    }
    std::memcpy(&v, in.data(), sizeof v);
    in.remove_prefix(sizeof v);
    return v;
  }
};

}  // namespace

std::string encode_ticket(const ticket& t) {
  const json header = {{"address", t.address}, {"ns", t.ns},           {"target", t.target},
                       {"ppid", t.ppid},       {"attempt", t.attempt}, {"retry", t.retry_types},
                       {"token", t.token},     {"pdeath", t.die_with_parent},
                       {"tls", {t.tls.ca_file, t.tls.cert_file, t.tls.key_file, t.tls.server_name}}};
  const std::string h = header.dump();
  std::string out;
  put_u32(out, static_cast<std::uint32_t>(h.size()));
  out += h;
  put_u32(out, static_cast<std::uint32_t>(t.args.size()));
  out += t.args;
  return out;
}

std::optional<ticket> decode_ticket(std::string_view bytes) {
  if (bytes.size() < 4) return std::nullopt;
  const std::uint32_t hlen = get_u32(bytes.data());
  if (bytes.size() < 8 + std::size_t{hlen}) return std::nullopt;
  const std::uint32_t alen = get_u32(bytes.data() + 4 + hlen);
  if (bytes.size() < 8 + std::size_t{hlen} + alen) return std::nullopt;
  const json header = json::parse(bytes.substr(4, hlen));
  ticket t;
  t.address = header.at("address").get<std::string>();
  t.ns = header.at("ns").get<std::string>();
  t.target = header.at("target").get<std::string>();
  t.ppid = header.at("ppid").get<std::int64_t>();
  t.attempt = header.at("attempt").get<std::size_t>();
  t.retry_types = header.at("retry").get<std::vector<std::string>>();
  t.token = header.value("token", std::string());
  t.die_with_parent = header.value("pdeath", true);
  if (auto tls = header.find("tls"); tls != header.end() && tls->is_array() && tls->size() == 4)
    t.tls = {(*tls)[0].get<std::string>(), (*tls)[1].get<std::string>(),
             (*tls)[2].get<std::string>(), (*tls)[3].get<std::string>()};
  t.args.assign(bytes.substr(8 + hlen, alen));
  return t;
}

std::string encode_value(const std::string& packed) { return message(report_kind::value, packed); }

std::string encode_exception(const exception_report& e) {
  json objects = json::array();
  for (const auto& o : e.objects) objects.push_back(json::array({o.begin, o.end, o.bias, o.path}));
  const json j = {{"type", e.type},   {"message", e.message},     {"frames", e.frames},
                  {"retry", e.retry}, {"raw", e.raw_frames}, {"objects", std::move(objects)}};
  return message(report_kind::exception, j.dump(-1, ' ', false, json::error_handler_t::replace));
}

std::size_t encode_signal(int signo, const std::uint64_t* frames, std::size_t nframes,
                          const signal_dump::object* objects, std::size_t nobjects, char* out,
                          std::size_t cap) noexcept {
  std::size_t n = 5;  // kind + length, filled in last
  auto put = [&](const void* p, std::size_t len) {
    if (n + len > cap) return false;
    std::memcpy(out + n, p, len);
    n += len;
    return true;
  };
  const auto nf = static_cast<std::uint32_t>(nframes);
  if (!put(&signo, sizeof signo) || !put(&nf, sizeof nf)) return 0;
  if (!put(frames, nframes * sizeof *frames)) return 0;
  auto no = static_cast<std::uint32_t>(nobjects);
  std::size_t no_at = n;
  if (!put(&no, sizeof no)) return 0;
  std::uint32_t written = 0;
  for (std::size_t i = 0; i < nobjects; ++i) {
    const auto& o = objects[i];
    const auto len = static_cast<std::uint16_t>(o.path.size());
    const std::size_t mark = n;
    if (!put(&o.begin, 8) || !put(&o.end, 8) || !put(&o.bias, 8) || !put(&len, 2) ||
        !put(o.path.data(), len)) {
      n = mark;  // out of room: keep the objects that fit
      break;
    }
    ++written;
  }
  std::memcpy(out + no_at, &written, sizeof written);
  out[0] = static_cast<char>(report_kind::signal);
  const auto payload = static_cast<std::uint32_t>(n - 5);
  for (int i = 0; i < 4; ++i) out[1 + i] = static_cast<char>(payload >> (24 - 8 * i));
  return n;
}

child_reports decode_reports(std::string_view stream) {
  child_reports r;
  while (stream.size() >= 5) {
    const auto kind = static_cast<report_kind>(stream[0]);
    const std::uint32_t len = get_u32(stream.data() + 1);
    if (stream.size() < 5 + std::size_t{len}) break;
    const std::string_view payload = stream.substr(5, len);
    stream.remove_prefix(5 + len);
    switch (kind) {
      case report_kind::value:
        r.value = std::string(payload);
        break;
      case report_kind::exception: {
        const json j = json::parse(payload, nullptr, false);
        if (j.is_discarded() || !j.is_object()) break;
        try {  // a malformed report is no report (the exit code still tells)
          exception_report e;
          e.type = j.value("type", "");
          e.message = j.value("message", "");
          e.frames = j.value("frames", std::vector<std::string>{});
          e.retry = j.value("retry", false);
          e.raw_frames = j.value("raw", std::vector<std::uint64_t>{});
          for (const auto& o : j.value("objects", json::array()))
            e.objects.push_back({o.at(0).get<std::uint64_t>(), o.at(1).get<std::uint64_t>(),
                                 o.at(2).get<std::uint64_t>(), o.at(3).get<std::string>()});
          r.exception = std::move(e);
        } catch (const json::exception&) {
        }
        break;
      }
      case report_kind::signal: {
        reader in{payload};
        signal_dump d;
        d.signo = in.get<int>();
        const auto nf = in.get<std::uint32_t>();
        for (std::uint32_t i = 0; in.ok && i < nf; ++i) d.frames.push_back(in.get<std::uint64_t>());
        const auto no = in.get<std::uint32_t>();
        for (std::uint32_t i = 0; in.ok && i < no; ++i) {
          signal_dump::object o;
          o.begin = in.get<std::uint64_t>();
          o.end = in.get<std::uint64_t>();
          o.bias = in.get<std::uint64_t>();
          const auto path_len = in.get<std::uint16_t>();
          if (in.in.size() < path_len) break;
          o.path.assign(in.in.substr(0, path_len));
          in.in.remove_prefix(path_len);
          d.objects.push_back(std::move(o));
        }
        if (d.signo != 0) r.signal = std::move(d);
        break;
      }
      default:
        return r;  // not ours: stop here
    }
  }
  return r;
}

}  // namespace zproc::process_detail
