#include "eval/report_table.h"

#include "core/error.h"

namespace lf::eval {

namespace {
std::string markdown_row(const std::vector<std::string>& cells) {
  std::string line = "|";
  for (const std::string& cell : cells) {
    std::string text;
    for (char c : cell) text += c == '|' ? std::string("\\|") : std::string(1, c);
    line += " " + text + " |";
  }
  return line + "\n";
}
}  // namespace

std::string markdown_table(const ReportTable& table) {
  LF_CHECK(!table.header.empty(), "report table: no columns");
  std::string text = markdown_row(table.header) + "|";
  for (size_t i = 0; i < table.header.size(); ++i) text += "---|";
  text += "\n";
  for (const auto& row : table.rows) {
    LF_CHECK(row.size() == table.header.size(), "report table: a row of {} cells under {} columns", row.size(),
             table.header.size());
    text += markdown_row(row);
  }
  return text;
}

}  // namespace lf::eval
