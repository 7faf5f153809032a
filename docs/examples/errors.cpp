// The guide's "Errors": a blocking call that throws nothing (error_code + diagnostics).
#include <zproc/zproc.hpp>

#include <iostream>

using zproc::json;

int main() {
  zproc::server_thread server;
  zproc::client c;
  c.connect(server.address());
  zproc::state st(c, "kitchen");

  zproc::error_code ec;
  zproc::diagnostics diag;
  json cookies = st.get("cookies", ec, diag);  // throws nothing
  if (ec == zproc::server_errc::key_not_found)
    std::cout << "no cookies: " << diag.message() << "\n";

  // What the snippet promises: the code, the server's message, and a default value.
  if (ec != zproc::server_errc::key_not_found || !cookies.is_null() ||
      diag.message().find("key 'cookies' not found in namespace 'kitchen'") == std::string::npos)
    return 1;
  st.set("cookies", 3, ec, diag);  // a success clears both
  return ec || !diag.message().empty() || st.get("cookies") != 3;
}
