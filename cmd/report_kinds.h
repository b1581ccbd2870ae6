#pragma once
// --report KIND[,KIND...]: report formats written beside the JSON, Markdown and CSV that every run writes. One
// table of kinds (today: html, one self-contained page; docs/reports.md) that the flag's help, the parser and its
// error message read.
#include <cxxopts.hpp>
#include <string>

namespace lf::cmd {

struct ReportKinds {
  bool html = false;
};

// Adds --report to `flags` under `group`; `what` says what the HTML page holds for this command.
void add_report_flag(cxxopts::Options& flags, const std::string& group, const std::string& what);
// The kinds asked for; an unknown kind is an lf::Error naming it and the known ones (checked before any work).
ReportKinds read_report_kinds(const cxxopts::ParseResult& result);

}  // namespace lf::cmd
