// Threading lives here: OpenMP for our loops, OpenBLAS pinned to one thread
// per call so the two runtimes never oversubscribe the cores.
#pragma once

namespace mmn {

// Call once at start-up (idempotent). n <= 0: use all cores.
void init_threads(int n = 0);
int num_threads();

}  // namespace mmn
