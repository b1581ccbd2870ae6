// Dense attention over every visible key: the reference all sparse backends are measured against.
#include "attention/attention_backend.h"
#include "core/error.h"
#include "ops/ops.h"

namespace lf {

namespace {
class DenseBackend final : public AttentionBackend {
 public:
  std::string name() const override { return "dense"; }
  Tensor run(const AttentionCall& call) override { return ops::attention(*call.q, *call.k, *call.v, call.scale); }
};
}  // namespace

std::unique_ptr<AttentionBackend> make_attention_backend(const AttentionConfig& config) {
  if (config.backend == "dense") return std::make_unique<DenseBackend>();
  fail("unknown attention backend '{}' (available: dense)", config.backend);
}

}  // namespace lf
