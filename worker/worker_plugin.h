/* worker_plugin: loading plugins (farm-worker --plugin path.so).
 *
 * A plugin is a shared object exporting the two entry points of
 * farm_plugin.h. It is opened with RTLD_NOW | RTLD_LOCAL, so an unresolved
 * symbol refuses it at once rather than at its first task, and its own
 * symbols never shadow another plugin's; its farm_task_* calls resolve
 * against the worker executable (built with ENABLE_EXPORTS). A plugin is
 * refused, with a message saying why, when it cannot be opened, lacks an
 * entry point, was built for another FARM_PLUGIN_API_VERSION, offers no
 * handlers or too many, or offers a type that is invalid or already taken
 * (by a built-in or an earlier plugin). A refusal registers nothing of that
 * plugin. A loaded plugin is never closed: its handlers and strings must
 * live as long as the process.
 */
#ifndef WORKER_PLUGIN_H
#define WORKER_PLUGIN_H

#include "worker_registry.h"

#include <stddef.h>

/* Load the plugin at path and register its handlers into reg, after
 * what reg already holds. Returns 0, or -1 with the reason in err (n bytes,
 * NUL terminated), e.g. "not a farm plugin: no entry point
 * farm_plugin_api_version". */
int worker_plugin_load(worker_registry_t *reg, const char *path, char *err, size_t n);

#endif
