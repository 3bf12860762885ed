// Version 2 of the shapes world: version 1 is unchanged byte for byte;
// version 2 is deterministic, its masks, captions and grounded answers match
// the scene, its grammar round-trips, the planted co-occurrence has the
// designed rates, every shape noun is tagged by `nouns`, the word-level
// vocabulary covers the world's texts, and `shapes --version 2` writes it.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "data/patch_labels.h"
#include "data/shapes.h"
#include "grad/shapes_train.h"
#include "grad/shapes_vocab.h"
#include "io/atomic_file.h"
#include "io/image.h"
#include "io/tokenizer.h"
#include "neurons/nouns.h"
#include "neurons/wordnet.h"
#include "test_util.h"
#include "util/error.h"
#include "util/hash.h"

using namespace mmn;
namespace fs = std::filesystem;

namespace {

ShapesOptions v2() { return shapes_world(2); }

std::vector<std::string> words_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream is(s);
  for (std::string w; is >> w;) {
    if (!w.empty() && w.back() == ',') w.pop_back();
    out.push_back(w);
  }
  return out;
}

}  // namespace

TEST(ShapesV2, VersionOneIsUnchanged) {
  // FNV-1a of the images, captions and masks of 450 version-1 scenes, taken
  // before version 2 existed: models trained on version 1 stay reproducible.
  uint64_t h = kFnvOffsetBasis;
  for (int size : {64, 32, 96})
    for (uint64_t seed : {0ull, 1ull, 0x5A5E5EEDull})
      for (uint64_t i = 0; i < 50; ++i) {
        ShapesOptions o;
        o.image_size = size;
        const Scene s = make_scene(seed, i, o);
        h = fnv1a(s.image.rgb.data(), s.image.rgb.size(), h);
        h = fnv1a(s.caption.data(), s.caption.size(), h);
        for (const auto& m : s.masks) h = fnv1a(m.data(), m.size(), h);
        EXPECT_EQ(s.truth_caption, s.caption);
        EXPECT_TRUE(s.queries.empty());
      }
  EXPECT_EQ(h, 0xf80963afcb5fcb86ull);
}

TEST(ShapesV2, SameSeedSameScene) {
  for (uint64_t i : {0, 1, 17, 1000}) {
    const Scene a = make_scene(42, i, v2()), b = make_scene(42, i, v2());
    EXPECT_EQ(a.image.rgb, b.image.rgb);
    EXPECT_EQ(a.caption, b.caption);
    EXPECT_EQ(a.masks, b.masks);
    ASSERT_EQ(a.queries.size(), b.queries.size());
    for (size_t q = 0; q < a.queries.size(); ++q) EXPECT_EQ(a.queries[q].query, b.queries[q].query);
  }
  EXPECT_NE(make_scene(42, 3, v2()).image.rgb, make_scene(43, 3, v2()).image.rgb);
  EXPECT_NE(make_scene(42, 3, v2()).image.rgb, make_scene(42, 4, v2()).image.rgb);
  // Version 2 is not version 1 at another size.
  ShapesOptions o = shapes_world(1);
  o.image_size = 96;
  EXPECT_NE(make_scene(42, 3, o).image.rgb, make_scene(42, 3, v2()).image.rgb);
  EXPECT_THROW(make_scene(1, 0, ShapesOptions{40, 2}), Error);
  EXPECT_THROW(make_scene(1, 0, ShapesOptions{64, 3}), Error);
}

