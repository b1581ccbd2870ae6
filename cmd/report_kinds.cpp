#include "report_kinds.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <vector>

#include "core/error.h"

namespace lf::cmd {

namespace {
struct ReportKind {
  const char* name;
  bool ReportKinds::*flag;
};
constexpr ReportKind kReportKinds[] = {{"html", &ReportKinds::html}};

std::string kind_names() {
  std::vector<std::string> names;
  for (const ReportKind& kind : kReportKinds) names.push_back(kind.name);
  return fmt::format("{}", fmt::join(names, ", "));
}
}  // namespace

void add_report_flag(cxxopts::Options& flags, const std::string& group, const std::string& what) {
  flags.add_options(group)(
      "report",
      fmt::format("also write these report kinds ({}): html = one self-contained page, {}", kind_names(), what),
      cxxopts::value<std::vector<std::string>>());
}

ReportKinds read_report_kinds(const cxxopts::ParseResult& result) {
  ReportKinds kinds;
  if (!result.count("report")) return kinds;
  for (const std::string& piece : result["report"].as<std::vector<std::string>>()) {
    const ReportKind* found = nullptr;
    for (const ReportKind& kind : kReportKinds)
      if (piece == kind.name) found = &kind;
    LF_CHECK(found != nullptr, "--report '{}': not a report kind (known: {})", piece, kind_names());
    kinds.*(found->flag) = true;
  }
  return kinds;
}

}  // namespace lf::cmd
