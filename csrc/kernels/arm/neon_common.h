/* neon_common.h — helpers shared by the arm64 kernel files (static inline). */
#ifndef LFM_NEON_COMMON_H
#define LFM_NEON_COMMON_H
#include <arm_neon.h>
#endif
