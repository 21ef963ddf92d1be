/* fpenv.c: flushing subnormal floats to zero. On x86 the MXCSR register
 * holds, per thread, whether subnormal inputs read as zero (DAZ) and
 * subnormal results become zero (FTZ); Intel CPUs take a microcode assist,
 * about a hundred cycles, for each operation that reads or makes a
 * subnormal without them. The library sets both only inside its own
 * kernels that state can decay in (the optimizer updates, gradient
 * clipping) and gives the caller's register back afterwards;
 * ag_set_flush_denormal sets them for the caller's own code too. Other
 * CPUs: no flush mode, the kernels run unchanged. */
#include "fpenv.h"
#include "internal.h"

#if defined(__SSE2__) || defined(_M_X64)
#include <xmmintrin.h>
#define AG_HAVE_FLUSH 1
#define MXCSR_FTZ 0x8000u   /* flush-to-zero: subnormal results are 0 */
#define MXCSR_DAZ 0x0040u   /* denormals-are-zero: subnormal inputs are 0 */
#define MXCSR_FLAGS 0x003fu /* the sticky exception flags */
#define MXCSR_FLUSH (MXCSR_FTZ | MXCSR_DAZ)
#else
#define AG_HAVE_FLUSH 0
#endif

ag_fp_mode ag__fp_mode(void)
{
#if AG_HAVE_FLUSH
    return _mm_getcsr() & ~MXCSR_FLAGS;
#else
    return 0;
#endif
}

void ag__fp_set_mode(ag_fp_mode mode)
{
#if AG_HAVE_FLUSH
    unsigned csr = _mm_getcsr();
    if ((csr & ~MXCSR_FLAGS) != mode) _mm_setcsr(mode | (csr & MXCSR_FLAGS));
#else
    (void)mode;
#endif
}

ag_fp_mode ag__fp_enter_flush(void)
{
    ag_fp_mode saved = ag__fp_mode();
#if AG_HAVE_FLUSH
    ag__fp_set_mode(saved | MXCSR_FLUSH);
#endif
    return saved;
}

void ag__fp_leave(ag_fp_mode saved)
{
    ag__fp_set_mode(saved);
}

int ag_set_flush_denormal(bool on)
{
#if AG_HAVE_FLUSH
    ag_fp_mode mode = ag__fp_mode();
    ag__fp_set_mode(on ? mode | MXCSR_FLUSH : mode & ~MXCSR_FLUSH);
    return (mode & MXCSR_FLUSH) == MXCSR_FLUSH;
#else
    if (!on) return 0; /* never on */
    ag__error("ag_set_flush_denormal",
              "this CPU has no flush-to-zero mode the library knows");
    return -1;
#endif
}
