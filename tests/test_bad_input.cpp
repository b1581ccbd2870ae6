// The bad-input catalogue: every way a user (or a stranger's file) can hand the binary something wrong, one row
// each, across every subcommand. Each row asserts the exact exit code, a single stderr line that names the
// culprit, and that nothing (not even a temporary) is left at the row's output path. docs/cli.md lists the
// exit codes; a new subcommand adds its rows to kCatalogue below (see docs/fuzzing.md, "Adding a row").
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "config/config.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "model/wan_weights.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

std::string dir() { return lf::test::tmp_path("bad_input"); }
std::string at(const std::string& name) { return dir() + "/" + name; }

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

bool has_temp_leftovers(const std::string& final_path) {
  const fs::path folder = fs::path(final_path).parent_path();
  const std::string stem = fs::path(final_path).filename().string() + ".tmp-";
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(folder, error))
    if (entry.path().filename().string().rfind(stem, 0) == 0) return true;
  return false;
}

bool is_char_device(const std::string& path) {
  struct stat info {};
  return ::lstat(path.c_str(), &info) == 0 && S_ISCHR(info.st_mode);
}

// Private copies of /dev/null and /dev/full (as root, mknod): a writer that renamed over its output would replace
// these nodes, never the system's, and the row sees it. Without the privilege the system nodes are used (then a
// rename over them fails for lack of write access to /dev, which the row also sees as a non-device file or error).
std::string device_node(const char* name, unsigned minor) {
  const std::string path = at(name);
  ::unlink(path.c_str());
  if (::mknod(path.c_str(), S_IFCHR | 0666, makedev(1, minor)) == 0) {
    const int fd = ::open(path.c_str(), O_WRONLY);  // a nodev mount refuses to open it
    if (fd >= 0) {
      ::close(fd);
      return path;
    }
    ::unlink(path.c_str());
  }
  return std::string("/dev/") + name;
}

// The tiny model with an external text context, so weight files and embedding files can be swapped per row.
const char* const kTinyEmbeddings = "-m tiny --set model.text_encoder=embeddings --quiet --frames 6 ";

lf::RunConfig tiny_config() {
  return lf::load_run_config({"tiny", "", {"model.text_encoder=embeddings"}});
}

// Every fixture a row names, written once per test run with fresh random values (never zeros).
struct Fixtures {
  std::string weights, nan_weights, nan_weight_name, wrong_shape_weights, wrong_shape_name;
  std::string embeddings, nan_embeddings, huge_embeddings, wide_embeddings, int_embeddings, two_tensor_embeddings;
  std::string noise_missing_initial, noise_wrong_shape, noise_int, noise_nan, nan_latents;
  std::string truncated_safetensors, garbage, huge_header, bare_pickle;
  std::string bad_yaml, unknown_key_yaml, wrong_type_yaml, duplicate_key_yaml, list_key_yaml;
  std::string q, k, q_nan, q_rank2, fifo, existing_dir, existing_file, null_node, full_node;
  std::string batch_prompts, batch_bad_json, batch_unknown_key, batch_negative_seed, batch_same_out;
  std::string not_a_reference;
};

