// The exit statuses of mmneuron, in one place (README: "Exit status").
#pragma once

namespace mmn::cli {

enum ExitCode : int {
  kExitOk = 0,           // done (images that could not be read are reported, the run goes on)
  kExitError = 1,        // an error: a bad or missing input file, I/O, the model
  kExitUsage = 2,        // a bad command line: unknown option, bad or out-of-range value (mmn::UsageError)
  kExitNothingDone = 3,  // ran, but nothing was done: no image analysed, no noun or shape to measure (mmn::NothingDone)
};

}  // namespace mmn::cli
