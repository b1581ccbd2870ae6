// lightforce check-prompts: generate each prompt of the testbed grammar with the chosen attention backend and
// check the video does what the prompt says (eval/prompt_following.h). The prompt-following rate is the testbed's
// proof that it learned, and a regression signal for sparse backends and engine changes.
#include <cxxopts.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "backend_run.h"
#include "commands.h"
#include "machine_output.h"
#include "core/embedded.h"
#include "core/error.h"
#include "eval/metrics.h"
#include "eval/prompt_following.h"
#include "io/atomic_file.h"
#include "run_setup.h"

namespace lf::cmd {

namespace {

std::vector<std::string> read_prompts(const std::string& path) {
  // A FIFO or device would block or never end: only a regular file is read.
  std::error_code error;
  LF_CHECK(std::filesystem::is_regular_file(path, error), "--prompts-file '{}': not a regular file (or missing)", path);
  std::ifstream file(path);
  LF_CHECK(file.good(), "--prompts-file '{}': cannot read it", path);
  std::vector<std::string> prompts;
  for (std::string line; std::getline(file, line);)
    if (!line.empty() && line[0] != '#') prompts.push_back(line);
  LF_CHECK(!prompts.empty(), "--prompts-file '{}': no prompts (one a line, # starts a comment)", path);
  return prompts;
}

}  // namespace

int check_prompts(int argc, char** argv) {
  cxxopts::Options flags("lightforce check-prompts",
                         "Generate testbed-grammar prompts and check that each video follows its prompt.");
  add_run_flags(flags);
  flags.add_options("check")
      ("prompts-file", "prompts, one a line (default: the 16 evaluation prompts of docs/testbed.md)",
       cxxopts::value<std::string>())
      ("seeds", "seeds per prompt: 0 .. N-1", cxxopts::value<int64_t>()->default_value("2"))
      ("out", "write the JSON report to this file", cxxopts::value<std::string>())
      ("json", "print the JSON report on stdout")
      ("q,quiet", "no progress")
      ("h,help", "show this help");
  const auto result = parse_flags(flags, argc, argv);
  if (result.count("help")) {
    fmt::print("{}", flags.help());
    return 0;
  }
  LF_CHECK(eval::have_opencv(), "check-prompts needs OpenCV, which this build does not have (LF_WITH_OPENCV=OFF)");
  RunFlags run_flags = read_run_flags(result);
  const bool quiet = result.count("quiet");
  const int64_t seeds = result["seeds"].as<int64_t>();
  LF_CHECK(seeds >= 1 && seeds <= 1000, "--seeds {}: expected 1..1000", seeds);
  std::vector<std::string> prompts;
  if (result.count("prompts-file")) prompts = read_prompts(result["prompts-file"].as<std::string>());
  else if (!run_flags.prompt.empty()) prompts = {run_flags.prompt};
  else prompts = eval::testbed_eval_prompts();
  for (const std::string& prompt : prompts) eval::parse_testbed_prompt(prompt);  // refuse before any work
  const std::string out = result.count("out") ? result["out"].as<std::string>() : "";
  if (!out.empty()) check_output_writable(out, "--out");

  run_flags.prompt = prompts.front();  // prepare_model encodes one prompt; each run below encodes its own
  const PreparedModel prepared = prepare_model(run_flags, quiet);
  nlohmann::json runs = nlohmann::json::array();
  int64_t passed = 0, total = 0;
  double density = 0, seconds = 0;
  for (const std::string& prompt : prompts) {
    const Tensor context = encode_prompt(prepared, prompt);
    for (int64_t seed = 0; seed < seeds; ++seed) {
      const BackendRun run = run_backend(prepared, prepared.run.attention, {.context = &context,
                                                                            .seed = uint64_t(seed)});
      const eval::PromptCheck check = eval::check_prompt(run.frames, prompt);
      passed += check.follows;
      ++total;
      density += run.mean_density;
      seconds += run.seconds;
      nlohmann::json objects = nlohmann::json::array();
      for (const eval::ObjectCheck& object : check.objects)
        objects.push_back({{"colour", object.object.colour}, {"motion", object.object.motion},
                           {"present_fraction", object.present_fraction}, {"dx", object.dx}, {"dy", object.dy},
                           {"follows", object.follows}});
      runs.push_back({{"prompt", prompt}, {"seed", seed}, {"follows", check.follows}, {"objects", objects}});
      if (!quiet)
        fmt::print(stderr, "  [{}/{}] {} (seed {}): {}  {}\n", total, int64_t(prompts.size()) * seeds, prompt,
                   seed, check.follows ? "follows" : "does not follow", format_seconds(run.seconds));
    }
  }
  const double rate = double(passed) / double(total);
  nlohmann::json report{{"backend", prepared.run.attention.backend},
                              {"model", prepared.run.model.name},
                              {"commit", kGitCommit},
                              {"device", device_name(prepared.device)},
                              {"latent_frames", prepared.run.pipeline.frames},
                              {"seeds", seeds},
                              {"passed", passed},
                              {"total", total},
                              {"rate", rate},
                              {"mean_density", density / double(total)},
                              {"generation_seconds", seconds},
                              {"runs", runs}};
  // Each run names its own prompt and seed; the run-wide ones would only mislead.
  nlohmann::json provenance = run_provenance(run_flags, prepared.run);
  provenance.erase("prompt");
  provenance.erase("seed");
  report = versioned(report, provenance);
  if (!out.empty()) write_file_atomic(out, report.dump(2) + "\n");
  if (!quiet)
    fmt::print(stderr, "{}: {}/{} videos follow their prompts ({:.1f}%)\n", prepared.run.attention.backend, passed,
               total, 100.0 * rate);
  if (result.count("json")) fmt::print("{}\n", report.dump(2));
  return 0;
}

}  // namespace lf::cmd
