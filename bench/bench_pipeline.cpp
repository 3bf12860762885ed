// End-to-end benchmark of any family (not a test): image encode, prefill,
// per-token decode, find, and peak RSS on a checkpoint (e.g. `make-random
// --preset llava-1.5-7b --dtype bf16`), and in the same run the GEMM library's own throughput on the
// same shapes and a memory-bandwidth probe, so the figures are ratios:
//   prefill efficiency = our prefill FLOP/s ÷ OpenBLAS sgemm FLOP/s (same shapes)
//   decode efficiency  = weight bytes streamed per second ÷ measured bandwidth
// Usage: bench_pipeline --model DIR [--image FILE] [--repeats N] [--decode-tokens N]
#include <cblas.h>
#include <omp.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench_util.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "kernels/threading.h"
#include "models/generate.h"
#include "models/vlm.h"
#include "neurons/find.h"

extern "C" void openblas_set_num_threads(int);

using namespace mmn;
using namespace mmn::bench;

namespace {


// Streams a buffer much larger than the caches with all threads; GB/s.
double bandwidth_gbs(size_t bytes, int repeats) {
  const size_t n = bytes / sizeof(float);
  float* buf = probe_buffer(n);
#pragma omp parallel for num_threads(num_threads())
  for (size_t i = 0; i < n; ++i) buf[i] = static_cast<float>(i & 1023);
  std::vector<double> t;
  volatile float sink = 0;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = Clock::now();
    const float total = stream_sum_parallel(reinterpret_cast<const char*>(buf), bytes, num_threads());
    t.push_back(secs(t0));
    sink = sink + total;
  }
  std::free(buf);
  return static_cast<double>(bytes) / median(t) / 1e9;
}

// Streams every tensor of the mapped checkpoint (page-cache memory in 4 KiB
// pages, as decode reads it) with all threads; GB/s.
double checkpoint_read_gbs(const SafetensorsCheckpoint& ck, int repeats) {
  std::vector<std::pair<const char*, size_t>> spans;
  size_t total = 0;
  for (auto& [name, t] : ck.tensors()) {
    spans.emplace_back(static_cast<const char*>(t.data), t.nbytes);
    total += t.nbytes;
  }
  std::vector<double> times;
  volatile float sink = 0;
  for (int r = 0; r < repeats + 1; ++r) {
    auto t0 = Clock::now();
    float sum = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads()) reduction(+ : sum)
    for (size_t i = 0; i < spans.size(); ++i) sum += stream_sum(spans[i].first, spans[i].second);
    if (r) times.push_back(secs(t0));  // the first pass brings the file into the page cache
    sink = sink + sum;
  }
  return static_cast<double>(total) / median(times) / 1e9;
}

// OpenBLAS sgemm (all threads, fp32 weights) on y[M,N] = x[M,K]·Wᵀ; seconds (median).
double library_gemm_s(int64_t M, int64_t N, int64_t K, int repeats) {
  std::vector<float> x(M * K, 0.01f), w(N * K, 0.02f), y(M * N);
  openblas_set_num_threads(num_threads());
  std::vector<double> t;
  for (int r = 0; r < repeats + 1; ++r) {
    auto t0 = Clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.f, x.data(), K, w.data(), K, 0.f, y.data(), N);
    if (r) t.push_back(secs(t0));  // first call warms up
  }
  openblas_set_num_threads(1);
  return median(t);
}

struct Args {
  std::string model, image = "assets/sample.png";
  int repeats = 3, decode_tokens = 16;
  bool gradient = false;  // also time find --method gradient
};

