// lightforce: autoregressive video diffusion (Self-Forcing on Wan2.1) with selectable sparse attention.
#include <cxxopts.hpp>
#include <fmt/format.h>

#include <omp.h>

#include <cstring>
#include <string>
#include <vector>

#include "commands.h"
#include "core/embedded.h"
#include "core/error.h"

namespace {

constexpr const char* kUsage = R"(lightforce {} ({}) - autoregressive video diffusion with sparse attention

usage: lightforce <command> [options]      (lightforce <command> --help for its options)

commands:
  generate          generate a video chunk by chunk with a KV cache (MP4, PNG frames, latents, noise)
  batch             one video per entry of a prompts file, model loaded once; resumable, shardable (--shard i/n)
  merge-manifests   merge the manifests of a batch's shards into one
  decode            decode saved latents to MP4 / PNG frames / a video tensor (Wan VAE, LightVAE, TAEHV)
  encode-text       encode prompts with umT5 into text embeddings (the --text-embeddings format)
  inspect           list a checkpoint's tensors, dtypes, shapes and detected layout without loading data
  profile-sparsity  per-chunk attention statistics (density, recall, timings) and mask heatmaps
  compare-dense     a sparse backend against dense with the same seed: PSNR/SSIM/flicker/warping, speedup
  plan-mask         run a mask planner on q/k files and write the block mask (safetensors + JSON)
  check-prompts     generate testbed-grammar prompts and check each video follows its prompt (OpenCV)
  bench             time the chunk loop of a model with random weights (default: Wan 1.3B on the GPU)

The default model is built in: the testbed (models/testbed/), a small Wan DiT this project trained on procedural
videos, so `lightforce generate --prompt "a red circle moves right"` runs with nothing to download. `-m tiny` is a
random-weight model for fast plumbing checks. Docs: docs/cli.md, docs/testbed.md.

global option (any command): --threads N   CPU threads for OpenMP (default: OMP_NUM_THREADS, else one per CPU the
                                           process may run on)
exit codes: 0 ok, 1 the run failed (bad input, I/O, a CI gate), 2 usage error, 3 batch entries failed
)";

// --threads N (or --threads=N) anywhere after the command (args[0] is the binary, args[1] the command): taken out
// of the arguments before the command parses its own flags, so every command has it without each declaring it.
void take_threads_flag(std::vector<char*>& args) {
  for (size_t i = 2; i < args.size(); ++i) {
    const std::string arg = args[i];
    const bool joined = arg.rfind("--threads=", 0) == 0;
    if (arg != "--threads" && !joined) continue;
    std::string value = joined ? arg.substr(10) : (i + 1 < args.size() ? args[i + 1] : "");
    const bool digits =
        !value.empty() && value.size() <= 4 && value.find_first_not_of("0123456789") == std::string::npos;
    if (!digits)
      throw lf::cmd::UsageError(fmt::format("--threads: cannot parse '{}' (expected a thread count)", value));
    const int threads = std::stoi(value);
    LF_CHECK(threads >= 1, "--threads {}: expected 1 or more", threads);
    omp_set_num_threads(threads);
    args.erase(args.begin() + long(i), args.begin() + long(i) + (joined ? 1 : 2));
    return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    fmt::print("{}", fmt::format(kUsage, lf::kVersion, lf::kGitCommit));
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    fmt::print("lightforce {} ({})\n", lf::kVersion, lf::kGitCommit);
    return 0;
  }
  const std::string command = argv[1];
  try {
    std::vector<char*> args(argv, argv + argc);
    take_threads_flag(args);
    argc = int(args.size());
    args.push_back(nullptr);  // argv[argc] is null, as for main's own
    argv = args.data();
    if (command == "generate") return lf::cmd::generate(argc - 1, argv + 1);
    if (command == "batch") return lf::cmd::batch(argc - 1, argv + 1);
    if (command == "merge-manifests") return lf::cmd::merge_manifests(argc - 1, argv + 1);
    if (command == "decode") return lf::cmd::decode(argc - 1, argv + 1);
    if (command == "encode-text") return lf::cmd::encode_text(argc - 1, argv + 1);
    if (command == "inspect") return lf::cmd::inspect(argc - 1, argv + 1);
    if (command == "bench") return lf::cmd::bench(argc - 1, argv + 1);
    if (command == "profile-sparsity") return lf::cmd::profile_sparsity(argc - 1, argv + 1);
    if (command == "compare-dense") return lf::cmd::compare_dense(argc - 1, argv + 1);
    if (command == "plan-mask") return lf::cmd::plan_mask(argc - 1, argv + 1);
    if (command == "check-prompts") return lf::cmd::check_prompts(argc - 1, argv + 1);
  } catch (const cxxopts::exceptions::exception& error) {
    fmt::print(stderr, "lightforce {}: {} (see lightforce {} --help)\n", command, error.what(), command);
    return 2;
  } catch (const lf::cmd::UsageError& error) {
    fmt::print(stderr, "lightforce {}: {} (see lightforce {} --help)\n", command, error.what(), command);
    return 2;
  } catch (const lf::Error& error) {
    fmt::print(stderr, "lightforce {}: error: {}\n", command, error.what());
    return 1;
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "lightforce {}: error: out of host memory\n", command);
    return 1;
  } catch (const std::exception& error) {
    fmt::print(stderr, "lightforce {}: error: {}\n", command, error.what());
    return 1;
  }
  fmt::print(stderr, "lightforce: unknown command '{}' (see lightforce --help)\n", command);
  return 2;
}