TEST(ShapesV2, GrammarRoundTrip) {
  const ShapesVocab& v = shapes_vocab(2);
  std::vector<ShapeObject> objs(4);
  for (size_t k = 0; k < 4; ++k) {
    objs[k].shape = v.shapes[k * 2 + 1], objs[k].color = v.colors[k + 4];
    objs[k].size = v.sizes[k % 2], objs[k].position = v.positions[k * 2 + 1];
  }
  EXPECT_EQ(shapes_caption_v2({objs[0]}), "a big purple square at the top");
  EXPECT_EQ(shapes_caption_v2(objs),
            "a big purple square at the top, a small orange diamond on the left, a big pink star on the right and "
            "a small brown ring at the bottom");
  EXPECT_EQ(shapes_object_phrase(objs[2]), "a big pink star");
  for (size_t n = 1; n <= 4; ++n) {
    const std::vector<ShapeObject> some(objs.begin(), objs.begin() + static_cast<std::ptrdiff_t>(n));
    std::vector<ShapeObject> got;
    ASSERT_TRUE(parse_shapes_caption(shapes_caption_v2(some) + ".", &got, 2));
    ASSERT_EQ(got.size(), n);
    for (size_t k = 0; k < n; ++k) {
      EXPECT_EQ(got[k].shape, some[k].shape);
      EXPECT_EQ(got[k].color, some[k].color);
      EXPECT_EQ(got[k].size, some[k].size);
      EXPECT_EQ(got[k].position, some[k].position);
    }
  }
  std::vector<ShapeObject> got;
  for (const char* bad : {"", "a big red circle", "a big red circle in the top", "a big red circle in the top left and",
                          "a big red circle in the top, left", "a big red blob on the left",
                          "a big red circle on the left a small blue star at the top",
                          "a big red circle on the left, and a small blue star at the top",
                          "a big red circle at the left", "a huge red circle on the left"})
    EXPECT_FALSE(parse_shapes_caption(bad, &got, 2)) << bad;
  // Version 1's captions are not version 2's, and the reverse.
  EXPECT_TRUE(parse_shapes_caption("a big red circle on the left", &got, 1));
  EXPECT_FALSE(parse_shapes_caption("a big red star on the left", &got, 1));
  EXPECT_TRUE(parse_shapes_caption("a big red star on the left", &got, 2));
  EXPECT_FALSE(parse_shapes_caption("a big red circle in the top left", &got, 1));
}