// Runs caption (or find with --heatmaps) once in a child process and returns
// its peak RSS in bytes.
long child_peak_rss(const Args& a, bool find, RankMethod method = RankMethod::Score) {
  pid_t pid = fork();
  if (pid == 0) {
    auto model = load_model(a.model);
    if (find) {
      FindOptions fo;
      fo.method = method;
      fo.max_new_tokens = a.decode_tokens;
      fo.all_tokens = true;
      fo.heatmaps = true;
      fo.top_k = std::min<int64_t>(fo.top_k, static_cast<int64_t>(model->decoder().config().n_layers) *
                                                 model->decoder().config().intermediate);
      find_neurons(*model, nullptr, load_image(a.image), fo);
    } else {
      PreprocessedImage px = model->preprocess(load_image(a.image));
      PromptInputs in = model->build_inputs({}, model->encode_image(px, nullptr), nullptr);
      GenerateOptions opt;
      opt.max_new_tokens = a.decode_tokens;
      opt.stop_at_eos = false;
      generate(*model, in, opt);
    }
    _exit(0);
  }
  int st = 0;
  struct rusage ru {};
  wait4(pid, &st, 0, &ru);  // this child's own peak
  return ru.ru_maxrss * 1024L;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "error: %s needs a value\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--model") a.model = next();
    else if (k == "--image") a.image = next();
    else if (k == "--repeats") a.repeats = std::stoi(next());
    else if (k == "--decode-tokens") a.decode_tokens = std::stoi(next());
    else if (k == "--gradient") a.gradient = true;
    else {
      std::fprintf(stderr, "error: unknown option %s\nusage: bench_pipeline --model DIR [--image FILE] [--repeats N] [--decode-tokens N] [--gradient]\n", k.c_str());
      return 2;
    }
  }
  if (a.model.empty()) {
    std::fprintf(stderr, "error: --model is required\n");
    return 2;
  }
  try {
    init_threads();
    std::printf("threads: %d\n", num_threads());
    // Children are forked before this process starts OpenMP's thread pool
    // (a fork after it would inherit a pool with no threads behind it).
    const long rss = child_peak_rss(a, false);
    const long rss_find = child_peak_rss(a, true);
    const long rss_grad = a.gradient ? child_peak_rss(a, true, RankMethod::Gradient) : 0;

    auto t0 = Clock::now();
    auto model = load_model(a.model);
    const double load_s = secs(t0);
    const LlamaConfig& c = model->decoder().config();
    PreprocessedImage px = model->preprocess(load_image(a.image));

    std::vector<double> enc_t, pre_t, dec_t;
    std::vector<float> feats;
    for (int r = 0; r < a.repeats; ++r) {
      auto t1 = Clock::now();
      feats = model->encode_image(px, nullptr);
      enc_t.push_back(secs(t1));
    }
    PromptInputs in = model->build_inputs({}, feats, nullptr);
    for (int r = 0; r < a.repeats; ++r) {
      GenerateOptions opt;
      opt.max_new_tokens = a.decode_tokens;
      opt.stop_at_eos = false;
      GenerateResult g = generate(*model, in, opt);
      pre_t.push_back(g.prefill_s);
      if (g.decode_tokens > 0) dec_t.push_back(g.decode_s / g.decode_tokens);
    }
    const double enc = median(enc_t), pre = median(pre_t), dec = median(dec_t);

    // find vs caption on the same image and model: the same encode + prefill +
    // decode, plus scoring and explanations for a few concepts (the words of
    // the first generated tokens, as if they were the caption's nouns).
    std::vector<double> cap_t, find_t;
    FindOptions fo;
    fo.max_new_tokens = a.decode_tokens;
    fo.top_k = std::min<int64_t>(fo.top_k, static_cast<int64_t>(c.n_layers) * c.intermediate);
    fo.report = std::min(fo.report, fo.top_k);
    int n_concepts = 0;
    for (int r = 0; r < a.repeats; ++r) {
      auto t1 = Clock::now();
      std::vector<float> f = model->encode_image(px, nullptr);
      PromptInputs pin = model->build_inputs({}, f, nullptr);
      GenerateOptions opt;
      opt.max_new_tokens = a.decode_tokens;
      GenerateResult g = generate(*model, pin, opt);
      cap_t.push_back(secs(t1));
      if (fo.nouns.empty())
        for (size_t j = 0; j < g.generated.size() && fo.nouns.size() < 3; ++j) {
          std::string w = caption_text(model->tokenizer(), {g.generated[j]});
          while (!w.empty() && w.front() == ' ') w.erase(w.begin());
          if (!w.empty() && w.find(' ') == std::string::npos) fo.nouns.push_back(w);
        }
      // No word-like tokens (a random model's tokenizer may not know its ids): score every step.
      if (fo.nouns.empty()) fo.all_tokens = true;
      fo.heatmaps = false;
      auto t2 = Clock::now();
      ImageFindResult fr = find_neurons(*model, nullptr, load_image(a.image), fo);
      Explainer ex(*model, fo.explain_tokens);  // fresh: no cache from earlier repeats
      std::vector<std::pair<int, int>> ids;
      for (auto& c : fr.concepts)
        for (int64_t i = 0; i < std::min<int64_t>(fo.report, static_cast<int64_t>(c.neurons.size())); ++i)
          ids.emplace_back(c.neurons[i].layer, c.neurons[i].unit);
      ex.explain(ids);
      find_t.push_back(secs(t2));
      n_concepts = static_cast<int>(fr.concepts.size());
    }
    const double cap_s = median(cap_t), find_s = median(find_t);

    // The gradient baseline on the same inputs and concepts.
    double grad_s = 0;
    if (a.gradient) {
      std::vector<double> gt;
      FindOptions go = fo;
      go.method = RankMethod::Gradient;
      for (int r = 0; r < a.repeats; ++r) {
        auto t3 = Clock::now();
        find_neurons(*model, nullptr, load_image(a.image), go);
        gt.push_back(secs(t3));
      }
      grad_s = median(gt);
    }

    // FLOPs of one prefill: decoder linears + attention scores/values (as computed: full S×S per head) + last-row lm_head.
    const double S = static_cast<double>(in.seq_len), D = c.hidden, I = c.intermediate;
    const double KV = static_cast<double>(c.n_kv_heads) * c.head_dim;
    const double lin_per_row = 2.0 * (2 * D * D + 2 * D * KV + 3 * D * I);
    const double lin_flops = c.n_layers * S * lin_per_row;
    const double attn_flops = c.n_layers * 4.0 * S * S * D;
    const double prefill_flops = lin_flops + attn_flops + 2.0 * D * c.vocab;

    // The library on the same shapes, weighted as a prefill uses them.
    const int64_t M = in.seq_len;
    double lib_s = 0;
    lib_s += 2 * library_gemm_s(M, c.hidden, c.hidden, a.repeats);      // q, o
    lib_s += 2 * library_gemm_s(M, static_cast<int64_t>(KV), c.hidden, a.repeats);  // k, v
    lib_s += 2 * library_gemm_s(M, c.intermediate, c.hidden, a.repeats);  // gate, up
    lib_s += library_gemm_s(M, c.hidden, c.intermediate, a.repeats);      // down
    const double lib_flops_s = M * lin_per_row / lib_s;
    const double ours_flops_s = prefill_flops / pre;

    // Decode streams every decoder weight and the lm_head once per token.
    // Bytes per stored weight: int8 (quantize) carries one F16 scale per kQ8Block values.
    auto weight_bytes = [](const Weight& w) {
      return static_cast<double>(w.elem_size()) + (w.dtype == DType::I8 ? 2.0 / kQ8Block : 0.0);
    };
    const Weight& dw = model->decoder().layer(0).down.w;
    const double bytes_per_token = c.n_layers * (2 * D * D + 2 * D * KV + 3 * D * I) * weight_bytes(dw) +
                                   D * c.vocab * weight_bytes(model->decoder().lm_head());
    const double bw = bandwidth_gbs(size_t{2} << 30, 5) * 1e9;
    const double bw_ck = checkpoint_read_gbs(model->checkpoint(), 3) * 1e9;
    const double dec_bytes_s = bytes_per_token / dec;

    // FLOPs of the whole procedure for T generated tokens and n concepts:
    // ours (KV cache, scores on the fly) vs the reference code (cache off:
    // step t recomputes all S + t rows; scores from a precomputed
    // W_downᵀU table of L·I·V entries, built once at 2·L·I·D·V FLOPs).
    const double T = a.decode_tokens, V = static_cast<double>(c.vocab);
    auto fwd = [&](double rows, double ctx) {  // one decoder pass over `rows` rows attending to `ctx` keys
      return c.n_layers * (rows * lin_per_row + 4.0 * rows * ctx * D);
    };
    double ours = fwd(S, S), ref = 0;
    for (int t = 1; t < T; ++t) ours += fwd(1, S + t) + 2.0 * D * V;
    for (int t = 0; t < T; ++t) ref += fwd(S + t, S + t) + 2.0 * D * V;
    ours += n_concepts * (2.0 * c.n_layers * D * I + fo.report * 2.0 * D * V);
    const double table = 2.0 * c.n_layers * I * D * V;
    const double ck = static_cast<double>(model->checkpoint().total_bytes());
    std::printf("model: %s (%s, %s weights, %.2f GB)\n", a.model.c_str(), model->family().c_str(),
                dtype_name(dw.dtype), ck / 1e9);
    std::printf("load (mmap + index):  %.3f s\n", load_s);
    std::printf("image encode:         %.3f s (median of %d)\n", enc, a.repeats);
    std::printf("prefill:              %.3f s for %lld tokens (median of %d), %.1f GFLOP/s\n", pre,
                static_cast<long long>(in.seq_len), a.repeats, ours_flops_s / 1e9);
    std::printf("decode:               %.3f s/token (median over %d tokens x %d runs), %.2f GB/s of weights\n", dec,
                a.decode_tokens - 1, a.repeats, dec_bytes_s / 1e9);
    std::printf("library sgemm:        %.1f GFLOP/s on the prefill shapes (OpenBLAS, %d threads, fp32)\n",
                lib_flops_s / 1e9, num_threads());
    std::printf("memory bandwidth:     %.2f GB/s (streaming read, %d threads)\n", bw / 1e9, num_threads());
    std::printf("peak RSS (caption):   %.2f GB = checkpoint + %.2f GB\n", rss / 1e9, (rss - ck) / 1e9);
    std::printf("peak RSS (find --heatmaps): %.2f GB = checkpoint + %.2f GB\n", rss_find / 1e9, (rss_find - ck) / 1e9);
    std::printf("prefill efficiency:   %.2f (achieved FLOP/s / library FLOP/s)\n", ours_flops_s / lib_flops_s);
    std::printf("checkpoint read:      %.2f GB/s (streaming the mapped checkpoint, %d threads)\n", bw_ck / 1e9,
                num_threads());
    std::printf("decode efficiency:    %.2f (weight bytes/s / measured bandwidth); %.2f of the mapped-checkpoint read rate\n",
                dec_bytes_s / bw, dec_bytes_s / bw_ck);
    std::printf("caption (encode+prefill+%d tokens): %.3f s; find with %d concepts, top-%lld, %lld explained: %.3f s\n",
                a.decode_tokens, cap_s, n_concepts, static_cast<long long>(fo.top_k), static_cast<long long>(fo.report),
                find_s);
    std::printf("find overhead over caption: %.1f%%\n", 100.0 * (find_s - cap_s) / cap_s);
    if (a.gradient)
      std::printf("find --method gradient: %.3f s (%.1fx find --method score); peak RSS %.3f GB (score: %.3f GB)\n",
                  grad_s, grad_s / find_s, rss_grad / 1e9, rss_find / 1e9);
    std::printf("FLOPs for %d tokens, %d concepts: ours %.3g; reference (no KV cache) %.3g (%.1fx) + projection table %.3g once\n",
                a.decode_tokens, n_concepts, ours, ref, ref / ours, table);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
