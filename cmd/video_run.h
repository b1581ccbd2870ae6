#pragma once
// One video from an already prepared model: the chunk loop, the decoder and the writers. `generate` runs it once;
// `batch` runs it once per entry with the same model, encoder and decoder, so both write the same bytes for the
// same entry and seed.
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "model/decoder.h"
#include "pipeline/ar_pipeline.h"
#include "run_setup.h"

namespace lf::cmd {

// Where one video's results go; an empty path means "not written". Every file appears at its path only complete
// (temporary + rename), so a run stopped at any point leaves nothing partial at these paths.
struct VideoOutputs {
  std::string video;       // MP4
  int video_fd = -1;       // >= 0: stream the MP4 to this descriptor (generate -o -) instead of the file `video`
  std::string frames_dir;  // numbered PNG (PPM) frames
  std::string latents;     // final latents as safetensors
  std::string noise;       // read every random draw from this file instead of Philox(pipeline.seed)
  std::string save_noise;  // record every random draw
};

struct VideoResult {
  int64_t video_frames = 0;
  double generation_seconds = 0;
  // generate's --json document without the whole-run fields (total_seconds), which the caller adds.
  nlohmann::json summary;
};

// The text context of each prompt switch: `prompt_schedule` ("0:...;4:...", parsed against this run's chunk count)
// when given, else `prompt` alone from chunk 0. Encoded by the prepared model's text encoder (and its cache).
std::vector<ContextSwitch> prompt_contexts(const PreparedModel& prepared, const RunConfig& run,
                                           const std::string& prompt, const std::string& prompt_schedule);

// Runs `run` (whose model section must be the one `prepared` loaded) with `contexts` and writes `outputs`.
// `decoder` may be null when neither a video nor frames are asked for; it is reset first, so one decoder serves
// many videos. Progress lines on stderr unless `quiet`.
VideoResult run_video(const PreparedModel& prepared, const RunConfig& run, const std::vector<ContextSwitch>& contexts,
                      const VideoOutputs& outputs, VideoDecoder* decoder, bool quiet);

}  // namespace lf::cmd