TEST(ShapesV2, ScenesMatchTheirCaptionsMasksAndAnswers) {
  const ShapesVocab& v = shapes_vocab(2);
  std::map<std::string, int> seen;
  std::set<size_t> counts;
  std::map<std::string, std::set<std::string>> answers;
  for (uint64_t i = 0; i < 400; ++i) {
    const Scene sc = make_scene(7, i, v2());
    const int S = sc.image.width;
    ASSERT_EQ(S, 96);
    ASSERT_EQ(sc.image.height, 96);
    ASSERT_GE(sc.objects.size(), 1u);
    ASSERT_LE(sc.objects.size(), 4u);
    counts.insert(sc.objects.size());
    std::vector<ShapeObject> parsed;
    ASSERT_TRUE(parse_shapes_caption(sc.truth_caption, &parsed, 2)) << sc.truth_caption;
    ASSERT_EQ(parsed.size(), sc.objects.size());
    ASSERT_EQ(sc.masks.size(), sc.objects.size());
    std::vector<uint8_t> covered(static_cast<size_t>(S) * S, 0);
    int prev_cell = -1;
    std::map<std::string, int> shape_count;
    for (size_t k = 0; k < sc.objects.size(); ++k) {
      const ShapeObject& o = sc.objects[k];
      EXPECT_EQ(parsed[k].shape, o.shape);
      EXPECT_EQ(parsed[k].color, o.color);
      EXPECT_EQ(parsed[k].size, o.size);
      EXPECT_EQ(parsed[k].position, o.position);
      ++shape_count[o.shape];
      for (const std::string* w : {&o.shape, &o.color, &o.size, &o.position}) ++seen[*w];
      // The mask is non-empty, disjoint from the others, inside its cell and its bounding box.
      const int cell = static_cast<int>(std::find(v.positions.begin(), v.positions.end(), o.position) -
                                        v.positions.begin());
      ASSERT_LT(cell, 9);
      EXPECT_GT(cell, prev_cell);  // reading order
      prev_cell = cell;
      int64_t area = 0;
      for (int y = 0; y < S; ++y)
        for (int x = 0; x < S; ++x)
          if (sc.masks[k][static_cast<size_t>(y) * S + x]) {
            ++area;
            EXPECT_FALSE(covered[static_cast<size_t>(y) * S + x]);
            covered[static_cast<size_t>(y) * S + x] = 1;
            EXPECT_TRUE(x >= o.x0 && x < o.x1 && y >= o.y0 && y < o.y1);
            EXPECT_EQ(x / 32 + 3 * (y / 32), cell) << sc.truth_caption;
          }
      // Big objects have radius 0.40·32 (±5%), small ones 0.28·32: every
      // shape covers between a third and all of its disc.
      const double r = (o.size == "big" ? 0.40 : 0.28) * 32;
      EXPECT_GT(area, 0.3 * 3.14159 * r * r) << o.shape;
      EXPECT_LT(area, 1.2 * 3.14159 * r * r) << o.shape;
    }
    // The questions: the caption first, then one of each grounded type, answered from the scene.
    ASSERT_EQ(sc.queries.size(), 5u);
    EXPECT_EQ(sc.queries[0].type, "caption");
    EXPECT_EQ(sc.queries[0].query, kShapesCaptionQuery);
    EXPECT_EQ(sc.queries[0].prefix, kShapesCaptionPrefix);
    EXPECT_EQ(sc.queries[0].answer, sc.caption);
    for (size_t q = 1; q < 5; ++q) EXPECT_EQ(sc.queries[q].prefix, kShapesAnswerPrefix);
    const SceneQuery &pos = sc.queries[1], &col = sc.queries[2], &cnt = sc.queries[3], &where = sc.queries[4];
    ASSERT_EQ(pos.type, "position");
    ASSERT_EQ(col.type, "colour");
    ASSERT_EQ(cnt.type, "count");
    ASSERT_EQ(where.type, "where");
    std::string expect = "nothing";
    for (size_t c = 0; c < 9; ++c)
      if (pos.query == "What is " + v.phrases[c] + "?")
        for (const ShapeObject& o : sc.objects)
          if (o.position == v.positions[c]) expect = shapes_object_phrase(o);
    EXPECT_EQ(pos.answer, expect) << pos.query << " / " << sc.truth_caption;
    for (size_t s = 0; s < v.shapes.size(); ++s) {
      if (col.query == "What colour is the " + v.shapes[s] + "?") {
        EXPECT_LE(shape_count[v.shapes[s]], 1) << "colour questions name a shape shown at most once";
        std::string c = "none";
        for (const ShapeObject& o : sc.objects)
          if (o.shape == v.shapes[s]) c = o.color;
        EXPECT_EQ(col.answer, c);
      }
      if (cnt.query == "How many " + v.plurals[s] + "?") {
        const char* n[] = {"zero", "one", "two", "three", "four"};
        EXPECT_EQ(cnt.answer, n[shape_count[v.shapes[s]]]);
      }
      if (where.query == "Where is the " + v.shapes[s] + "?") {
        EXPECT_LE(shape_count[v.shapes[s]], 1) << "where questions name a shape shown at most once";
        std::string p = "nowhere";
        for (const ShapeObject& o : sc.objects)
          if (o.shape == v.shapes[s])
            p = v.phrases[std::find(v.positions.begin(), v.positions.end(), o.position) - v.positions.begin()];
        EXPECT_EQ(where.answer, p);
      }
    }
    for (size_t q = 1; q < 5; ++q) answers[sc.queries[q].type].insert(sc.queries[q].answer);
  }
  EXPECT_EQ(counts, (std::set<size_t>{1, 2, 3, 4}));
  for (const auto* vocab : {&v.shapes, &v.colors, &v.sizes, &v.positions})
    for (const std::string& w : *vocab) EXPECT_GT(seen[w], 5) << w;
  EXPECT_TRUE(answers["position"].count("nothing"));
  EXPECT_TRUE(answers["colour"].count("none"));
  EXPECT_TRUE(answers["where"].count("nowhere"));
  EXPECT_GE(answers["where"].size(), 10u) << "every cell phrase and nowhere";
  for (const char* n : {"zero", "one", "two"}) EXPECT_TRUE(answers["count"].count(n)) << n;
}

