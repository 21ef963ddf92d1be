/* fpenv.h: the floating-point environment the library's kernels run in
 * (fpenv.c): a scope that flushes subnormals to zero and then gives the
 * caller's environment back, and the per-thread mode that the library's
 * worker threads copy from the thread whose job they run. */
#ifndef AG_FPENV_H
#define AG_FPENV_H

/* The calling thread's floating-point control state (x86: MXCSR's control
 * bits, without the sticky exception flags; 0 where not supported). */
typedef unsigned ag_fp_mode;

/* The calling thread's mode now. */
ag_fp_mode ag__fp_mode(void);

/* Sets the calling thread's control bits to `mode`, keeping its exception
 * flags; does nothing when they already are. */
void ag__fp_set_mode(ag_fp_mode mode);

/* Starts a scope in which subnormal inputs read as zero and results that
 * would be subnormal are stored as zero (x86: MXCSR's DAZ and FTZ bits) on
 * the calling thread; returns the mode to give back to ag__fp_leave. */
ag_fp_mode ag__fp_enter_flush(void);

/* Ends the scope: the control bits as they were before ag__fp_enter_flush,
 * the exception flags raised meanwhile kept (as if the caller had run the
 * kernel itself). */
void ag__fp_leave(ag_fp_mode saved);

#endif /* AG_FPENV_H */
