# Finds what the Python module needs (python/): an interpreter that imports
# numpy, its development headers, and pybind11 (Debian: python3-dev,
# python3-numpy, pybind11-dev). Sets MMN_PYTHON_FOUND. Included from the top
# CMakeLists before src/, so that the static layers can be built with -fPIC.
#
# The interpreter: Python3_EXECUTABLE when given, else the first python3 on
# PATH that imports numpy (a pyenv or venv python3 without numpy is passed
# over), so the module is built for the interpreter its tests run under.
if(NOT Python3_EXECUTABLE)
  string(REPLACE ":" ";" _mmn_path "$ENV{PATH}")
  foreach(_dir IN LISTS _mmn_path)
    if(EXISTS "${_dir}/python3")
      execute_process(COMMAND "${_dir}/python3" -c "import numpy" RESULT_VARIABLE _mmn_rc OUTPUT_QUIET ERROR_QUIET)
      if(_mmn_rc EQUAL 0)
        set(Python3_EXECUTABLE "${_dir}/python3" CACHE FILEPATH "The Python the mmneuron module is built for")
        break()
      endif()
    endif()
  endforeach()
endif()
find_package(Python3 COMPONENTS Interpreter Development.Module NumPy QUIET)
set(MMN_PYTHON_FOUND OFF)
if(Python3_FOUND AND Python3_NumPy_FOUND)
  find_package(pybind11 CONFIG QUIET)
  if(pybind11_FOUND)
    set(MMN_PYTHON_FOUND ON)
  endif()
endif()
