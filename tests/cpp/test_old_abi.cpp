// sance.hpp compiled against another sance.h: SANCE_ABI_VERSION is redefined to 1 (the ABI-1
// header's value) before sance.hpp is included, so its inline code carries that version. Its
// own program: one definition of the inline functions per program. Config() must throw (the
// library refuses the version), and so must making a handle (sance.hpp's own check).
#include "sance.h"
static const uint32_t header_abi = SANCE_ABI_VERSION;
#undef SANCE_ABI_VERSION
#define SANCE_ABI_VERSION 1
#include "sance/sance.hpp"

#include <cstdio>
#include <string>

#include "check.hpp"


int main() {
    try {
        sance::Config c;
        CHECK(c.abi_version == 0, "Config() accepted an old ABI");
    } catch (const sance::Error &e) {
        CHECK(e.status() == SANCE_STATUS_INVALID_ARGUMENT, "Config(): %s", e.what());
        CHECK(std::string(e.what()).find("abi_version is 1") != std::string::npos, "message: %s", e.what());
    }
    SanceConfig raw;
    CHECK(sance_config_init(&raw, header_abi) == SANCE_STATUS_OK, "raw init at the real version");
    raw.device = SANCE_DEVICE_CPU;
    try {
        sance::Ebm m{sance::Config(raw)};
        CHECK(m.sample_size() == 0, "a handle was made against the wrong ABI");
    } catch (const sance::Error &e) {
        CHECK(e.status() == SANCE_STATUS_INVALID_ARGUMENT, "Ebm(): %s", e.what());
        CHECK(std::string(e.what()).find("compiled against sance.h of ABI version 1") != std::string::npos,
              "message: %s", e.what());
    }
    return check_summary();
}
