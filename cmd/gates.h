#pragma once
// CI gates: a command that measured or wrote something exits 1 when it crossed a line the caller drew, after its
// evidence (report, video) is written. compare-dense takes metric thresholds (--fail-below / --fail-above),
// generate and decode expected digests of their outputs (--expect-sha256). docs/cli.md, "CI gates".
#include <cxxopts.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

#include "eval/report.h"

namespace lf::cmd {

// One threshold: `metric` of every chunk (or of the whole video, `mean`) must stay on the right side of `value`.
struct MetricThreshold {
  std::string spec;    // as written, for messages: "psnr=30", "mean:ssim=0.9"
  std::string flag;    // "--fail-below" or "--fail-above"
  std::string metric;  // psnr, ssim, latent_rel_l2
  bool mean = false;   // the whole-video value (the report's "total") instead of every chunk
  bool fail_below = true;
  double value = 0;
};

// Parses --fail-below / --fail-above values: METRIC=VALUE or mean:METRIC=VALUE, comma-separated or repeated. Each
// flag takes only the metrics for which its direction means "worse" (psnr and ssim fall, latent_rel_l2 rises);
// anything else is an lf::Error naming the piece.
std::vector<MetricThreshold> parse_metric_thresholds(const cxxopts::ParseResult& result);
void add_gate_flags(cxxopts::Options& flags);

// Every crossing of `thresholds` in `report`, one line each ("chunk 1: psnr 27.31 is below 30 (--fail-below
// psnr=30)"); a metric that is not a number (no latents, NaN) counts as crossed: a gate must not pass on a
// measurement it could not make.
std::vector<std::string> crossed_thresholds(const std::vector<MetricThreshold>& thresholds,
                                            const eval::CompareDenseReport& report);
// {"thresholds": [...], "crossed": [...], "passed": bool}: recorded in the report beside the numbers it judged.
nlohmann::json gates_json(const std::vector<MetricThreshold>& thresholds, const std::vector<std::string>& crossed);

// --expect-sha256 [KIND=]HEX (repeatable or comma-separated): the expected sha256 of one named output. A bare HEX
// means `default_kind`. Kinds outside `kinds`, a digest that is not 64 hex digits or a kind given twice is an
// lf::Error naming the piece.
struct ExpectedDigest {
  std::string kind;
  std::string hex;  // lowercase
};
std::vector<ExpectedDigest> parse_expected_digests(const cxxopts::ParseResult& result,
                                                   const std::vector<std::string>& kinds,
                                                   const std::string& default_kind);
// Checks each expected digest against the file written for its kind (`outputs`: kind -> path; a kind with an
// empty path was not written: an lf::Error before any work when called with the planned outputs, so call it once
// with `hash` false up front). With `hash` true, returns the first mismatch as one line naming the output, its
// path and both digests ("" when all match). Files stay where they are: the evidence.
std::string check_expected_digests(const std::vector<ExpectedDigest>& expected,
                                   const std::vector<std::pair<std::string, std::string>>& outputs, bool hash);

}  // namespace lf::cmd
