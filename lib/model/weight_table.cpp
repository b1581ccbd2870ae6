#include "model/weight_table.h"

#include <cmath>
#include <set>

#include "core/error.h"
#include "core/philox.h"
#include "io/checkpoint.h"

namespace lf {

namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The scale stored beside an FP8 weight, or "" when its name has no such companion.
std::string scale_name_of(const std::string& stored_name, const WeightLoadOptions& options) {
  if (options.scale_suffix_from.empty() || !ends_with(stored_name, options.scale_suffix_from)) return "";
  return stored_name.substr(0, stored_name.size() - options.scale_suffix_from.size()) + options.scale_suffix_to;
}

}  // namespace

void load_weight_table(const Checkpoint& checkpoint, const std::vector<WeightSlot>& slots,
                       const WeightLoadOptions& options) {
  std::set<std::string> claimed;
  for (const WeightSlot& slot : slots) {
    const std::string stored_name =
        options.prefix + (options.file_name ? options.file_name(slot.name) : slot.name);
    if (!checkpoint.contains(stored_name)) {
      LF_CHECK(slot.optional, "{} '{}': missing tensor '{}'", options.part, checkpoint.path(), stored_name);
      *slot.target = Tensor();
      continue;
    }
    claimed.insert(stored_name);
    Tensor stored = checkpoint.view(stored_name);
    LF_CHECK(stored.shape() == slot.shape, "{} '{}': tensor '{}' has shape {}, expected {}", options.part,
             checkpoint.path(), stored_name, shape_str(stored.shape()), shape_str(slot.shape));
    LF_CHECK(dtype_is_float(stored.dtype()), "{} '{}': tensor '{}' has non-float dtype {}", options.part,
             checkpoint.path(), stored_name, dtype_name(stored.dtype()));
    const std::string scale_name = scale_name_of(stored_name, options);
    if (stored.dtype() == DType::F8E4M3 && !scale_name.empty() && checkpoint.contains(scale_name)) {
      claimed.insert(scale_name);
      const Tensor scale = checkpoint.view(scale_name).to(DType::F32);
      LF_CHECK(scale.numel() == 1 || (stored.rank() >= 1 && scale.numel() == stored.dim(0)),
               "{} '{}': scale '{}' has shape {}, expected one value or one per row of '{}' {}", options.part,
               checkpoint.path(), scale_name, shape_str(scale.shape()), stored_name, shape_str(stored.shape()));
      stored = stored.with_scales(scale.reshape({scale.numel()}));
    }
    *slot.target = options.keep_stored_dtype ? stored : stored.to(DType::F32);
  }
  if (!options.reject_unexpected) return;
  for (const TensorEntry& entry : checkpoint.entries()) {
    if (claimed.count(entry.name) || entry.name.rfind(options.prefix, 0) != 0) continue;
    const std::string local = entry.name.substr(options.prefix.size());
    bool checked = options.checked_namespaces.empty();
    for (const std::string& space : options.checked_namespaces) checked = checked || local.rfind(space, 0) == 0;
    if (checked)
      fail("{} '{}': unexpected tensor '{}' (does the config describe this file?)", options.part, checkpoint.path(),
           entry.name);
  }
}

std::string detect_weight_prefix(const Checkpoint& checkpoint, const std::vector<std::string>& prefixes,
                                 const std::string& probe, const std::string& part) {
  std::string tried;
  for (const std::string& prefix : prefixes) {
    if (checkpoint.contains(prefix + probe)) return prefix;
    tried += (tried.empty() ? "'" : ", '") + prefix + probe + "'";
  }
  fail("{} '{}': not a {} checkpoint (none of {} found)", part, checkpoint.path(), part, tried);
}

void random_weight_table(const std::vector<WeightSlot>& slots, uint64_t seed) {
  // Slots in parallel (the umT5-XXL benchmark makes 5.7e9 values): each is drawn from its own Philox key and written
  // to its own target, so the values do not depend on the thread count.
#pragma omp parallel for schedule(dynamic)
  for (size_t index = 0; index < slots.size(); ++index) {
    const WeightSlot& slot = slots[index];
    Tensor tensor = Tensor::empty(slot.shape);
    const std::string& name = slot.name;
    const bool is_bias = ends_with(name, "bias");
    const bool is_scale = ends_with(name, "gamma") || (name.find("norm") != std::string::npos && ends_with(name, "weight") &&
                                                        slot.shape.size() == 1);
    if (is_bias) {
      // Small non-zero biases, so a test notices a bias that is dropped.
      fill_normal(tensor, {seed, uint32_t(index), 0xB1A5u});
      for (int64_t i = 0; i < tensor.numel(); ++i) tensor.f32()[i] *= 0.02f;
    } else if (is_scale) {
      fill_normal(tensor, {seed, uint32_t(index), 0x5CA1Eu});
      for (int64_t i = 0; i < tensor.numel(); ++i) tensor.f32()[i] = 1.0f + 0.1f * tensor.f32()[i];
    } else {
      fill_normal(tensor, {seed, uint32_t(index), 0xC0FFEEu});
      const int64_t fan_in = slot.shape.size() >= 2 ? tensor.numel() / slot.shape[0] : 1;
      const float std = float(1.0 / std::sqrt(double(fan_in)));
      for (int64_t i = 0; i < tensor.numel(); ++i) tensor.f32()[i] *= std;
    }
    *slot.target = tensor;
  }
}

}  // namespace lf
