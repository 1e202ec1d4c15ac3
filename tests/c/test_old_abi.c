/* A program built against another sance.h: SANCE_ABI_VERSION is redefined to 1 below, as the
 * ABI-1 header defined it, so every use of the macro in this file is what such a program would
 * pass. The library must refuse it in sance_config_init with INVALID_ARGUMENT, write nothing
 * into the struct and name both versions; a struct stamped with the old version is refused by
 * sance_ebm_new too. Also checks the version macros against sance_version(). */
#include "sance.h"
#include "check.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const uint32_t header_abi = SANCE_ABI_VERSION; /* this tree's header */
#undef SANCE_ABI_VERSION
#define SANCE_ABI_VERSION 1 /* what a program compiled against the ABI-1 header passes */

static int all_bytes(const void *p, size_t n, unsigned char v) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != v) return 0;
    return 1;
}

int main(void) {
    CHECK(sance_abi_version() == header_abi, "library ABI %u vs header %u", sance_abi_version(), header_abi);
    CHECK(SANCE_ABI_VERSION != header_abi, "the faked version differs from the real one");

    SanceConfig cfg;
    memset(&cfg, 0xAB, sizeof cfg);
    SanceStatus s = sance_config_init(&cfg, SANCE_ABI_VERSION);
    CHECK(s == SANCE_STATUS_INVALID_ARGUMENT, "old ABI refused: %s", sance_status_name(s));
    CHECK(all_bytes(&cfg, sizeof cfg, 0xAB), "nothing written into the caller's struct");
    char want_old[64], want_new[64];
    snprintf(want_old, sizeof want_old, "abi_version is %u", (unsigned)SANCE_ABI_VERSION);
    snprintf(want_new, sizeof want_new, "ABI version %u", (unsigned)header_abi);
    CHECK(strstr(sance_last_error(), want_old) && strstr(sance_last_error(), want_new),
          "message names both versions: %s", sance_last_error());
    CHECK(sance_config_init(&cfg, header_abi + 1) == SANCE_STATUS_INVALID_ARGUMENT, "newer ABI refused too");
    CHECK(sance_config_init(NULL, header_abi) == SANCE_STATUS_NULL_POINTER, "NULL cfg");

    /* The right version works; a struct that says it has the old layout is refused. */
    CHECK(sance_config_init(&cfg, header_abi) == SANCE_STATUS_OK, "current ABI: %s", sance_last_error());
    CHECK(cfg.abi_version == header_abi && cfg.data_dim == 2, "defaults written");
    cfg.abi_version = SANCE_ABI_VERSION;
    SanceEbm *m = NULL;
    s = sance_ebm_new(&cfg, &m);
    CHECK(s == SANCE_STATUS_INVALID_ARGUMENT && m == NULL, "old-layout struct refused by new: %s",
          sance_status_name(s));
    CHECK(strstr(sance_last_error(), "abi_version is 1") != NULL, "message: %s", sance_last_error());

    /* The version macros match the library's version string ("sance X.Y.Z (...)"). */
    char want[64];
    snprintf(want, sizeof want, "sance %d.%d.%d ", SANCE_VERSION_MAJOR, SANCE_VERSION_MINOR, SANCE_VERSION_PATCH);
    CHECK(strncmp(sance_version(), want, strlen(want)) == 0, "version macros %s vs %s", want, sance_version());
    return check_summary();
}
