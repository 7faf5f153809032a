#include "client/record_pager.hpp"

#include "protocol/ops.hpp"
#include "protocol/process_records.hpp"

#include <algorithm>

namespace zproc::detail {

namespace wire = protocol::process;

record_pager::record_pager(std::size_t page_size) : page_size_(std::max<std::size_t>(1, page_size)) {}

json record_pager::request() const {
  json r = protocol::make(protocol::op::proc_list);
  r[wire::after] = records_.empty() ? 0 : records_.back().id;
  r[wire::max] = page_size_;
  return r;
}

bool record_pager::on_reply(json&& page, error_code& ec, std::string& message) {
  const auto fail = [&](std::string why) {
    ec = client_errc::protocol_error;
    message = "unexpected proc_list reply from the server: " + std::move(why);
    records_.clear();
    return false;
  };
  if (!page.is_array()) return fail("not an array");
  if (page.size() > page_size_)
    return fail(std::to_string(page.size()) + " records, " + std::to_string(page_size_) +
                " asked for");
  std::vector<process_record> got;
  got.reserve(page.size());
  std::uint64_t last = records_.empty() ? 0 : records_.back().id;
  for (auto& r : page) {
    try {
      got.push_back(record_from_wire(r));
    } catch (const json::exception& e) {
      return fail(std::string("a record that does not parse: ") + e.what());
    }
    // Each page continues after the last id: ids that do not go up would page for ever.
    if (got.back().id <= last)
      return fail("record " + std::to_string(got.back().id) + " after record " +
                  std::to_string(last));
    last = got.back().id;
  }
  records_.insert(records_.end(), std::make_move_iterator(got.begin()),
                  std::make_move_iterator(got.end()));
  return page.size() == page_size_;
}

}  // namespace zproc::detail
