/* farm_state: names and parsing of task states (see farm_state.h). */
#include "farm_state.h"

#include <string.h>

static const char *s_names[FARM_STATE_COUNT] = {
#define XX(e, n, s, f) [n] = s,
    FARM_STATE_MAP(XX)
#undef XX
};

static const bool s_final[FARM_STATE_COUNT] = {
#define XX(e, n, s, f) [n] = f,
    FARM_STATE_MAP(XX)
#undef XX
};

const char *farm_state_name(int state) {
    return state >= 0 && state < FARM_STATE_COUNT ? s_names[state] : "unknown";
}

int farm_state_parse(const char *s, size_t len) {
    for (int i = 0; i < FARM_STATE_COUNT; i++)
        if (strlen(s_names[i]) == len && memcmp(s_names[i], s, len) == 0)
            return i;
    return -1;
}

bool farm_state_final(int state) { return state >= 0 && state < FARM_STATE_COUNT && s_final[state]; }
