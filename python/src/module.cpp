// mmneuron._core: the extension module under the mmneuron package. The
// package (python/mmneuron/__init__.py) gives it its TransformerLens-style
// surface; README "Python" documents both.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "arrays.h"
#include "kernels/compute.h"
#include "kernels/threading.h"
#include "model.h"
#include "models/capture.h"
#include "neurons/heatmap_figure.h"
#include "run_folder.h"
#include "util/error.h"

namespace py = pybind11;
using namespace mmn::py_bind;

PYBIND11_MODULE(_core, m) {
  m.doc() = "mmneuron's engine (the package mmneuron wraps it)";
  // Every mmn::Error (bad input, a bad argument value, nothing done) as one
  // exception carrying the CLI's one-line message.
  py::register_exception<mmn::Error>(m, "Error", PyExc_RuntimeError);
  m.attr("__version__") = MMN_VERSION;

  bind_model(m);

  m.def("num_threads", &mmn::num_threads, "Worker threads the engine uses (set by the first load: threads=)");
  m.def(
      "set_compute",
      [](const std::string& mode) {
        const mmn::Compute want = mmn::parse_compute(mode), got = mmn::set_compute(want);
        if (got != want) {
          const std::string msg = "mmneuron: compute='" + mode + "': " + mmn::bf16_unavailable_reason() +
                                  "; running the exact path";
          if (PyErr_WarnEx(PyExc_RuntimeWarning, msg.c_str(), 1) != 0) throw py::error_already_set();
        }
        return std::string(mmn::compute_name(got));
      },
      py::arg("mode"),
      "The CLI's --compute for this process: 'exact' or 'bf16'; returns the mode in effect (exact, with a "
      "RuntimeWarning, where the CPU lacks AVX-512 BF16). Set it before running a model.");
  m.def("compute_mode", [] { return std::string(mmn::compute_name(mmn::compute_mode())); });
  m.def("hook_names", &mmn::all_hook_names, py::arg("n_layers"),
        "Every hook point of a model with n_layers layers, in forward order");
  m.def(
      "load_image",
      [](const std::string& path) {
        mmn::ImageU8 img;
        {
          py::gil_scoped_release release;
          img = mmn::load_image(path);
        }
        return image_array(std::move(img));
      },
      py::arg("path"), "A PNG or JPEG file as an HxWx3 uint8 array (decoded as the model reads it)");
  m.def(
      "write_png",
      [](const std::string& path, py::handle image) {
        const mmn::ImageU8 img = ImageArg(image).load();
        py::gil_scoped_release release;
        mmn::write_png(path, img);
      },
      py::arg("path"), py::arg("image"), "Writes an HxWx3 uint8 array as an RGB PNG (atomically)");
  m.def(
      "heatmap_figure",
      [](py::handle image, py::array_t<float, py::array::c_style | py::array::forcecast> grid, float scale,
         const std::vector<std::string>& title, const std::string& note) {
        if (grid.ndim() != 2) mmn::fail("heatmap_figure: the map must be 2-D (grid × grid), got ", grid.ndim(), "-D");
        const mmn::ImageU8 base = ImageArg(image).load();
        return image_array(mmn::heatmap_figure(base, grid.data(), static_cast<int>(grid.shape(0)),
                                               static_cast<int>(grid.shape(1)), scale, title, note));
      },
      py::arg("image"), py::arg("grid"), py::arg("scale"), py::arg("title") = std::vector<std::string>{},
      py::arg("note") = "",
      "find --heatmaps' figure of one map over the image, on the absolute scale 0 … scale, as an HxWx3 uint8 array");
  m.def("_load_run", &load_run_index, py::arg("dir"));
}
