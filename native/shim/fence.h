/*-------------------------------------------------------------------------
 *
 * fence.h
 *		The write fence of cluster mode (fence.c), as the worker host and the
 *		N-API addon see it: plain C types only, so that C++ can include it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSW_FENCE_H
#define TSW_FENCE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Exported from the shim for the addon (PGDLLEXPORT without PostgreSQL's
 * headers, which C++ does not include here): modules are compiled with
 * -fvisibility=hidden since PostgreSQL 16.
 */
#define TSW_FENCE_API __attribute__((visibility("default")))

/*
 * Let this server accept writes for `ms` more milliseconds (on the
 * monotonic clock); `ms` <= 0 closes the fence at once, and `reason` (may
 * be NULL) is what refused writes report.  Never raises an error.
 */
extern TSW_FENCE_API void tsw_fence_open_for(int64_t ms, const char *reason);

/*
 * Whether writes are under the fence's control (cluster mode) and, in
 * *remaining_ms, how long they stay allowed (<= 0: the fence is closed).
 * Returns 0 when the fence is not in use on this server.
 */
extern TSW_FENCE_API int tsw_fence_state(int64_t *remaining_ms);

#ifdef __cplusplus
}
#endif

#endif							/* TSW_FENCE_H */
