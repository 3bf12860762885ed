// The shapes world: determinism (same seed, same bytes), the caption grammar
// and its parser, masks that match the objects, and the `shapes` command.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "data/shapes.h"
#include "io/atomic_file.h"
#include "io/image.h"
#include "test_util.h"

using namespace mmn;
namespace fs = std::filesystem;

TEST(Shapes, SameSeedSameScene) {
  for (uint64_t i : {0, 1, 17, 1000}) {
    const Scene a = make_scene(42, i), b = make_scene(42, i);
    EXPECT_EQ(a.image.rgb, b.image.rgb);
    EXPECT_EQ(a.caption, b.caption);
    EXPECT_EQ(a.masks, b.masks);
  }
  // Another seed or index gives another scene.
  EXPECT_NE(make_scene(42, 3).image.rgb, make_scene(43, 3).image.rgb);
  EXPECT_NE(make_scene(42, 3).image.rgb, make_scene(42, 4).image.rgb);
}

TEST(Shapes, CaptionGrammar) {
  std::vector<ShapeObject> objs(3);
  objs[0].size = "big", objs[0].color = "red", objs[0].shape = "circle", objs[0].position = "left";
  objs[1].size = "small", objs[1].color = "blue", objs[1].shape = "triangle", objs[1].position = "center";
  objs[2].size = "big", objs[2].color = "yellow", objs[2].shape = "square", objs[2].position = "right";
  EXPECT_EQ(shapes_caption({objs[0]}), "a big red circle on the left");
  EXPECT_EQ(shapes_caption({objs[0], objs[1]}), "a big red circle on the left and a small blue triangle in the center");
  EXPECT_EQ(shapes_caption(objs),
            "a big red circle on the left, a small blue triangle in the center and a big yellow square on the right");
  std::vector<ShapeObject> got;
  ASSERT_TRUE(parse_shapes_caption(shapes_caption(objs) + ".", &got));
  ASSERT_EQ(got.size(), 3u);
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(got[k].shape, objs[k].shape);
    EXPECT_EQ(got[k].color, objs[k].color);
    EXPECT_EQ(got[k].size, objs[k].size);
    EXPECT_EQ(got[k].position, objs[k].position);
  }
  for (const char* bad : {"", "a big red circle", "a big red circle on the left and", "a huge red circle on the left",
                          "a big red circle on the left a small blue square on the right",
                          "a big red circle on the left, and a small blue square on the right",
                          "a big red circle in the left", "a big red blob on the left"})
    EXPECT_FALSE(parse_shapes_caption(bad, &got)) << bad;
}

TEST(Shapes, ScenesMatchTheirCaptionsAndMasks) {
  std::map<std::string, int> seen;
  std::set<size_t> counts;
  for (uint64_t i = 0; i < 300; ++i) {
    const Scene sc = make_scene(7, i);
    const int S = sc.image.width;
    ASSERT_EQ(S, 64);
    ASSERT_EQ(sc.image.height, 64);
    ASSERT_GE(sc.objects.size(), 1u);
    ASSERT_LE(sc.objects.size(), 3u);
    counts.insert(sc.objects.size());
    std::vector<ShapeObject> parsed;
    ASSERT_TRUE(parse_shapes_caption(sc.caption, &parsed)) << sc.caption;
    ASSERT_EQ(parsed.size(), sc.objects.size());
    ASSERT_EQ(sc.masks.size(), sc.objects.size());
    std::vector<uint8_t> covered(static_cast<size_t>(S) * S, 0);
    int prev_third = -1;
    for (size_t k = 0; k < sc.objects.size(); ++k) {
      const ShapeObject& o = sc.objects[k];
      EXPECT_EQ(parsed[k].shape, o.shape);
      EXPECT_EQ(parsed[k].color, o.color);
      EXPECT_EQ(parsed[k].size, o.size);
      EXPECT_EQ(parsed[k].position, o.position);
      for (const std::string* w : {&o.shape, &o.color, &o.size, &o.position}) ++seen[*w];
      // The mask is non-empty, disjoint from the others, inside its third and its bounding box.
      int64_t area = 0;
      double sx = 0;
      for (int y = 0; y < S; ++y)
        for (int x = 0; x < S; ++x)
          if (sc.masks[k][static_cast<size_t>(y) * S + x]) {
            ++area;
            sx += x + 0.5;
            EXPECT_FALSE(covered[static_cast<size_t>(y) * S + x]);
            covered[static_cast<size_t>(y) * S + x] = 1;
            EXPECT_TRUE(x >= o.x0 && x < o.x1 && y >= o.y0 && y < o.y1);
          }
      ASSERT_GT(area, 10);
      // The area is the shape's nominal area (radius 0.145·S big, 0.105·S small, ±4%).
      const std::map<std::string, double> factor = {
          {"circle", 3.14159}, {"square", 2.89}, {"triangle", 1.75}, {"diamond", 2.0}, {"cross", 2.36}};
      const double r = (o.size == "big" ? 0.145 : 0.105) * S;
      EXPECT_GT(area, 0.75 * factor.at(o.shape) * r * r) << sc.caption;
      EXPECT_LT(area, 1.3 * factor.at(o.shape) * r * r) << sc.caption;
      const int third = static_cast<int>(sx / area / (S / 3.0));
      EXPECT_EQ(shape_positions()[third], o.position);
      EXPECT_GT(third, prev_third);  // left to right
      prev_third = third;
    }
  }
  EXPECT_EQ(counts, (std::set<size_t>{1, 2, 3}));
  for (const auto* vocab : {&shape_kinds(), &shape_colors(), &shape_sizes(), &shape_positions()})
    for (const std::string& w : *vocab) EXPECT_GT(seen[w], 5) << w;
}

