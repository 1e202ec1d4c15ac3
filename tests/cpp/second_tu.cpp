// A second translation unit including sance.hpp: the program links only if the header
// defines nothing with external linkage twice.
#include <sance/sance.hpp>

std::string second_tu_version() { return sance::version(); }

size_t second_tu_sample_size() {
    sance::Config c;
    c.device = SANCE_DEVICE_CPU;
    c.hidden_width = 8;
    sance::Ebm m(c);
    return m.sample_size();
}
