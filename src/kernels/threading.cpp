#include "kernels/threading.h"

#include <omp.h>

#include <mutex>

extern "C" void openblas_set_num_threads(int);

namespace mmn {

static std::once_flag g_once;
static int g_threads = 1;

void init_threads(int n) {
  std::call_once(g_once, [n] {
    // We parallelise over output tiles ourselves; each BLAS call runs on one thread.
    openblas_set_num_threads(1);
    g_threads = n > 0 ? n : omp_get_num_procs();
    omp_set_num_threads(g_threads);
  });
}

int num_threads() {
  init_threads();
  return g_threads;
}

}  // namespace mmn
