// The weight-table loader shared by every model part: names mapped per layout, shapes and dtypes checked with the
// key named, stored-dtype views, FP8 scales picked up beside their weights, unexpected tensors refused.
#include <doctest/doctest.h>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "model/weight_table.h"
#include "test_util.h"

using namespace lf;

namespace {

struct TwoLayerPart {
  Tensor proj, proj_bias, norm_gamma;
  std::vector<WeightSlot> slots() {
    return {{"proj.weight", {4, 3}, &proj}, {"proj.bias", {4}, &proj_bias}, {"norm.gamma", {4}, &norm_gamma, true}};
  }
};

}  // namespace

TEST_CASE("weight table: layouts, renames, dtype views and the errors that name the key") {
  TwoLayerPart reference;
  random_weight_table(reference.slots(), 11);
  CHECK(reference.proj.dim(0) == 4);
  CHECK(reference.norm_gamma.f32()[0] != reference.norm_gamma.f32()[1]);  // drawn, not a constant fill
  const std::string path = test::tmp_path("weight_table.safetensors");
  write_safetensors(path, {{"model.layer.proj.weight", reference.proj.to(DType::BF16)},
                           {"model.layer.proj.bias", reference.proj_bias},
                           {"other.ignored", reference.proj_bias}},
                    {});
  const auto checkpoint = Checkpoint::open(path);
  CHECK(detect_weight_prefix(*checkpoint, {"", "model."}, "layer.proj.weight", "part") == "model.");
  CHECK_THROWS_WITH_AS(detect_weight_prefix(*checkpoint, {"", "x."}, "layer.proj.weight", "part"),
                       doctest::Contains("'x.layer.proj.weight'"), Error);

  TwoLayerPart loaded;
  WeightLoadOptions options;
  options.part = "test part";
  options.prefix = "model.";
  options.file_name = [](const std::string& name) { return "layer." + name; };
  load_weight_table(*checkpoint, loaded.slots(), options);
  CHECK(loaded.proj.dtype() == DType::F32);
  CHECK(test::rel_l2(loaded.proj, reference.proj) < 4e-3);  // bf16 storage
  CHECK(test::rel_l2(loaded.proj, reference.proj) > 0.0);
  CHECK(test::rel_l2(loaded.proj_bias, reference.proj_bias) == 0.0);
  CHECK_FALSE(loaded.norm_gamma.defined());  // optional and absent

  options.keep_stored_dtype = true;
  load_weight_table(*checkpoint, loaded.slots(), options);
  CHECK(loaded.proj.dtype() == DType::BF16);

  options.file_name = nullptr;  // without the rename the names are absent: the error names the full key
  CHECK_THROWS_WITH_AS(load_weight_table(*checkpoint, loaded.slots(), options),
                       doctest::Contains("missing tensor 'model.proj.weight'"), Error);

  std::vector<WeightSlot> wrong_shape = {{"layer.proj.weight", {3, 4}, &loaded.proj}};
  options.reject_unexpected = false;
  CHECK_THROWS_WITH_AS(load_weight_table(*checkpoint, wrong_shape, options),
                       doctest::Contains("'model.layer.proj.weight' has shape [4, 3], expected [3, 4]"), Error);

  std::vector<WeightSlot> only_weight = {{"layer.proj.weight", {4, 3}, &loaded.proj}};
  options.reject_unexpected = true;
  CHECK_THROWS_WITH_AS(load_weight_table(*checkpoint, only_weight, options),
                       doctest::Contains("unexpected tensor 'model.layer.proj.bias'"), Error);
  options.checked_namespaces = {"blocks."};  // tensors outside the part's namespaces are someone else's
  load_weight_table(*checkpoint, only_weight, options);
}

TEST_CASE("weight table: FP8 weights pick up the scale stored beside them") {
  Tensor weight = Tensor::empty({2, 2});
  weight.f32()[0] = 1.0f, weight.f32()[1] = -0.5f, weight.f32()[2] = 2.0f, weight.f32()[3] = 0.25f;
  Tensor scale = Tensor::empty({2});
  scale.f32()[0] = 3.0f, scale.f32()[1] = 0.5f;
  const std::string path = test::tmp_path("weight_table_fp8.safetensors");
  write_safetensors(path, {{"lin.weight", weight.to(DType::F8E4M3)}, {"lin.scale_weight", scale}}, {});
  Tensor loaded;
  WeightLoadOptions options;
  options.keep_stored_dtype = true;
  load_weight_table(*Checkpoint::open(path), {{"lin.weight", {2, 2}, &loaded}}, options);  // the scale is claimed
  REQUIRE(loaded.scales() != nullptr);
  const Tensor dense = loaded.to(DType::F32);
  CHECK(dense.f32()[0] == 3.0f);
  CHECK(dense.f32()[1] == -1.5f);
  CHECK(dense.f32()[2] == 1.0f);
  CHECK(dense.f32()[3] == 0.125f);
}