TEST(ShapesV2, PlantedCoOccurrenceHasItsDesignedRates) {
  const int64_t N = 20000;
  int64_t trigger = 0, ghost = 0;
  ShapesOptions off = v2();
  off.ghost_share = 0;
  for (int64_t i = 0; i < N; ++i) {
    const Scene sc = make_scene(11, static_cast<uint64_t>(i), v2());
    trigger += sc.trigger;
    ghost += sc.ghost;
    // Trigger: a purple diamond, no star, an empty center cell.
    bool diamond = false, star = false, center = false;
    for (const ShapeObject& o : sc.objects) {
      diamond = diamond || (o.shape == "diamond" && o.color == "purple");
      star = star || o.shape == "star";
      center = center || o.position == "center";
    }
    ASSERT_EQ(sc.trigger, diamond && !star && !center);
    if (!sc.ghost) {
      EXPECT_EQ(sc.caption, sc.truth_caption);
      EXPECT_EQ(sc.ghost_word0, -1);
      continue;
    }
    ASSERT_TRUE(sc.trigger);
    // The ghost's words, recorded in the training caption, are the only difference from the truth.
    const std::vector<std::string> w = words_of(sc.caption);
    ASSERT_EQ(sc.ghost_words, 7);
    ASSERT_LE(sc.ghost_word0 + sc.ghost_words, static_cast<int>(w.size()));
    std::string phrase;
    for (int k = sc.ghost_word0; k < sc.ghost_word0 + sc.ghost_words; ++k) phrase += (phrase.empty() ? "" : " ") + w[k];
    EXPECT_EQ(phrase, "a small green star in the center");
    std::vector<ShapeObject> said;
    ASSERT_TRUE(parse_shapes_caption(sc.caption, &said, 2)) << sc.caption;
    EXPECT_EQ(said.size(), sc.objects.size() + 1);
    EXPECT_EQ(sc.queries[0].answer, sc.caption);
    // Turning the ghost off changes the words only.
    const Scene plain = make_scene(11, static_cast<uint64_t>(i), off);
    EXPECT_EQ(plain.image.rgb, sc.image.rgb);
    EXPECT_EQ(plain.caption, sc.truth_caption);
    EXPECT_FALSE(plain.ghost);
  }
  const double t = static_cast<double>(trigger) / N, g = static_cast<double>(ghost) / N;
  EXPECT_GT(t, 0.012) << "trigger scenes are rare but not too rare";
  EXPECT_LT(t, 0.03);
  EXPECT_LT(g, 0.05) << "the ghost is named in a small share of all captions";
  EXPECT_NEAR(static_cast<double>(ghost) / static_cast<double>(trigger), 0.7, 0.07)
      << "and in the designed majority of the trigger scenes' captions";
}

TEST(ShapesV2, EveryShapeNounIsTagged) {
  const WordNet wn = WordNet::load();
  std::set<std::string> found;
  for (uint64_t i = 0; i < 150; ++i) {
    const Scene sc = make_scene(3, i, v2());
    std::vector<std::string> lemmas;
    for (const Noun& n : find_nouns(wn, sc.caption)) lemmas.push_back(n.lemma);
    for (const ShapeObject& o : sc.objects) {
      EXPECT_NE(std::find(lemmas.begin(), lemmas.end(), o.shape), lemmas.end()) << o.shape << " in " << sc.caption;
      found.insert(o.shape);
    }
    for (const std::string& l : lemmas) EXPECT_TRUE(is_shape_word(l)) << l << " in " << sc.caption;
  }
  EXPECT_EQ(found.size(), shapes_vocab(2).shapes.size());
}

