#pragma once
// A report's table as data: the Markdown and the HTML report render the same rows, so the two can never disagree
// on a number or a label. Cells are plain text (no markup); each renderer escapes what its format needs.
#include <string>
#include <vector>

namespace lf::eval {

struct ReportTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;  // each as long as the header
};

// "| a | b |\n|---|---|\n| 1 | 2 |\n": a '|' inside a cell is escaped as "\|".
std::string markdown_table(const ReportTable& table);

}  // namespace lf::eval