const Fixtures& fixtures() {
  static const Fixtures made = [] {
    Fixtures f;
    fs::remove_all(dir());
    fs::create_directories(dir());
    const lf::RunConfig tiny = tiny_config();
    lf::WanWeights weights = lf::random_weights(tiny.model);
    f.weights = at("tiny.safetensors");
    lf::save_weights(tiny.model, weights, f.weights, lf::DType::F32);

    std::vector<lf::ParamSlot> slots = lf::parameter_slots(tiny.model, weights);
    lf::ParamSlot& poisoned = slots[slots.size() / 2];
    f.nan_weight_name = poisoned.name;
    const float kept = poisoned.target->f32()[3];
    poisoned.target->f32()[3] = NAN;
    f.nan_weights = at("tiny_nan.safetensors");
    lf::save_weights(tiny.model, weights, f.nan_weights, lf::DType::F32);
    poisoned.target->f32()[3] = kept;

    // The good checkpoint again, with one tensor one column short.
    const auto good = lf::Checkpoint::open(f.weights);
    std::vector<std::pair<std::string, lf::Tensor>> tensors;
    for (const lf::TensorEntry& entry : good->entries()) {
      lf::Tensor tensor = good->view(entry.name).clone();
      if (f.wrong_shape_name.empty() && entry.shape.size() == 2 && entry.shape[1] > 1) {
        f.wrong_shape_name = entry.name;
        tensor = lf::test::random_tensor({entry.shape[0], entry.shape[1] - 1}, 7);
      }
      tensors.emplace_back(entry.name, tensor);
    }
    f.wrong_shape_weights = at("tiny_wrong_shape.safetensors");
    lf::write_safetensors(f.wrong_shape_weights, tensors);

    const int64_t text_dim = tiny.model.text_dim;
    f.embeddings = at("context.safetensors");
    lf::write_safetensors(f.embeddings, {{"context", lf::test::random_tensor({5, text_dim}, 1)}});
    lf::Tensor poisoned_context = lf::test::random_tensor({5, text_dim}, 2);
    poisoned_context.f32()[9] = INFINITY;
    f.nan_embeddings = at("context_inf.safetensors");
    lf::write_safetensors(f.nan_embeddings, {{"context", poisoned_context}});
    // Finite, so the load check passes, but 3e38 overflows inside the model: the per-chunk latents check stops it.
    lf::Tensor huge_context = lf::test::random_tensor({5, text_dim}, 14);
    for (int64_t i = 0; i < huge_context.numel(); ++i)
      huge_context.f32()[i] = huge_context.f32()[i] < 0 ? -3e38f : 3e38f;
    f.huge_embeddings = at("context_huge.safetensors");
    lf::write_safetensors(f.huge_embeddings, {{"context", huge_context}});
    f.wide_embeddings = at("context_wide.safetensors");
    lf::write_safetensors(f.wide_embeddings, {{"context", lf::test::random_tensor({5, text_dim + 1}, 3)}});
    lf::Tensor integers = lf::Tensor::empty({5, text_dim}, lf::DType::I32);
    for (int64_t i = 0; i < integers.numel(); ++i) static_cast<int32_t*>(integers.raw())[i] = int32_t(i % 7) + 1;
    f.int_embeddings = at("context_int.safetensors");
    lf::write_safetensors(f.int_embeddings, {{"context", integers}});
    f.two_tensor_embeddings = at("context_two.safetensors");
    lf::write_safetensors(f.two_tensor_embeddings, {{"first", lf::test::random_tensor({5, text_dim}, 4)},
                                                    {"second", lf::test::random_tensor({5, text_dim}, 5)}});

    // Noise files for the 6-frame tiny run: [6, 3, 32, 32] initial draws.
    const lf::Shape noise_shape{6, 3, 32, 32};
    f.noise_missing_initial = at("noise_missing.safetensors");
    lf::write_safetensors(f.noise_missing_initial, {{"noise", lf::test::random_tensor(noise_shape, 6)}});
    f.noise_wrong_shape = at("noise_shape.safetensors");
    lf::write_safetensors(f.noise_wrong_shape, {{"noise_initial", lf::test::random_tensor({6, 3, 32, 16}, 8)}});
    lf::Tensor int_noise = lf::Tensor::empty(noise_shape, lf::DType::I32);
    for (int64_t i = 0; i < int_noise.numel(); ++i) static_cast<int32_t*>(int_noise.raw())[i] = int32_t(i % 5) - 2;
    f.noise_int = at("noise_int.safetensors");
    lf::write_safetensors(f.noise_int, {{"noise_initial", int_noise}});
    lf::Tensor nan_noise = lf::test::random_tensor(noise_shape, 9);
    nan_noise.f32()[100] = NAN;
    f.noise_nan = at("noise_nan.safetensors");
    lf::write_safetensors(f.noise_nan, {{"noise_initial", nan_noise}});
    f.nan_latents = at("latents_nan.safetensors");
    lf::write_safetensors(f.nan_latents, {{"latents", nan_noise}});

    // Damaged containers: a good file cut in half, random bytes, a header length of 1 TB, a bare pickle.
    std::ifstream good_file(f.weights, std::ios::binary);
    std::stringstream good_bytes;
    good_bytes << good_file.rdbuf();
    f.truncated_safetensors = at("truncated.safetensors");
    write_text(f.truncated_safetensors, good_bytes.str().substr(0, good_bytes.str().size() / 2));
    f.garbage = at("garbage.safetensors");
    std::string noise_bytes(4096, '\0');
    uint64_t state = 12345;
    for (char& byte : noise_bytes) byte = char((state = state * 6364136223846793005ull + 1) >> 56);
    write_text(f.garbage, noise_bytes);
    f.huge_header = at("huge_header.safetensors");
    write_text(f.huge_header, std::string("\x00\x00\x00\x00\x00\x01\x00\x00{\"a\":1}", 15));
    f.bare_pickle = at("bare_pickle.pt");
    fs::copy_file(std::string(LF_FIXTURES_DIR) + "/io/plain_protocol2.pkl", f.bare_pickle);

    f.bad_yaml = at("bad.yaml");
    write_text(f.bad_yaml, "model: {dim: [1, 2\n");
    f.unknown_key_yaml = at("unknown_key.yaml");
    write_text(f.unknown_key_yaml, "model: {dim: 32, hedas: 2}\n");
    f.wrong_type_yaml = at("wrong_type.yaml");
    write_text(f.wrong_type_yaml, "model: {dim: lots}\n");
    f.duplicate_key_yaml = at("duplicate_key.yaml");
    write_text(f.duplicate_key_yaml, "pipeline:\n  frames: 6\n  frames: 9\n");
    f.list_key_yaml = at("list_key.yaml");
    write_text(f.list_key_yaml, "pipeline:\n  [frames]: 6\n");

    // plan-mask inputs: 2 frames of 64 tokens, 2 heads, head_dim 16.
    f.q = at("q.safetensors");
    lf::write_safetensors(f.q, {{"q", lf::test::random_tensor({64, 2, 16}, 10)}});
    f.k = at("k.safetensors");
    lf::write_safetensors(f.k, {{"k", lf::test::random_tensor({128, 2, 16}, 11)}});
    lf::Tensor nan_q = lf::test::random_tensor({64, 2, 16}, 12);
    nan_q.f32()[5] = NAN;
    f.q_nan = at("q_nan.safetensors");
    lf::write_safetensors(f.q_nan, {{"q", nan_q}});
    f.q_rank2 = at("q_rank2.safetensors");
    lf::write_safetensors(f.q_rank2, {{"q", lf::test::random_tensor({64, 32}, 13)}});

    // batch prompts files: a good one, then one fault each on line 2.
    f.batch_prompts = at("prompts.txt");
    write_text(f.batch_prompts, "a red circle\na blue square falls\n");
    f.batch_bad_json = at("bad.jsonl");
    write_text(f.batch_bad_json, "{\"prompt\": \"a red circle\"}\n{\"prompt\": \"a blue square\",}\n");
    f.batch_unknown_key = at("unknown_key.jsonl");
    write_text(f.batch_unknown_key, "{\"prompt\": \"a red circle\"}\n{\"prompt\": \"a blue square\", \"sead\": 3}\n");
    f.batch_negative_seed = at("negative_seed.jsonl");
    write_text(f.batch_negative_seed, "{\"prompt\": \"a red circle\"}\n{\"prompt\": \"a blue square\", \"seed\": -1}\n");
    f.batch_same_out = at("same_out.jsonl");
    write_text(f.batch_same_out, "{\"prompt\": \"a red circle\", \"out\": \"x\"}\n"
                                 "{\"prompt\": \"a blue square\", \"out\": \"x.mp4\"}\n");

    // A directory whose reference.json is JSON but not a reference.
    f.not_a_reference = at("not_a_reference");
    fs::create_directories(f.not_a_reference);
    write_text(f.not_a_reference + "/reference.json", "{\"kind\": \"something else\"}\n");

    f.fifo = at("fifo");
    REQUIRE(::mkfifo(f.fifo.c_str(), 0666) == 0);
    f.existing_dir = at("a_directory");
    fs::create_directories(f.existing_dir);
    f.existing_file = at("a_file");
    write_text(f.existing_file, "not a directory\n");
    f.null_node = device_node("null", 3);
    f.full_node = device_node("full", 7);
    return f;
  }();
  return made;
}