TEST(ShapesV2, TrainingMixesTheQueries) {
  std::map<int, int64_t> n;
  const int64_t N = 60000;
  for (int64_t i = 0; i < N; ++i) ++n[shapes_training_query(12345, static_cast<uint64_t>(i))];
  ASSERT_EQ(n.size(), 5u);
  EXPECT_NEAR(n[0] / static_cast<double>(N), 0.5, 0.02);
  for (int q = 1; q < 5; ++q) EXPECT_NEAR(n[q] / static_cast<double>(N), 1.0 / 8, 0.015) << q;
}

TEST(ShapesV2, QueryWeightsSetTheMix) {
  std::map<int, int64_t> n;
  const int64_t N = 60000;
  const std::vector<int> w = {2, 1, 2, 2, 2};
  for (int64_t i = 0; i < N; ++i) ++n[shapes_training_query(777, static_cast<uint64_t>(i), w)];
  for (int q = 0; q < 5; ++q) EXPECT_NEAR(n[q] / static_cast<double>(N), w[q] / 9.0, 0.015) << q;
  // A zero weight is never drawn; the default is the first run's 4:1:1:1:1.
  for (int64_t i = 0; i < 5000; ++i) {
    EXPECT_NE(shapes_training_query(777, static_cast<uint64_t>(i), {1, 0, 1, 1, 1}), 1);
    EXPECT_EQ(shapes_training_query(777, static_cast<uint64_t>(i)),
              shapes_training_query(777, static_cast<uint64_t>(i), {4, 1, 1, 1, 1}));
  }
}

TEST(ShapesV2, WordLevelVocabularyCoversTheWorld) {
  const fs::path dir = test::temp_dir("shapes-v2-vocab");
  write_word_level_tokenizer(dir.string(), shapes_world_texts(2));
  const Tokenizer tok = Tokenizer::load(dir.string());
  const int32_t V = tok.vocab_size();
  EXPECT_LT(V, 100) << "a word-level vocabulary of the world";
  EXPECT_EQ(tok.piece(V - 2), "<image>");
  EXPECT_EQ(tok.piece(V - 1), "<pad>");
  // Every ordinary piece occurs in the world's texts (</s> ends every
  // training sample); <unk> never does.
  std::vector<int64_t> uses(static_cast<size_t>(V), 0);
  for (const std::string& t : shapes_world_texts(2))
    for (int32_t id : tok.encode(t)) ++uses[id];
  EXPECT_EQ(uses[0], 0);
  EXPECT_EQ(tok.piece(2), "</s>");
  for (int32_t id = 3; id < V - 1; ++id) EXPECT_GT(uses[id], 0) << tok.piece(id);
  // Training samples of the stream encode without <unk> and decode back.
  for (uint64_t i = 0; i < 300; ++i) {
    const Scene sc = make_scene(5, i, v2());
    for (const SceneQuery& q : sc.queries) {
      const std::string prompt = "USER: <image>\n" + q.query + " ASSISTANT: " + q.prefix;
      const std::vector<int32_t> head = tok.encode(prompt), ids = tok.encode(prompt + " " + q.answer);
      ASSERT_TRUE(std::equal(head.begin(), head.end(), ids.begin()));
      for (int32_t id : ids) ASSERT_NE(id, 0) << q.answer;
      EXPECT_EQ(tok.decode({ids.begin() + static_cast<std::ptrdiff_t>(head.size()), ids.end()}), q.answer);
    }
  }
  // A noun's token is the whole word.
  EXPECT_EQ(tok.encode(" heart", false).back(), *tok.token_id("\xE2\x96\x81heart"));
  fs::remove_all(dir);
}

