// lightforce generate: prompt -> text context -> chunk loop -> decoder -> MP4 / frames / latents.
#include <cxxopts.hpp>
#include <fmt/format.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "commands.h"
#include "config/config.h"
#include "core/error.h"
#include "gates.h"
#include "machine_output.h"
#include "io/atomic_file.h"
#include "model/decoder.h"
#include "pipeline/prompt_schedule.h"
#include "run_setup.h"
#include "video_run.h"

namespace lf::cmd {

namespace {

struct OutputOptions {
  std::string output, frames_dir, save_latents, noise, save_noise;
  bool no_video = false, quiet = false, json = false, print_config = false;
};

cxxopts::Options generate_flags() {
  cxxopts::Options flags("lightforce generate", "Generate a video chunk by chunk (Self-Forcing AR pipeline).");
  add_run_flags(flags);
  flags.add_options("input")
      ("prompt-schedule", "prompt switches by chunk, e.g. \"0:a red circle moves right;4:a blue square falls\" "
       "(instead of --prompt; pipeline.recache_on_switch rebuilds the KV cache at each switch)",
       cxxopts::value<std::string>());
  flags.add_options("input")("noise", "read every random draw from this safetensors file (noise_initial, "
                             "renoise_c{c}_s{s})", cxxopts::value<std::string>());
  flags.add_options("output")
      ("o,output", "MP4 path (H.264); '-': fragmented MP4 to stdout as each chunk finishes (pipe it into ffplay -); "
       "default lightforce.mp4, none with --save-latents unless -o is given",
       cxxopts::value<std::string>())
      ("no-video", "do not write an MP4 (use with --save-latents or --frames-dir)")
      ("frames-dir", "also write each frame as an image into this directory (PNG; PPM without OpenCV)",
       cxxopts::value<std::string>())
      ("save-latents", "write the final latents [F, C, H, W] as safetensors", cxxopts::value<std::string>())
      ("save-noise", "write every random draw as safetensors (replay with --noise)", cxxopts::value<std::string>())
      ("fps", "video frame rate (sets output.fps)", cxxopts::value<int>())
      ("expect-sha256", "exit 1 when an output's sha256 differs: [video=|latents=|noise=]HEX (bare: the video, "
       "else the latents); the file stays written", cxxopts::value<std::vector<std::string>>());
  flags.add_options("reporting")
      ("q,quiet", "no progress on stderr")
      ("json", "print a JSON summary on stdout")
      ("print-config", "print the merged config as YAML and exit")
      ("h,help", "show this help");
  return flags;
}

// `-o -`: the video goes to stdout as each chunk finishes (docs/cli.md, "Streaming to a pipe"). Refuses what would
// mix other bytes into the video or pour it onto a terminal, before any work (usage errors, exit 2). Returns the
// descriptor to write the video to: a duplicate of stdout, while fd 1 itself now points at stderr, so a stray
// print from any library lands on the terminal instead of inside the MP4.
int open_stdout_stream(const OutputOptions& options) {
  if (options.json)
    throw cxxopts::exceptions::parsing("--json prints to stdout, which -o - uses for the video: drop --json or give "
                                       "-o a file");
  LF_CHECK(::fcntl(STDOUT_FILENO, F_GETFL) != -1, "-o -: stdout is closed");
  if (::isatty(STDOUT_FILENO))
    throw cxxopts::exceptions::parsing("-o - writes binary video to stdout, which is a terminal: pipe it into a "
                                       "player (lightforce generate ... -o - | ffplay -) or give -o a file");
  // A reader that exits early (a closed player, `| head -c N`) must give one error line from the failed write, not
  // a silent death by SIGPIPE; nothing else here writes to a pipe or socket.
  ::signal(SIGPIPE, SIG_IGN);
  std::fflush(stdout);
  const int video_fd = ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
  LF_CHECK(video_fd >= 0, "-o -: cannot duplicate stdout: {}", std::strerror(errno));
  if (::dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
    // No stderr either: stray prints go nowhere rather than into the video.
    const int null_fd = ::open("/dev/null", O_WRONLY);
    LF_CHECK(null_fd >= 0 && ::dup2(null_fd, STDOUT_FILENO) >= 0, "-o -: cannot detach stdout: {}",
             std::strerror(errno));
    ::close(null_fd);
  }
  return video_fd;
}

}  // namespace

int generate(int argc, char** argv) {
  cxxopts::Options flags = generate_flags();
  const auto result = parse_flags(flags, argc, argv);
  if (result.count("help")) {
    fmt::print("{}", flags.help());
    return 0;
  }
  RunFlags run_flags = read_run_flags(result);
  OutputOptions options;
  auto text = [&](const char* name) { return result.count(name) ? result[name].as<std::string>() : std::string(); };
  options.output = text("output");
  options.frames_dir = text("frames-dir");
  options.save_latents = text("save-latents");
  options.noise = text("noise");
  options.save_noise = text("save-noise");
  options.no_video = result.count("no-video");
  options.quiet = result.count("quiet");
  options.json = result.count("json");
  options.print_config = result.count("print-config");
  const std::string prompt_schedule = text("prompt-schedule");
  if (!prompt_schedule.empty()) {
    LF_USAGE_CHECK(run_flags.prompt.empty() && run_flags.text_embeddings.empty(),
                   "--prompt-schedule replaces --prompt and --text-embeddings: give one of them");
    // The model is prepared with the first prompt; the schedule is parsed again once the chunk count is known.
    run_flags.prompt = parse_prompt_schedule(prompt_schedule, INT64_MAX).front().prompt;
  }
  const auto started = std::chrono::steady_clock::now();

  if (options.print_config) {
    fmt::print("{}", to_yaml(load_run_config(run_flags.config)));
    return 0;
  }
  // Every output location is checked before any work, so a typo costs nothing and leaves nothing behind.
  // With --save-latents the video is optional: it is written only when -o asks for it.
  LF_CHECK(!result.count("output") || !options.output.empty(), "-o/--output is empty: give an .mp4 path (or --no-video)");
  const bool write_video = !options.no_video && (!options.output.empty() || options.save_latents.empty());
  if (write_video && options.output.empty()) options.output = "lightforce.mp4";
  const bool to_stdout = write_video && options.output == "-";
  if (write_video && !to_stdout) check_output_writable(options.output, "--output");
  if (write_video && !to_stdout) check_video_extension(options.output, "--output");
  if (!options.save_latents.empty()) check_output_writable(options.save_latents, "--save-latents");
  if (!options.save_noise.empty()) check_output_writable(options.save_noise, "--save-noise");
  check_distinct_outputs({{"--output", write_video && !to_stdout ? options.output : ""},
                          {"--save-latents", options.save_latents},
                          {"--save-noise", options.save_noise}, {"--frames-dir", options.frames_dir}});
  LF_USAGE_CHECK(write_video || !options.frames_dir.empty() || !options.save_latents.empty(),
                 "--no-video without --frames-dir or --save-latents would write nothing");
  const std::vector<std::pair<std::string, std::string>> digest_outputs = {
      {"video", write_video ? options.output : ""}, {"latents", options.save_latents}, {"noise", options.save_noise}};
  const auto expected_digests =
      parse_expected_digests(result, {"video", "latents", "noise"}, write_video ? "video" : "latents");
  check_expected_digests(expected_digests, digest_outputs, /*hash=*/false);
  // Last of the checks: from here on stdout is the video's.
  const int video_fd = to_stdout ? open_stdout_stream(options) : -1;

  PreparedModel prepared = prepare_model(run_flags, options.quiet);
  const RunConfig& run = prepared.run;
  // The first prompt's context is already encoded (prepare_model); a schedule adds the later switches.
  std::vector<ContextSwitch> contexts{{0, prepared.context}};
  if (!prompt_schedule.empty()) {
    const auto schedule = parse_prompt_schedule(prompt_schedule, run.pipeline.frames / run.pipeline.chunk_frames);
    for (size_t i = 1; i < schedule.size(); ++i)
      contexts.push_back({schedule[i].first_chunk, encode_prompt(prepared, schedule[i].prompt)});
  }
  std::unique_ptr<VideoDecoder> decoder;
  if (write_video || !options.frames_dir.empty()) {
    decoder = make_run_decoder(prepared);
    LF_CHECK(decoder, "model '{}' has no video decoder (model.decoder: none): pass --decoder NAME ({}) or write "
             "latents with --save-latents and --no-video", run.model.name, decoder_names());
  }
  VideoOutputs outputs;
  outputs.video = write_video ? options.output : "";
  outputs.video_fd = video_fd;
  outputs.frames_dir = options.frames_dir;
  outputs.latents = options.save_latents;
  outputs.noise = options.noise;
  outputs.save_noise = options.save_noise;
  VideoResult video = run_video(prepared, run, contexts, outputs, decoder.get(), options.quiet);

  const double total_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (!options.quiet) {
    fmt::print(stderr, "lightforce: {} latent frames in {} ({:.2f} frames/s generation), total {}\n",
               run.pipeline.frames, format_seconds(video.generation_seconds),
               double(run.pipeline.frames) / video.generation_seconds, format_seconds(total_seconds));
    if (write_video) fmt::print(stderr, "wrote {} ({} frames, {}x{}, {} fps)\n", to_stdout ? "stdout" : options.output,
                                video.video_frames, decoder->width(), decoder->height(), run.output.fps);
  }
  if (options.json) {
    video.summary["total_seconds"] = total_seconds;
    fmt::print("{}\n", versioned(video.summary, run_provenance(run_flags, run)).dump(2));
  }
  const std::string mismatch = check_expected_digests(expected_digests, digest_outputs, /*hash=*/true);
  if (!mismatch.empty()) {
    fmt::print(stderr, "lightforce generate: {}\n", mismatch);
    return 1;
  }
  return 0;
}

}  // namespace lf::cmd