TEST(Shapes, CommandWritesTheSameBytesForTheSameSeed) {
  fs::path a = test::temp_dir("shapes-a"), b = test::temp_dir("shapes-b"), c = test::temp_dir("shapes-c");
  std::string log;
  ASSERT_EQ(test::run_cmd(test::binary() + " shapes --n 6 --seed 5 --out " + a.string(), &log), 0) << log;
  ASSERT_EQ(test::run_cmd(test::binary() + " shapes --n 6 --seed 5 --out " + b.string(), &log), 0) << log;
  ASSERT_EQ(test::run_cmd(test::binary() + " shapes --n 6 --seed 6 --out " + c.string(), &log), 0) << log;
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(a)) {
    if (!e.is_regular_file()) continue;
    const fs::path rel = fs::relative(e.path(), a);
    ASSERT_TRUE(fs::exists(b / rel)) << rel;
    EXPECT_EQ(read_file(e.path().string()), read_file((b / rel).string())) << rel;
    ++files;
  }
  EXPECT_GE(files, 1 + 6 + 6);  // captions.jsonl, images, at least one mask each
  EXPECT_NE(read_file((a / "captions.jsonl").string()), read_file((c / "captions.jsonl").string()));

  // captions.jsonl describes the files beside it.
  std::ifstream f(a / "captions.jsonl");
  int lines = 0;
  for (std::string line; std::getline(f, line); ++lines) {
    nlohmann::json j = nlohmann::json::parse(line);
    ImageU8 img = load_image((a / j["image"].get<std::string>()).string());
    EXPECT_EQ(img.rgb, make_scene(5, lines).image.rgb);
    EXPECT_EQ(j["caption"], make_scene(5, lines).caption);
    ASSERT_FALSE(j["objects"].empty());
    for (const auto& o : j["objects"]) {
      ImageU8 m = load_image((a / o["mask"].get<std::string>()).string());
      EXPECT_EQ(m.width, 64);
      ASSERT_EQ(o["bbox"].size(), 4u);
      for (const char* k : {"shape", "color", "size", "position"}) EXPECT_TRUE(o[k].is_string());
    }
  }
  EXPECT_EQ(lines, 6);
  for (auto& d : {a, b, c}) fs::remove_all(d);
}

TEST(Shapes, CommandErrors) {
  std::string log;
  fs::path d = test::temp_dir("shapes-err");
  EXPECT_NE(test::run_cmd(test::binary() + " shapes --n 2 --size 10 --out " + d.string(), &log), 0);
  EXPECT_NE(log.find("error:"), std::string::npos) << log;
  EXPECT_NE(test::run_cmd(test::binary() + " shapes --n 2", &log), 0);
  EXPECT_NE(log.find("error:"), std::string::npos) << log;
  fs::remove_all(d);
}