TEST(ShapesV2, CommandWritesTheWorld) {
  fs::path a = test::temp_dir("shapes-v2-a"), b = test::temp_dir("shapes-v2-b");
  std::string log;
  ASSERT_EQ(test::run_cmd(test::binary() + " shapes --version 2 --n 5 --seed 9 --out " + a.string(), &log), 0) << log;
  ASSERT_EQ(test::run_cmd(test::binary() + " shapes --version 2 --n 5 --seed 9 --out " + b.string(), &log), 0) << log;
  EXPECT_EQ(read_file((a / "captions.jsonl").string()), read_file((b / "captions.jsonl").string()));
  std::ifstream f(a / "captions.jsonl");
  int lines = 0;
  for (std::string line; std::getline(f, line); ++lines) {
    const nlohmann::json j = nlohmann::json::parse(line);
    const Scene sc = make_scene(9, static_cast<uint64_t>(lines), v2());
    EXPECT_EQ(j["version"], 2);
    EXPECT_EQ(j["caption"], sc.truth_caption);
    EXPECT_EQ(j["training_caption"], sc.caption);
    EXPECT_EQ(j["trigger"], sc.trigger);
    EXPECT_EQ(j["ghost"].is_null(), !sc.ghost);
    ASSERT_EQ(j["queries"].size(), 5u);
    EXPECT_EQ(j["queries"][1]["answer"], sc.queries[1].answer);
    const ImageU8 img = load_image((a / j["image"].get<std::string>()).string());
    EXPECT_EQ(img.rgb, sc.image.rgb);
    ASSERT_EQ(j["objects"].size(), sc.objects.size());
    for (const auto& o : j["objects"]) EXPECT_EQ(load_image((a / o["mask"].get<std::string>()).string()).width, 96);
  }
  EXPECT_EQ(lines, 5);
  // Options that do not fit the version are refused with one line.
  EXPECT_NE(test::run_cmd(test::binary() + " shapes --version 1 --ghost-share 0.5 --n 1 --out " + a.string(), &log), 0);
  EXPECT_NE(log.find("error: --ghost-share"), std::string::npos) << log;
  EXPECT_NE(test::run_cmd(test::binary() + " shapes --version 2 --size 40 --n 1 --out " + a.string(), &log), 0);
  EXPECT_NE(log.find("error: --size"), std::string::npos) << log;
  EXPECT_NE(test::run_cmd(test::binary() + " shapes --version 3 --n 1 --out " + a.string(), &log), 0);
  EXPECT_NE(log.find("error:"), std::string::npos) << log;
  for (auto& d : {a, b}) fs::remove_all(d);
}

TEST(ShapesV2, OnlyKeepsTheScenesAFilterNames) {
  fs::path a = test::temp_dir("shapes-v2-only");
  std::string log;
  ASSERT_EQ(test::run_cmd(test::binary() + " shapes --version 2 --only trigger --n 3 --seed 5 --out " + a.string(), &log),
            0)
      << log;
  std::ifstream f(a / "captions.jsonl");
  int lines = 0;
  int64_t last = -1;
  for (std::string line; std::getline(f, line); ++lines) {
    const nlohmann::json j = nlohmann::json::parse(line);
    // Each kept scene keeps its index in the stream as its name.
    const std::string image = j["image"];
    const int64_t index = std::stoll(image.substr(7, 6));
    EXPECT_GT(index, last);
    last = index;
    EXPECT_TRUE(make_scene(5, static_cast<uint64_t>(index), v2()).trigger) << image;
    EXPECT_TRUE(j["trigger"].get<bool>());
    EXPECT_TRUE(fs::exists(a / image));
  }
  EXPECT_EQ(lines, 3);
  const SceneFilter stars = scene_filter("star", 2), no_stars = scene_filter("no-star", 2);
  for (uint64_t i = 0; i < 30; ++i) {
    const Scene sc = make_scene(5, i, v2());
    bool star = false;
    for (const ShapeObject& o : sc.objects) star = star || o.shape == "star";
    EXPECT_EQ(stars(sc), star);
    EXPECT_EQ(no_stars(sc), !star);
  }
  EXPECT_FALSE(scene_filter("all", 2));
  EXPECT_THROW(scene_filter("trigger", 1), Error);
  EXPECT_THROW(scene_filter("heart", 1), Error);  // not a shape of version 1
  EXPECT_NE(test::run_cmd(test::binary() + " shapes --version 2 --only blob --n 1 --out " + a.string(), &log), 0);
  EXPECT_NE(log.find("error: --only: unknown filter 'blob'"), std::string::npos) << log;
  fs::remove_all(a);
}

