// End-to-end LLaVA-1.5 against the reference outputs of Hugging Face
// transformers: `mmneuron caption --dump` for both tiny checkpoints and all
// three images; every array the reference wrote is compared.
#include <gtest/gtest.h>

#include <filesystem>

#include "golden_compare.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace mmn::test;

class LlavaGolden : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(LlavaGolden, CaptionDumpMatchesReference) {
  MMN_REQUIRE_SHARED();
  const auto& [model, image] = GetParam();
  expect_caption_dump_matches(model, image, 2e-5);
}

INSTANTIATE_TEST_SUITE_P(AllCases, LlavaGolden,
                         ::testing::Combine(::testing::Values("tiny-llava-a-f32", "tiny-llava-c-f16"),
                                            ::testing::Values("landscape_80x60", "portrait_48x72", "tiny_10x10")),
                         TupleParamName());
