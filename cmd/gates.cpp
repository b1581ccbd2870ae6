#include "gates.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>

#include "commands.h"
#include "core/digest.h"
#include "core/error.h"

namespace lf::cmd {

namespace {

// The metrics a gate can judge, with the direction in which they get worse. One table: the parser, the checker and
// the messages read it.
struct GateMetric {
  const char* name;
  bool higher_is_better;
  double (*of)(const eval::ChunkMetrics&);
};
constexpr GateMetric kGateMetrics[] = {
    {"psnr", true, [](const eval::ChunkMetrics& m) { return eval::capped_psnr(m.psnr); }},
    {"ssim", true, [](const eval::ChunkMetrics& m) { return m.ssim; }},
    {"latent_rel_l2", false, [](const eval::ChunkMetrics& m) { return m.latent_rel_l2; }},
};

const GateMetric* find_metric(const std::string& name) {
  for (const GateMetric& metric : kGateMetrics)
    if (name == metric.name) return &metric;
  return nullptr;
}

std::string metric_names(bool higher_is_better) {
  std::vector<std::string> names;
  for (const GateMetric& metric : kGateMetrics)
    if (metric.higher_is_better == higher_is_better) names.push_back(metric.name);
  return fmt::format("{}", fmt::join(names, ", "));
}

// Values given to a repeatable flag, with cxxopts' comma split already done (each piece is one threshold).
std::vector<std::string> pieces(const cxxopts::ParseResult& result, const char* flag) {
  return result.count(flag) ? result[flag].as<std::vector<std::string>>() : std::vector<std::string>{};
}

}  // namespace

void add_gate_flags(cxxopts::Options& flags) {
  flags.add_options("CI gates")
      ("fail-below", fmt::format("exit 1 when a chunk's METRIC is below VALUE: METRIC=VALUE[,...], mean:METRIC=VALUE "
                                 "for the whole video ({})", metric_names(true)),
       cxxopts::value<std::vector<std::string>>())
      ("fail-above", fmt::format("exit 1 when a chunk's METRIC is above VALUE, as --fail-below ({})",
                                 metric_names(false)),
       cxxopts::value<std::vector<std::string>>());
}

std::vector<MetricThreshold> parse_metric_thresholds(const cxxopts::ParseResult& result) {
  std::vector<MetricThreshold> thresholds;
  for (const bool below : {true, false}) {
    const char* flag = below ? "fail-below" : "fail-above";
    for (const std::string& piece : pieces(result, flag)) {
      MetricThreshold threshold;
      threshold.spec = piece;
      threshold.flag = std::string("--") + flag;
      threshold.fail_below = below;
      std::string rest = piece;
      if (rest.rfind("mean:", 0) == 0) {
        threshold.mean = true;
        rest = rest.substr(5);
      }
      const size_t equals = rest.find('=');
      LF_CHECK(equals != std::string::npos, "--{} '{}': expected METRIC=VALUE or mean:METRIC=VALUE", flag, piece);
      threshold.metric = rest.substr(0, equals);
      const GateMetric* metric = find_metric(threshold.metric);
      LF_CHECK(metric && metric->higher_is_better == below, "--{} '{}': '{}' is not a metric this flag takes ({})",
               flag, piece, threshold.metric, metric_names(below));
      const std::string number = rest.substr(equals + 1);
      size_t used = 0;
      try {
        threshold.value = std::stod(number, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      LF_CHECK(!number.empty() && used == number.size() && std::isfinite(threshold.value),
               "--{} '{}': '{}' is not a number", flag, piece, number);
      thresholds.push_back(threshold);
    }
  }
  return thresholds;
}

std::vector<std::string> crossed_thresholds(const std::vector<MetricThreshold>& thresholds,
                                            const eval::CompareDenseReport& report) {
  std::vector<std::string> crossed;
  for (const MetricThreshold& threshold : thresholds) {
    const GateMetric& metric = *find_metric(threshold.metric);
    std::vector<const eval::ChunkMetrics*> judged;
    if (threshold.mean) judged.push_back(&report.total);
    else
      for (const eval::ChunkMetrics& chunk : report.chunks) judged.push_back(&chunk);
    for (const eval::ChunkMetrics* measured : judged) {
      const double value = metric.of(*measured);
      const bool worse = threshold.fail_below ? !(value >= threshold.value) : !(value <= threshold.value);
      if (!worse) continue;
      crossed.push_back(fmt::format("{}: {} {} is {} {} ({} {})",
                                    threshold.mean ? std::string("mean") : fmt::format("chunk {}", measured->chunk),
                                    threshold.metric,
                                    std::isfinite(value) ? fmt::format("{:.6g}", value) : "not measured",
                                    threshold.fail_below ? "below" : "above", threshold.value, threshold.flag,
                                    threshold.spec));
    }
  }
  return crossed;
}

nlohmann::json gates_json(const std::vector<MetricThreshold>& thresholds, const std::vector<std::string>& crossed) {
  nlohmann::json list = nlohmann::json::array();
  for (const MetricThreshold& threshold : thresholds)
    list.push_back({{"flag", threshold.flag},
                    {"metric", threshold.metric},
                    {"scope", threshold.mean ? "mean" : "every chunk"},
                    {"value", threshold.value}});
  return {{"thresholds", list}, {"crossed", crossed}, {"passed", crossed.empty()}};
}

std::vector<ExpectedDigest> parse_expected_digests(const cxxopts::ParseResult& result,
                                                   const std::vector<std::string>& kinds,
                                                   const std::string& default_kind) {
  std::vector<ExpectedDigest> expected;
  for (const std::string& piece : pieces(result, "expect-sha256")) {
    const size_t equals = piece.find('=');
    ExpectedDigest digest{equals == std::string::npos ? default_kind : piece.substr(0, equals),
                          equals == std::string::npos ? piece : piece.substr(equals + 1)};
    LF_CHECK(std::find(kinds.begin(), kinds.end(), digest.kind) != kinds.end(),
             "--expect-sha256 '{}': '{}' is not an output of this command ({})", piece, digest.kind,
             fmt::join(kinds, ", "));
    std::transform(digest.hex.begin(), digest.hex.end(), digest.hex.begin(),
                   [](char c) { return char(std::tolower(static_cast<unsigned char>(c))); });
    LF_CHECK(digest.hex.size() == 64 && digest.hex.find_first_not_of("0123456789abcdef") == std::string::npos,
             "--expect-sha256 '{}': a sha256 is 64 hex digits (as sha256sum prints it)", piece);
    for (const ExpectedDigest& other : expected)
      LF_CHECK(other.kind != digest.kind, "--expect-sha256: the {} is given two digests", digest.kind);
    expected.push_back(digest);
  }
  return expected;
}

std::string check_expected_digests(const std::vector<ExpectedDigest>& expected,
                                   const std::vector<std::pair<std::string, std::string>>& outputs, bool hash) {
  for (const ExpectedDigest& digest : expected) {
    std::string path;
    for (const auto& [kind, written] : outputs)
      if (kind == digest.kind) path = written;
    LF_USAGE_CHECK(!path.empty(), "--expect-sha256 names the {}, but this run writes no {}", digest.kind,
                   digest.kind);
    LF_USAGE_CHECK(path != "-", "--expect-sha256: the {} goes to stdout ('-'), which cannot be read back to check it",
                   digest.kind);
    if (!hash) continue;
    const std::string found = sha256_file_hex(path);
    if (found != digest.hex)
      return fmt::format("--expect-sha256: the {} '{}' has sha256 {}, expected {} (the file is kept for inspection)",
                         digest.kind, path, found, digest.hex);
  }
  return "";
}

}  // namespace lf::cmd
