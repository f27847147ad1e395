/* fuzz_scenario.c - the scenario reader (lib/scenario/scenario.c, libyaml underneath): the document
 * as it is and with its quick: overrides. Files the scenario names are looked for beside the
 * input, in the harness's private directory, where there are none. */
#include "fuzz.h"
#include "scenario/scenario.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fz_file(data, size, ".yaml");
    for (int quick = 0; quick < 2; quick++) {
        struct ab_scenario s;
        ab_scenario_load(path, quick, &s);
        ab_scenario_free(&s);
    }
    return 0;
}