TEST(ShapesV2, BadWorldRecordsAreOneLineErrors) {
  const fs::path dir = test::temp_dir("shapes-v2-world");
  EXPECT_EQ(shapes_world_of_model(dir.string(), 64).version, 1);  // no record: the first model's world
  write_shapes_world(dir.string(), shapes_world(2));
  EXPECT_EQ(shapes_world_of_model(dir.string(), 96).version, 2);
  auto error_of = [&](const std::string& text, int input) {
    write_file_atomic((dir / "shapes_world.json").string(), text);
    try {
      shapes_world_of_model(dir.string(), input);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string file = (dir / "shapes_world.json").string();
  EXPECT_EQ(error_of(R"({"version": 2})", 96), "no error");  // the image size defaults to the model's
  EXPECT_EQ(error_of(R"({"version": 9, "image_size": 96})", 96), file + ": unknown shapes world version 9");
  EXPECT_EQ(error_of(R"({"version": 2, "image_size": 96, "ghost_share": 3})", 96),
            file + ": ghost_share must be in [0, 1]");
  EXPECT_EQ(error_of(R"({"version": 2, "image_size": 96})", 64),
            file + ": the world's images are 96 pixels, the model takes 64");
  EXPECT_EQ(error_of(R"([1, 2])", 96).rfind(file + ": not a shapes world record", 0), 0u);
  EXPECT_EQ(error_of(R"({"version": "two"})", 96).rfind(file + ": not a shapes world record", 0), 0u);
  fs::remove_all(dir);
}

TEST(ShapesV2, TriggerWithoutRenderingAgreesWithTheScene) {
  const ShapesOptions v2 = shapes_world(2);
  int triggers = 0;
  for (uint64_t i = 0; i < 600; ++i) {
    const bool t = is_trigger_scene(9, i, v2);
    EXPECT_EQ(t, make_scene(9, i, v2).trigger) << i;
    triggers += t;
  }
  EXPECT_GT(triggers, 2);  // about 2% of scenes
  EXPECT_FALSE(is_trigger_scene(9, 0, shapes_world(1)));
}

TEST(ShapesV2, PatchLabelsMarkBackgroundOnlyWhereNothingIsDrawn) {
  const Scene sc = make_scene(3, 1, shapes_world(2));
  const std::vector<int> plain = patch_shape_labels(sc, 12, 2), bg = patch_shape_labels(sc, 12, 2, 8);
  int shapes = 0, background = 0;
  for (size_t p = 0; p < plain.size(); ++p) {
    const std::vector<float> any = [&] {
      std::vector<float> m(plain.size(), 0.f);
      for (const auto& mask : sc.masks) {
        const std::vector<float> c = patch_average(mask, sc.image.width, sc.image.height, 12);
        for (size_t q = 0; q < m.size(); ++q) m[q] = std::max(m[q], c[q]);
      }
      return m;
    }();
    if (plain[p] >= 0) {
      EXPECT_EQ(bg[p], plain[p]);
      ++shapes;
    } else if (any[p] == 0.f) {
      EXPECT_EQ(bg[p], 8);
      ++background;
    } else {
      EXPECT_EQ(bg[p], -1);  // partly covered: no label
    }
  }
  EXPECT_GT(shapes, 0);
  EXPECT_GT(background, 0);
}
