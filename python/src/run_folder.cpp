#include "run_folder.h"

#include <pybind11/stl.h>

#include "arrays.h"
#include "neurons/run.h"

namespace mmn::py_bind {

py::dict load_run_index(const std::string& dir) {
  RunData run;
  {
    py::gil_scoped_release release;
    run = load_run(dir);  // the checks perturb and metrics apply, with their one-line errors
  }
  py::list images;
  for (const RunImage& im : run.images) images.append(py::make_tuple(im.id, im.dir));
  py::dict out;
  out["dir"] = run.dir;
  out["info"] = json_to_py(run.info.dump());
  out["images"] = images;
  return out;
}

}  // namespace mmn::py_bind
