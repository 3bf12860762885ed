// The page around a report: styles, the static sections (run summary, plots,
// metric tables) and the embedded script that renders the gallery and the
// neuron index from the embedded JSON data.
#pragma once
#include <string>

namespace mmn {

// title: plain text; sections: HTML; data_json: the report data, already safe
// inside a <script> element (no "</").
std::string report_page(const std::string& title, const std::string& sections, const std::string& data_json);

}  // namespace mmn