struct Outcome {
  int exit_code = -1;   // when it exited
  int signal = 0;       // when a signal ended it
  bool timed_out = false;
  std::string err;
};

// Runs the binary through `sh -c "exec ..."` (so the pid is the binary's), stdout discarded. With `send`, waits
// for a temporary beside `watch` to appear (the run is under way) and then sends that signal. Every run is killed
// after 120 s: a hang (a FIFO read, say) fails its row instead of the suite.
Outcome run_binary(const std::string& args, int send = 0, const std::string& watch = "") {
  const std::string err_path = at("stderr_" + std::to_string(::getpid()) + ".txt");
  const std::string command = "exec " + std::string(LF_BINARY) + " " + args + " >/dev/null 2>" + err_path;
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  Outcome outcome;
  const auto started = std::chrono::steady_clock::now();
  bool signalled = send == 0;
  int status = 0;
  while (true) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (elapsed > 120) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      outcome.timed_out = true;
      break;
    }
    if (!signalled && has_temp_leftovers(watch)) {
      ::kill(pid, send);
      signalled = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(signalled ? 20 : 5));
  }
  if (WIFEXITED(status)) outcome.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) outcome.signal = WTERMSIG(status);
  std::ifstream err(err_path);
  std::stringstream text;
  text << err.rdbuf();
  outcome.err = text.str();
  return outcome;
}

struct Row {
  std::string name;     // what the row is about
  std::string args;     // the command line after the binary
  int exit_code;        // exact; 1 = lf::Error, 2 = usage error
  std::string culprit;  // must appear in the one stderr line (empty with exit code 0: no line at all)
  std::string output;   // must not exist afterwards, nor a temporary beside it ("" = none)
  int send = 0;         // a signal to send once the output's temporary exists; then the process must die of it
};

