// Writes docs/reference.md from the doc comments of the public headers: every `///` comment
// block with the declaration that follows it, and every `///<` member comment, grouped by
// header and by class. Private sections and `detail` namespaces are left out.
//
//   gen_reference lib/include/zproc > docs/reference.md
//   gen_reference lib/include/zproc --check docs/reference.md   (exit 1 if it differs)
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

int brace_delta(const std::string& line) {
  int d = 0;
  bool in_string = false;
  char quote = 0;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == quote) in_string = false;
      continue;
    }
    if (c == '/' && i + 1 < line.size() && line[i + 1] == '/') break;
    if (c == '"' || c == '\'') {
      in_string = true;
      quote = c;
    } else if (c == '{') {
      ++d;
    } else if (c == '}') {
      --d;
    }
  }
  return d;
}

/// The declaration as a reader wants it: one line, no body, no trailing brace.
std::string clean(std::string decl) {
  if (starts_with(decl, "#define")) {
    decl = decl.substr(0, decl.find('\\'));
    return trim(decl);
  }
  // A function: cut its body (after the parameter list). A type: cut its opening brace.
  if (const auto close = decl.rfind(')'); close != std::string::npos) {
    if (const auto p = decl.find('{', close); p != std::string::npos) decl = decl.substr(0, p);
  } else if (!decl.empty() && decl.back() == '{') {
    decl.pop_back();
  }
  if (!decl.empty() && decl.back() == ';') decl.pop_back();
  std::string out;
  for (char c : decl) {  // collapse runs of spaces
    if (c == ' ' && !out.empty() && out.back() == ' ') continue;
    out += c;
  }
  return trim(out);
}

struct scope {
  std::string name;  // class or struct name; empty for other braces
  int depth;         // brace depth inside it
  bool is_private;
  bool skipped;      // a detail namespace
  bool is_enum = false;  // its lines are enumerators, one per line
};

/// Whether a declaration gathered line by line is complete: it reached a ';' or an opening
/// brace (a default argument's "{}" does not count).
bool complete(std::string decl) {
  for (auto p = decl.find("{}"); p != std::string::npos; p = decl.find("{}")) decl.erase(p, 2);
  return decl.find('{') != std::string::npos || decl.find(';') != std::string::npos;
}

std::string document(const fs::path& header) {
  std::ifstream in(header);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  std::ostringstream out;
  std::string about;
  if (!lines.empty() && starts_with(lines[0], "// ")) {
    about = lines[0].substr(3);
    if (auto p = about.find(" - "); p != std::string::npos) about = about.substr(p + 3);
  }
  out << "## `<zproc/" << header.filename().string() << ">`\n\n" << about << "\n\n";

  std::vector<scope> stack;
  int depth = 0;
  std::vector<std::string> comment;
  std::string current_class;
  auto hidden = [&] {
    for (const auto& s : stack)
      if (s.skipped || s.is_private) return true;
    return false;
  };
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string t = trim(lines[i]);
    if (starts_with(t, "///") && !starts_with(t, "///<")) {
      comment.push_back(trim(t.substr(3)));
      continue;
    }
    if (!stack.empty() && stack.back().name.size() && (t == "private:" || t == "protected:"))
      stack.back().is_private = true;
    if (!stack.empty() && stack.back().name.size() && t == "public:") stack.back().is_private = false;

    const bool detail_ns = starts_with(t, "namespace detail") || starts_with(t, "namespace zproc::detail");
    std::string klass;
    for (const char* kw : {"class ", "struct "}) {
      if (starts_with(t, kw) && t.find('{') != std::string::npos && t.find('(') == std::string::npos) {
        std::string rest = t.substr(std::string(kw).size());
        const std::string name = rest.substr(0, rest.find_first_of(" {"));
        if (name.find("::") == std::string::npos)  // not a specialization of another's template
          klass = rest.substr(0, rest.find_first_of(" :{"));
      }
    }

    const bool in_enum = !stack.empty() && stack.back().is_enum;
    if (!comment.empty() && !hidden() && !detail_ns && !t.empty() && !starts_with(t, "//")) {
      std::string decl = t;
      std::size_t j = i;
      if (in_enum) {  // one enumerator per line: "name = value," or "name,"
        if (!decl.empty() && decl.back() == ',') decl.pop_back();
      } else {
        while (j + 1 < lines.size() && !complete(decl) && !starts_with(decl, "#define"))
          decl += " " + trim(lines[++j]);
      }
      std::string text;
      for (const auto& c : comment) text += (text.empty() ? "" : " ") + c;
      if (!klass.empty()) {
        out << "### `" << (starts_with(t, "class") ? "class " : "struct ") << klass << "`\n\n"
            << text << "\n\n";
      } else {
        out << "- `" << clean(decl) << "`" << (text.empty() ? "" : " — " + text) << "\n";
      }
    } else if (!klass.empty() && !hidden() && !detail_ns) {
      out << "### `" << (starts_with(t, "class") ? "class " : "struct ") << klass << "`\n\n";
    }
    if (auto p = t.find("///<"); p != std::string::npos && !hidden()) {
      out << "- `" << clean(trim(t.substr(0, p))) << "` — " << trim(t.substr(p + 4)) << "\n";
    }
    comment.clear();

    const int delta = brace_delta(lines[i]);
    if (delta > 0) {
      for (int k = 0; k < delta; ++k) {
        const bool first = k == 0;
        stack.push_back({first ? klass : std::string(), depth + k + 1,
                         first && starts_with(t, "class "), first && detail_ns,
                         first && starts_with(t, "enum ")});
      }
      if (!klass.empty()) out << "\n";
    } else {
      for (int k = 0; k < -delta && !stack.empty(); ++k) stack.pop_back();
    }
    depth += delta;
  }
  out << "\n";
  return out.str();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: gen_reference INCLUDE_DIR [--check FILE]\n";
    return 2;
  }
  std::vector<fs::path> headers;
  for (const auto& e : fs::directory_iterator(argv[1]))
    if (e.path().extension() == ".hpp") headers.push_back(e.path());
  std::sort(headers.begin(), headers.end());
  std::string doc =
      "# Reference\n\n"
      "Every public function, type and member with its doc comment, by header. Generated from\n"
      "the headers by `build/docs/reference/gen_reference lib/include/zproc > docs/reference.md`\n"
      "(the test `docs.reference` fails when this file is stale). The guide\n"
      "([guide.md](guide.md)) explains how the pieces fit.\n\n";
  for (const auto& h : headers) doc += document(h);
  if (argc == 4 && std::string(argv[2]) == "--check") {
    std::ifstream f(argv[3]);
    std::stringstream have;
    have << f.rdbuf();
    if (have.str() != doc) {
      std::cerr << argv[3] << " is stale: regenerate it with\n  " << argv[0] << " " << argv[1]
                << " > " << argv[3] << "\n";
      return 1;
    }
    return 0;
  }
  std::cout << doc;
  return 0;
}
