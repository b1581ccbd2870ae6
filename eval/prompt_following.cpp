#include "eval/prompt_following.h"

#include <array>
#include <cmath>
#include <map>
#include <sstream>

#include "core/error.h"

#if LF_WITH_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace lf::eval {

namespace {

// The procedural palette (tools/testbed/procedural.py COLOURS), RGB in [0, 1]. Background tones are dark and grey,
// so a ball of radius kColourRadius around a named colour holds only that object's pixels.
const std::map<std::string, std::array<double, 3>>& palette() {
  static const std::map<std::string, std::array<double, 3>> colours{
      {"red", {0.95, 0.12, 0.10}},   {"green", {0.10, 0.85, 0.20}}, {"blue", {0.12, 0.30, 0.98}},
      {"yellow", {0.98, 0.90, 0.10}}, {"white", {0.97, 0.97, 0.97}}, {"orange", {0.98, 0.55, 0.05}},
      {"purple", {0.65, 0.15, 0.90}}};
  return colours;
}

constexpr double kColourRadius = 0.3;
// At 64x64 an object covers 80-230 pixels; 8 of 4096 (0.2% of the frame) is "a visible part of it".
constexpr double kMinArea = 8.0 / 4096.0;
constexpr double kMinPresent = 0.8;
// The slowest named motion travels ~0.8 px a frame of 64: over the 15+ frames between the first and last three
// that is > 12 px; 6 px (~9% of the width) separates motion from jitter, 3 px bounds "still".
constexpr double kMinTravel = 6.0 / 64.0;
constexpr double kMaxStill = 3.0 / 64.0;

std::vector<std::string> words_of(const std::string& text) {
  std::istringstream stream(text);
  std::vector<std::string> words;
  for (std::string word; stream >> word;) words.push_back(word);
  return words;
}

bool is_shape(const std::string& word) {
  return word == "circle" || word == "square" || word == "triangle" || word == "diamond";
}

}  // namespace

std::vector<PromptObject> parse_testbed_prompt(const std::string& prompt) {
  // Objects are "a COLOUR SHAPE MOTION..." clauses; "over a ..." and "as the camera ..." tails describe the scene.
  std::vector<std::string> words = words_of(prompt);
  std::vector<PromptObject> objects;
  for (size_t i = 0; i + 2 < words.size(); ++i) {
    if (words[i] == "over" || words[i] == "as") break;
    if (words[i] != "a" || !palette().count(words[i + 1]) || !is_shape(words[i + 2])) continue;
    const std::string verb = i + 3 < words.size() ? words[i + 3] : "";
    const std::string next = i + 4 < words.size() ? words[i + 4] : "";
    std::string motion;
    if (verb == "moves" && (next == "left" || next == "right" || next == "up" || next == "down")) motion = next;
    else if (verb == "falls") motion = "down";
    else if (verb == "rises") motion = "up";
    else if (verb == "stays") motion = "still";
    else if (verb == "bounces") motion = "any";
    LF_CHECK(!motion.empty(), "prompt '{}': no motion of the testbed grammar after '{} {}'", prompt, words[i + 1],
             words[i + 2]);
    objects.push_back({words[i + 1], motion});
  }
  LF_CHECK(!objects.empty(), "prompt '{}' names no object of the testbed grammar (a COLOUR SHAPE MOTION)", prompt);
  return objects;
}

const std::vector<std::string>& testbed_eval_prompts() {
  static const std::vector<std::string> prompts{
      "a red circle moves right",
      "a blue square moves left",
      "a green triangle moves down",
      "a yellow diamond moves up",
      "a white circle falls",
      "a orange square rises",
      "a purple triangle moves right fast",
      "a red square moves left slowly",
      "a blue circle moves down",
      "a green diamond moves right",
      "a yellow square falls",
      "a white triangle moves left",
      "a orange circle moves up",
      "a purple circle stays still",
      "a red circle moves right and a blue square moves left",
      "a green square falls and a yellow circle moves right",
  };
  return prompts;
}

#if LF_WITH_OPENCV

PromptCheck check_prompt(const std::vector<Frame>& frames, const std::string& prompt) {
  LF_CHECK(frames.size() >= 6, "prompt check: {} frames, need at least 6", frames.size());
  for (const Frame& frame : frames) check_frame(frame, "prompt check");
  const int width = frames.front().width, height = frames.front().height;
  PromptCheck result{prompt, {}, true};
  for (const PromptObject& object : parse_testbed_prompt(prompt)) {
    const auto& rgb = palette().at(object.colour);
    std::vector<cv::Point2d> centroids(frames.size());
    int present = 0;
    for (size_t f = 0; f < frames.size(); ++f) {
      LF_CHECK(frames[f].width == width && frames[f].height == height, "prompt check: frames differ in size");
      const cv::Mat image(height, width, CV_8UC3, const_cast<uint8_t*>(frames[f].rgb.data()));
      cv::Mat pixels;
      image.convertTo(pixels, CV_32FC3, 1.0 / 255.0);
      cv::Mat difference;
      cv::subtract(pixels, cv::Scalar(rgb[0], rgb[1], rgb[2]), difference);
      cv::Mat squared;
      cv::multiply(difference, difference, squared);
      cv::Mat distance_sq;
      cv::transform(squared, distance_sq, cv::Matx13f(1, 1, 1));  // per-pixel sum over the three channels
      cv::Mat mask;
      cv::threshold(distance_sq, mask, kColourRadius * kColourRadius, 1.0, cv::THRESH_BINARY_INV);
      const cv::Moments moments = cv::moments(mask, /*binaryImage=*/true);
      if (moments.m00 >= kMinArea * width * height) ++present;
      centroids[f] = moments.m00 > 0 ? cv::Point2d(moments.m10 / moments.m00, moments.m01 / moments.m00)
                                     : cv::Point2d(NAN, NAN);
    }
    ObjectCheck check{object, double(present) / double(frames.size()), 0, 0, false};
    auto mean_of = [&](size_t first) {
      cv::Point2d sum(0, 0);
      for (size_t f = first; f < first + 3; ++f) sum += centroids[f];
      return sum * (1.0 / 3.0);
    };
    const cv::Point2d travel = mean_of(frames.size() - 3) - mean_of(0);
    check.dx = travel.x / width;
    check.dy = travel.y / width;
    const double dx = check.dx, dy = check.dy;
    const bool moved = !std::isnan(dx) && !std::isnan(dy);
    bool direction = false;
    if (object.motion == "right") direction = dx > kMinTravel && std::abs(dx) > std::abs(dy);
    else if (object.motion == "left") direction = dx < -kMinTravel && std::abs(dx) > std::abs(dy);
    else if (object.motion == "down") direction = dy > kMinTravel && std::abs(dy) > std::abs(dx);
    else if (object.motion == "up") direction = dy < -kMinTravel && std::abs(dy) > std::abs(dx);
    else if (object.motion == "still") direction = std::abs(dx) < kMaxStill && std::abs(dy) < kMaxStill;
    else direction = true;
    check.follows = moved && direction && check.present_fraction >= kMinPresent;
    result.follows = result.follows && check.follows;
    result.objects.push_back(check);
  }
  return result;
}

#else

PromptCheck check_prompt(const std::vector<Frame>& frames, const std::string& prompt) {
  fail("prompt check of '{}' ({} frames): this build has no OpenCV (LF_WITH_OPENCV=OFF)", prompt, frames.size());
}

#endif

}  // namespace lf::eval
