#pragma once
// Does a testbed video do what its prompt says? The testbed grammar (docs/testbed.md) names each object's colour
// and motion; this finds the pixels of that colour in every frame (OpenCV) and checks that they are there and that
// their centroid moves the named way. It is the automatic "proof it learned" of the testbed model and the
// prompt-following rate of the fidelity table.
#include <string>
#include <vector>

#include "io/frame.h"

namespace lf::eval {

// One object of a testbed prompt: its colour word and the on-screen motion it implies ("left", "right", "up",
// "down", "still", or "any" for bounces, whose net displacement says nothing).
struct PromptObject {
  std::string colour;
  std::string motion;
};

// The objects of a prompt of the testbed grammar; throws lf::Error naming the prompt when it is not one (unknown
// colour, no shape or motion).
std::vector<PromptObject> parse_testbed_prompt(const std::string& prompt);

struct ObjectCheck {
  PromptObject object;
  double present_fraction = 0;  // share of frames in which the colour covers at least kMinArea of the frame
  double dx = 0, dy = 0;        // centroid of the last three frames minus the first three, in units of frame width
  bool follows = false;
};

struct PromptCheck {
  std::string prompt;
  std::vector<ObjectCheck> objects;
  bool follows = false;  // every object present in >= 80% of frames and moving the named way
};

// Needs OpenCV (throws lf::Error without it) and at least 6 frames of one size.
PromptCheck check_prompt(const std::vector<Frame>& frames, const std::string& prompt);

// The evaluation prompts (also tools/testbed/sample.py's EVAL_PROMPTS): single objects in every direction and
// motion, and two objects at once.
const std::vector<std::string>& testbed_eval_prompts();

}  // namespace lf::eval