std::vector<Row> catalogue() {
  const Fixtures& f = fixtures();
  const std::string io = std::string(LF_FIXTURES_DIR) + "/io/";
  const std::string out = at("out.mp4"), latents = at("latents.safetensors"), noise = at("noise.safetensors");
  const std::string quick = "generate -m tiny --quiet --prompt 'a red circle moves right' --frames 6 ";
  const std::string tiny = std::string("generate ") + kTinyEmbeddings + "--text-embeddings " + f.embeddings + " ";
  const std::string to_latents = " --no-video --save-latents " + latents;
  // plan-mask on the given q / k files (6 frames: 2 chunks), with tokens per frame, chunk and output.
  auto plan_on = [&](const std::string& q, const std::string& k, int tokens_per_frame, int chunk,
                     const std::string& output) {
    return "plan-mask --tokens-per-frame " + std::to_string(tokens_per_frame) + " --chunk=" + std::to_string(chunk) +
           " --set pipeline.frames=6 --queries " + q + " --keys " + k + " --out " + output;
  };
  auto plan = [&](int tokens_per_frame, int chunk) { return plan_on(f.q, f.k, tokens_per_frame, chunk, latents); };
  // batch: nothing may appear at its --out-dir (not even the directory) when the command line or file is wrong.
  const std::string batch_out = at("batch_out"), merged = at("merged.jsonl");
  const std::string batch = "batch -m tiny --quiet --frames 3 --out-dir " + batch_out + " --prompts ";
  const std::string compare = "compare-dense -m tiny --quiet --prompt 'a red circle' --frames 6 --attention block-topk ";
  const std::string hex64(64, 'a');
  std::vector<Row> rows = {
      // --- usage ---
      {"unknown command", "frobnicate", 2, "'frobnicate'", ""},
      {"unknown flag", quick + "--frobnicate -o " + out, 2, "frobnicate", out},
      {"unparsable number", quick + "--seed banana -o " + out, 2, "--seed: cannot parse 'banana'", out},
      {"stray argument", quick + "stray -o " + out, 2, "'stray'", out},
      {"second --prompt", quick + "--prompt 'a blue square falls' -o " + out, 2, "--prompt given 2 times", out},
      {"video named .png", quick + "-o " + at("video.png"), 1, "name it *.mp4", at("video.png")},
      {"empty -o", quick + "-o ''", 1, "-o/--output is empty", ""},
      // -o - owns stdout (the TTY and broken-pipe cases need a terminal or a pipe: tests/test_stream.cpp)
      {"-o - with --json", quick + "--json -o -", 2, "--json prints to stdout, which -o - uses", ""},
      {"batch takes no -o", batch + f.batch_prompts + " -o -", 2, "Option \u2018o\u2019 does not exist", batch_out},
      // --- prompt schedules (generate --prompt-schedule) ---
      {"schedule past the last chunk", "generate -m tiny --quiet --frames 6 --prompt-schedule '0:a red circle;5:a blue "
       "square' -o " + out, 1, "chunk 5 is past the last chunk 1", out},
      {"schedule entry without a chunk", "generate -m tiny --quiet --frames 6 --prompt-schedule 'a red circle' -o " + out,
       1, "not CHUNK:PROMPT", out},
      {"schedule beside --prompt", quick + "--prompt-schedule '0:a blue square' -o " + out, 2,
       "--prompt-schedule replaces --prompt", out},
      // --- frames and sizes ---
      {"frames 0", quick + "--frames 0 -o " + out, 1, "frames must be > 0", out},
      {"frames negative", quick + "--frames=-3 -o " + out, 1, "frames must be > 0", out},
      {"frames not whole chunks", quick + "--frames 7 -o " + out, 1, "not a multiple of the chunk size 3", out},
      {"frames overflow int64 sizes", quick + "--frames 9223372036854775806 -o " + out, 1, "pipeline.frames", out},
      {"frames beyond memory", quick + "--frames 300000000 -o " + out, 1, "GiB of host memory", out},
      {"absurd resolution overflows", quick + "--set model.latent_height=4000000000 --set "
       "model.latent_width=4000000000 -o " + out, 1, "overflow", out},
      {"absurd resolution beyond memory", quick + "--set model.latent_height=200000 --set model.latent_width=200000 "
       "-o " + out, 1, "GiB of host memory", out},
      {"resolution not whole patches", quick + "--set model.latent_height=33 -o " + out, 1,
       "not a multiple of the patch", out},
      // --- configs and overrides ---
      {"malformed YAML", quick + "--model " + f.bad_yaml + " -o " + out, 1, "bad.yaml", out},
      {"unknown config key", quick + "--model " + f.unknown_key_yaml + " -o " + out, 1, "model.hedas", out},
      {"wrong value type", quick + "--model " + f.wrong_type_yaml + " -o " + out, 1, "model.dim", out},
      {"duplicate YAML key", quick + "--model " + f.duplicate_key_yaml + " -o " + out, 1, "'frames' appears twice",
       out},
      {"list as YAML key", quick + "--model " + f.list_key_yaml + " -o " + out, 1, "not a plain name", out},
      {"unknown model", quick + "--model no-such-model -o " + out, 1, "no-such-model", out},
      {"unknown attention preset", quick + "--attention magic -o " + out, 1, "'magic'", out},
      {"--set unknown key", quick + "--set pipeline.shfit=2 -o " + out, 1, "pipeline.shfit", out},
      {"--set without value", quick + "--set pipeline.shift -o " + out, 1, "'pipeline.shift': expected key=value", out},
      {"--set unparsable value", quick + "--set 'pipeline.shift=[1' -o " + out, 1, "'pipeline.shift=[1'", out},
      {"--set wrong type", quick + "--set pipeline.shift=fast -o " + out, 1, "pipeline.shift", out},
      {"--set out of range", quick + "--set attention.top_p=2 -o " + out, 1, "attention.top_p", out},
      {"--set through a value", quick + "--set pipeline.frames.x=1 -o " + out, 1, "'frames' is not a section", out},
      {"--set unknown backend", quick + "--set attention.backend=magic -o " + out, 1, "'magic'", out},
      {"--fps 0", quick + "--fps 0 -o " + out, 1, "output.fps", out},
      {"--device unknown", quick + "--device gpu -o " + out, 1, "--device 'gpu'", out},
      // --- weights ---
      {"weights missing", tiny + "--weights /nonexistent/w.safetensors -o " + out, 1, "/nonexistent/w.safetensors",
       out},
      {"weights truncated safetensors", tiny + "--weights " + f.truncated_safetensors + " -o " + out, 1,
       "truncated.safetensors", out},
      {"weights garbage", tiny + "--weights " + f.garbage + " -o " + out, 1, "garbage.safetensors", out},
      {"weights huge header", tiny + "--weights " + f.huge_header + " -o " + out, 1, "huge_header.safetensors", out},
      {"weights wrong shape", tiny + "--weights " + f.wrong_shape_weights + " -o " + out, 1, f.wrong_shape_name, out},
      {"weights NaN", tiny + "--weights " + f.nan_weights + " -o " + out, 1, "'" + f.nan_weight_name + "'", out},
      {"weights truncated zip", tiny + "--weights " + io + "truncated.pt -o " + out, 1, "truncated.pt", out},
      {"weights foreign global os.system", tiny + "--weights " + io + "malicious_os_system.pt -o " + out, 1,
       "forbidden global", out},
      {"weights foreign global eval", tiny + "--weights " + io + "malicious_eval.pt -o " + out, 1, "forbidden global",
       out},
      {"weights bare pickle", tiny + "--weights " + f.bare_pickle + " -o " + out, 1, "bare Python pickle", out},
      {"weights of another model", tiny + "--weights " + io + "state_dict.pt -o " + out, 1, "missing tensor", out},
      {"weights a FIFO", tiny + "--weights " + f.fifo + " -o " + out, 1, "not a regular file", out},
      {"weights a directory", tiny + "--weights " + f.existing_dir + " -o " + out, 1, "a_directory", out},
      // --- text embeddings ---
      {"embeddings and prompt", tiny + "--prompt 'a red circle' -o " + out, 2, "not both", out},
      {"embeddings missing", std::string("generate ") + kTinyEmbeddings +
       "--text-embeddings /nonexistent/e.safetensors -o " + out, 1, "/nonexistent/e.safetensors", out},
      {"embeddings wrong width", std::string("generate ") + kTinyEmbeddings + "--text-embeddings " + f.wide_embeddings +
       " -o " + out, 1, "'context' has shape [5, 65]", out},
      {"embeddings wrong dtype", std::string("generate ") + kTinyEmbeddings + "--text-embeddings " + f.int_embeddings +
       " -o " + out, 1, "dtype i32", out},
      {"embeddings wrong names", std::string("generate ") + kTinyEmbeddings + "--text-embeddings " +
       f.two_tensor_embeddings + " -o " + out, 1, "one named 'context'", out},
      {"embeddings Inf", std::string("generate ") + kTinyEmbeddings + "--text-embeddings " + f.nan_embeddings + " -o " +
       out, 1, "context_inf.safetensors': tensor 'context' has a non-finite value", out},
      {"run diverges (latents not finite)", std::string("generate ") + kTinyEmbeddings + "--text-embeddings " +
       f.huge_embeddings + " -o " + out, 1, "chunk 0: the latents hold a NaN or Inf", out},
      // --- noise files ---
      {"noise missing tensor", quick + "--noise " + f.noise_missing_initial + " -o " + out, 1, "'noise_initial'", out},
      {"noise wrong shape", quick + "--noise " + f.noise_wrong_shape + " -o " + out, 1, "[6, 3, 32, 16]", out},
      {"noise wrong dtype", quick + "--noise " + f.noise_int + " -o " + out, 1, "dtype i32", out},
      {"noise NaN", quick + "--noise " + f.noise_nan + " -o " + out, 1, "tensor 'noise_initial' has a non-finite", out},
      // --- outputs ---
      {"output in a missing directory", quick + "-o /nonexistent_dir/out.mp4", 1, "/nonexistent_dir", ""},
      {"output an existing directory", quick + "-o " + f.existing_dir, 1, "is a directory", ""},
      {"output a FIFO", quick + "--no-video --save-latents " + f.fifo, 1, "is a FIFO", ""},
      {"output under a file", quick + "-o " + f.existing_file + "/out.mp4", 1, "does not exist", ""},
      {"two outputs one path", quick + "--save-noise " + latents + to_latents, 1, "name the same file", latents},
      {"nothing to write", quick + "--no-video", 2, "would write nothing", ""},
      // As root every directory passes access(W_OK), so /proc (where nothing can be created) is the unwritable
      // place: refused up front for other users, at the write for root; either way the path is named.
      {"unwritable path", quick + "--no-video --save-latents /proc/latents.safetensors", 1, "/proc/latents.safetensors",
       ""},
      {"full disk (latents)", quick + "--no-video --save-latents " + f.full_node, 1, "No space left on device", ""},
      {"device written in place", quick + "--no-video --save-latents " + f.null_node, 0, "", ""},
      // --- inspect ---
      {"inspect without a file", "inspect", 2, "no checkpoint given", ""},
      {"inspect missing file", "inspect /nonexistent.pt", 1, "/nonexistent.pt", ""},
      {"inspect a FIFO", "inspect " + f.fifo, 1, "not a regular file", ""},
      {"inspect garbage", "inspect " + f.garbage, 1, "garbage.safetensors", ""},
      {"inspect corrupt CRC", "inspect " + io + "corrupt_crc.pt", 1, "CRC", ""},
      {"inspect cyclic pickle", "inspect " + io + "cyclic.pt", 1, "cyclic.pt", ""},
      // --- profile-sparsity / compare-dense ---
      {"profile-sparsity out-dir is a file", "profile-sparsity -m tiny --quiet --prompt 'a red circle' --frames 6 "
       "--out-dir " + f.existing_file, 1, "a_file", ""},
      {"profile-sparsity bad heatmap list", "profile-sparsity -m tiny --quiet --prompt 'a red circle' --frames 6 "
       "--heatmap-layers x --out-dir " + at("profile"), 1, "--heatmap-layers", at("profile") + "/sparsity.json"},
      {"compare-dense against itself", "compare-dense -m tiny --quiet --prompt 'a red circle' --frames 6 --attention "
       "dense --out-dir " + at("compare"), 1, "choose a sparse backend", at("compare") + "/compare-dense.json"},
      {"compare-dense negative drift threshold", "compare-dense -m tiny --quiet --prompt 'a red circle' --frames 6 "
       "--attention block-topk --drift-db -1 --out-dir " + at("drift"), 1, "--drift-db -1", at("drift") + "/compare-dense.json"},
      {"compare-dense bad sweep", "compare-dense -m tiny --quiet --prompt 'a red circle' --frames 6 --attention "
       "block-topk --sweep pipeline.shift=1,2 --out-dir " + at("compare"), 1, "pipeline.shift",
       at("compare") + "/sweep.csv"},
      // --- report kinds (--report) ---
      {"compare-dense unknown report kind", compare + "--report pdf --out-dir " + at("report"), 1,
       "--report 'pdf': not a report kind (known: html)", at("report")},
      {"compare-dense report kind misspelt in a list", compare + "--report html,HTML --out-dir " + at("report"), 1,
       "--report 'HTML'", at("report")},
      {"profile-sparsity unknown report kind", "profile-sparsity -m tiny --quiet --prompt 'a red circle' --frames 6 "
       "--report markdown --out-dir " + at("report"), 1, "--report 'markdown'", at("report")},
      {"report of a saved reference", compare + "--save-reference " + at("ref") + " --report html", 2,
       "--save-reference only saves a run", at("ref")},
      // --- CI gates (compare-dense --fail-below / --fail-above / --reference, --expect-sha256) ---
      {"gate unknown metric", compare + "--fail-below flicker=3 --out-dir " + at("compare"), 1,
       "'flicker' is not a metric this flag takes", at("compare") + "/compare-dense.json"},
      {"gate value not a number", compare + "--fail-below psnr=high --out-dir " + at("compare"), 1,
       "'high' is not a number", at("compare") + "/compare-dense.json"},
      {"gate without a value", compare + "--fail-below psnr --out-dir " + at("compare"), 1,
       "expected METRIC=VALUE", at("compare") + "/compare-dense.json"},
      {"gate metric of the other direction", compare + "--fail-below latent_rel_l2=0.1 --out-dir " + at("compare"), 1,
       "--fail-below 'latent_rel_l2=0.1'", at("compare") + "/compare-dense.json"},
      {"gate on a sweep", compare + "--sweep attention.sparsity=0.5 --fail-below psnr=30 --out-dir " + at("compare"),
       2, "not a --sweep", at("compare") + "/sweep.csv"},
      {"sweep key repeated", compare + "--sweep attention.sparsity=0.5 --sweep attention.sparsity=0.7 --out-dir " +
       at("compare"), 1, "attention.sparsity given twice", at("compare") + "/sweep.csv"},
      {"reference missing", compare + "--reference /nonexistent/ref --out-dir " + at("compare"), 1,
       "'/nonexistent/ref': no reference.json", at("compare") + "/compare-dense.json"},
      {"reference not a reference", compare + "--reference " + f.not_a_reference + " --out-dir " + at("compare"), 1,
       "is not a lightforce reference", at("compare") + "/compare-dense.json"},
      {"save and compare a reference at once", compare + "--save-reference " + at("ref") + " --reference " + at("ref"),
       2, "--save-reference only saves a run", at("ref") + "/reference.json"},
      {"save-reference under a file", compare + "--save-reference " + f.existing_file + "/ref", 1,
       "--save-reference '" + f.existing_file + "/ref': cannot create it", ""},
      {"expect-sha256 not hex", quick + "--expect-sha256 xyz -o " + out, 1, "'xyz': a sha256 is 64 hex digits", out},
      {"expect-sha256 unknown output", quick + "--expect-sha256 audio=" + hex64 + " -o " + out, 1,
       "'audio' is not an output of this command", out},
      {"expect-sha256 output not written", quick + "--expect-sha256 noise=" + hex64 + " -o " + out, 2,
       "this run writes no noise", out},
      {"expect-sha256 twice for one output", quick + "--expect-sha256 video=" + hex64 + ",video=" + hex64 + " -o " +
       out, 1, "the video is given two digests", out},
      {"decode expect-sha256 not hex", "decode --decoder pixel --latents " + f.noise_nan + " --save-video-tensor " +
       latents + " --expect-sha256 12", 1, "'12': a sha256 is 64 hex digits", latents},
      // --- plan-mask (no other test covers it) ---
      {"plan-mask without --queries", "plan-mask --keys " + f.k + " --chunk 1 --tokens-per-frame 64 --out " + latents,
       2, "needs --queries", latents},
      {"plan-mask q of rank 2", plan_on(f.q_rank2, f.k, 64, 1, latents), 1, "q_rank2.safetensors", latents},
      {"plan-mask q with NaN", plan_on(f.q_nan, f.k, 64, 1, latents), 1, "tensor 'q' has a non-finite", latents},
      {"plan-mask negative chunk", plan(64, -1), 1, "--chunk -1", latents},
      {"plan-mask chunk past the video", plan(64, 2), 1, "--chunk 2 is outside 0..1", latents},
      {"plan-mask partial frames", plan(48, 1), 1, "not whole frames of 48", latents},
      {"plan-mask q longer than k", plan_on(f.k, f.q, 64, 1, latents), 1, "q has 128 tokens but k only 64", latents},
      {"plan-mask foreign --set", plan(64, 1) + " --set model.dim=3", 1, "'model.dim=3'", latents},
      {"plan-mask out is its own summary", plan_on(f.q, f.k, 64, 1, at("mask.json")), 1, "name the same file",
       at("mask.json")},
      {"plan-mask q a FIFO", plan_on(f.fifo, f.k, 64, 1, latents), 1, "not a regular file", latents},
      // --- decode / encode-text (each fails before reading any weights) ---
      {"decode without latents", "decode -o " + out, 2, "no input: pass --latents", out},
      {"decode nothing to write", "decode --latents " + latents, 2, "nothing to write", ""},
      {"decode latents a FIFO", "decode --decoder pixel --latents " + f.fifo + " --save-video-tensor " + latents, 1,
       "not a regular file", latents},
      {"decode latents with NaN", "decode --decoder pixel --latents " + f.nan_latents + " --save-video-tensor " +
       latents, 1, "non-finite value", latents},
      {"decode two outputs one path", "decode --decoder pixel --latents " + f.noise_nan + " -o " + latents +
       " --save-video-tensor " + latents, 1, "name the same file", latents},
      {"decode chunk-frames 0", "decode --latents " + f.noise_nan + " --chunk-frames 0 -o " + out, 1,
       "--chunk-frames 0", out},
      {"encode-text two inputs", "encode-text --prompt a --ids 1,2 -o " + latents, 2, "exactly one of", latents},
      {"encode-text no output", "encode-text --prompt a", 2, "no output", ""},
      {"encode-text output in a missing directory", "encode-text --prompt a -o /nonexistent_dir/e.safetensors", 1,
       "/nonexistent_dir", ""},
      // --- batch / merge-manifests (docs/batch.md) ---
      {"batch without --prompts", "batch -m tiny --quiet --out-dir " + batch_out, 2, "--prompts FILE", batch_out},
      {"batch prompts file missing", batch + "/nonexistent/p.txt", 1, "/nonexistent/p.txt", batch_out},
      {"batch prompts file a FIFO", batch + f.fifo, 1, "not a regular file", batch_out},
      {"batch malformed JSONL line", batch + f.batch_bad_json, 1, "bad.jsonl' line 2: not valid JSON", batch_out},
      {"batch unknown JSONL key", batch + f.batch_unknown_key, 1, "line 2: unknown key \"sead\"", batch_out},
      {"batch negative JSONL seed", batch + f.batch_negative_seed, 1, "line 2: \"seed\" must be a non-negative",
       batch_out},
      {"batch two entries one output", batch + f.batch_same_out, 1, "line 2: output name 'x' is already used by line 1",
       batch_out},
      {"batch shard out of range", batch + f.batch_prompts + " --shard 2/2", 1, "--shard '2/2'", batch_out},
      {"batch shard malformed", batch + f.batch_prompts + " --shard half", 1, "--shard 'half'", batch_out},
      {"batch device malformed", batch + f.batch_prompts + " --device cuda:x", 1, "--device 'cuda:x'", batch_out},
      {"batch device not there", batch + f.batch_prompts + " --device cuda:99", 1, "--device cuda:99", batch_out},
      {"batch bad --set", batch + f.batch_prompts + " --set pipeline.shfit=2", 1, "pipeline.shfit", batch_out},
      {"batch nothing to write", batch + f.batch_prompts + " --no-video", 2, "would write nothing", batch_out},
      {"batch out-dir is a file", "batch -m tiny --quiet --prompts " + f.batch_prompts + " --out-dir " +
       f.existing_file, 1, "'" + f.existing_file + "' exists and is not a directory", ""},
      {"batch out-dir under a file", "batch -m tiny --quiet --prompts " + f.batch_prompts + " --out-dir " +
       f.existing_file + "/videos", 1, "a_file' is not a directory", ""},
      {"merge-manifests missing manifest", "merge-manifests -o " + merged + " /nonexistent/manifest.jsonl", 1,
       "/nonexistent/manifest.jsonl", merged},
      {"merge-manifests directory without one", "merge-manifests -o " + merged + " " + f.existing_dir, 1,
       "a_directory': no manifest.jsonl", merged},
      // --- bench ---
      {"bench bad sizes", "bench -m tiny --quiet --sizes 12x", 1, "'12x'", ""},
      {"bench out in a missing directory", "bench -m tiny --quiet --sizes 256x256 --out /nonexistent_dir/b.json", 1,
       "/nonexistent_dir", ""},
      {"bench frames 0", "bench -m tiny --quiet --sizes 256x256 --frames 0", 1, "frames must be > 0", ""},
      {"bench unknown decoder", "bench --quiet --sizes 64x64 --set model.layers=1 --decoder vqgan --out " + latents, 1,
       "vqgan", latents},
      {"bench unknown text encoder", "bench --quiet --sizes none --text-encoder umt5-huge --out " + latents, 1,
       "umt5-huge", latents},
      {"bench text encoder tokens 0", "bench --quiet --sizes none --text-encoder umt5-tiny --tokens 0 --out " + latents,
       1, "--tokens 0", latents},
  };
#if LF_WITH_OPENCV  // check-prompts needs OpenCV, and says so first without it
  rows.push_back({"check-prompts missing prompts file", "check-prompts -m tiny --quiet --prompts-file "
                  "/nonexistent/p.txt", 1, "/nonexistent/p.txt", ""});
  rows.push_back({"check-prompts prompts file a FIFO", "check-prompts -m tiny --quiet --prompts-file " + f.fifo, 1,
                  "not a regular file", ""});
  rows.push_back({"check-prompts zero seeds", "check-prompts -m tiny --quiet --seeds 0", 1, "--seeds 0", ""});
#endif
#if LF_WITH_FFMPEG
  rows.push_back({"full disk (video)", quick + "-o " + f.full_node, 1, "'" + f.full_node + "'", ""});
  rows.push_back({"video to a device in place", quick + "-o " + f.null_node, 0, "", ""});
  rows.push_back({"video streamed to stdout (here /dev/null)", quick + "-o -", 0, "", ""});
  // Long enough (60 frames) that the signal lands mid-run, after the MP4's temporary was created.
  rows.push_back({"SIGINT mid-run", "generate -m tiny --quiet --prompt 'a red circle' --frames 60 -o " + out, 0,
                  "SIGINT", out, SIGINT});
  rows.push_back({"SIGTERM mid-run", "generate -m tiny --quiet --prompt 'a red circle' --frames 60 -o " + out, 0,
                  "SIGTERM", out, SIGTERM});
  // The first entry's MP4 temporary exists: the batch is under way. It dies of the signal, its temporary removed.
  rows.push_back({"batch SIGTERM mid-run", "batch -m tiny --quiet --frames 60 --prompts " + f.batch_prompts +
                  " --out-dir " + at("batch_signal"), 0, "SIGTERM", at("batch_signal") + "/00000-a-red-circle.mp4",
                  SIGTERM});
#endif
  return rows;
}

}  // namespace

