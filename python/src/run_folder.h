// Reading a finished find run for mmneuron.load_run: the library's run reader
// checks the folder and lists its finished images; the package (mmneuron/
// __init__.py) then reads each image's files as Python objects and arrays.
#pragma once
#include <pybind11/pybind11.h>

#include <string>

namespace mmn::py_bind {

namespace py = pybind11;

// {"dir", "info": run.json, "images": [(id, image folder), …]}, sorted by id.
py::dict load_run_index(const std::string& dir);

}  // namespace mmn::py_bind
