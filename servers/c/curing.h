/* The io_uring completion server (uring_server.c, backend c-uring): built only when
 * setup.py finds liburing (it then defines SELECTBENCH_URING and links -luring).
 */
#ifndef SELECTBENCH_CURING_H
#define SELECTBENCH_CURING_H

#include <stddef.h>

#include "cloop.h"

/* The name servers._cloop.Loop takes for it, and the registry's mechanism of c-uring. */
#define CL_URING_COMPLETION "uring-completion"

/* What cl_uring_server_probe found missing: the first step that failed. */
typedef enum cl_uring_server_stage {
    CL_URING_OK = 0,
    CL_URING_SETUP,          /* io_uring_setup itself (disabled, seccomp, no io_uring) */
    CL_URING_BUF_RING,       /* registering a provided-buffer ring (Linux 5.19+) */
    CL_URING_MULTISHOT_RECV, /* multishot receive into provided buffers (Linux 6.0+) */
} cl_uring_server_stage;

/* Checks that this kernel runs what cl_uring_run needs, on a throw-away ring.
 * Returns CL_URING_OK, or the stage that failed with *err set to its errno (0 when the
 * call succeeded but did not behave as required). */
cl_uring_server_stage cl_uring_server_probe(int *err);

/* cl_loop_run's contract (cloop.h), served by io_uring completions instead of a
 * readiness mechanism; cfg->mech is not used. */
int cl_uring_run(const cl_config *cfg, cl_stats *stats, const int *stop_flag);

#endif