TEST_CASE("bad-input catalogue: exit code, one line naming the culprit, nothing at the output path") {
  const Fixtures& f = fixtures();
  // The malicious fixtures' payloads (tools/make_io_fixtures.py) would create exactly these files.
  const std::vector<std::string> payload_files = {"/tmp/lf_io_fixture_pwned_os_system",
                                                  "/tmp/lf_io_fixture_pwned_eval"};
  for (const std::string& file : payload_files) fs::remove(file);
  // LF_BAD_INPUT_ONLY=text runs only the rows whose name contains it (while adding rows; CI sets nothing).
  const char* only = std::getenv("LF_BAD_INPUT_ONLY");
  for (const Row& row : catalogue()) {
    if (only != nullptr && row.name.find(only) == std::string::npos) continue;
    CAPTURE(row.name);
    CAPTURE(row.args);
    if (!row.output.empty()) fs::remove_all(row.output);
    const Outcome outcome = run_binary(row.args, row.send, row.output);
    CAPTURE(outcome.err);
    CHECK_FALSE(outcome.timed_out);
    if (row.send != 0) {
      CHECK(outcome.signal == row.send);  // it died of the signal, as an interrupted tool should
    } else {
      CHECK(outcome.signal == 0);
      CHECK(outcome.exit_code == row.exit_code);
    }
    if (row.culprit.empty()) {
      CHECK(outcome.err.empty());
    } else {
      CHECK(outcome.err.find(row.culprit) != std::string::npos);
      CHECK(std::count(outcome.err.begin(), outcome.err.end(), '\n') == 1);
    }
    if (!row.output.empty()) {
      CHECK_FALSE(fs::exists(row.output));
      CHECK_FALSE(has_temp_leftovers(row.output));
    }
  }
  for (const std::string& file : payload_files) CHECK_FALSE(fs::exists(file));
  // Written in place, never renamed over: the device nodes are still devices, and nothing sits beside them.
  CHECK(is_char_device(f.null_node));
  CHECK(is_char_device(f.full_node));
  CHECK_FALSE(has_temp_leftovers(f.null_node));
  CHECK_FALSE(has_temp_leftovers(f.full_node));
  CHECK_FALSE(has_temp_leftovers(f.fifo));
  struct stat info {};
  CHECK((::stat(f.fifo.c_str(), &info) == 0 && S_ISFIFO(info.st_mode)));
}

TEST_CASE("the catalogue's good inputs do work (so each bad row fails for its own reason)") {
  const Fixtures& f = fixtures();
  const std::string latents = at("good_latents.safetensors"), noise = at("good_noise.safetensors");
  fs::remove(latents);
  fs::remove(noise);
  const Outcome run = run_binary(std::string("generate ") + kTinyEmbeddings + "--text-embeddings " + f.embeddings +
                                 " --weights " + f.weights + " --no-video --save-latents " + latents +
                                 " --save-noise " + noise);
  CAPTURE(run.err);
  CHECK(run.exit_code == 0);
  CHECK(fs::exists(latents));
  const Outcome replay = run_binary("generate -m tiny --quiet --prompt 'a red circle moves right' --frames 6 --noise " +
                                    noise + " --no-video --save-latents " + latents);
  CAPTURE(replay.err);
  CHECK(replay.exit_code == 0);
  const Outcome plan = run_binary("plan-mask --tokens-per-frame 64 --chunk 1 --set pipeline.frames=6 --queries " + f.q +
                                  " --keys " + f.k + " --out " + at("mask.safetensors"));
  CAPTURE(plan.err);
  CHECK(plan.exit_code == 0);
  CHECK(fs::exists(at("mask.safetensors")));
  CHECK(fs::exists(at("mask.json")));
}
