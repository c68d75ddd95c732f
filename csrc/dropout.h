// Dropout for CPU training steps: torch's CPU dropout draws each mask element from its generator one
// at a time (bernoulli_, ~5-8 ns an element), 13% of a MiniLM cross-encoder's bf16 step on the AMX Xeon.
// Here the mask comes from a counter-based hash of (seed, element), many elements at once, and its
// output in a second pass; the backward reuses that pass. Kept free of Python: bindings.cpp adapts
// numpy buffers. Both run on the calling thread.
#pragma once
#include <cstdint>

#include "elements.h"

namespace transenc {

// keep[i] = 1 where element i's 16-bit draw is >= threshold (dropped with probability threshold / 65536),
// else 0. The draws: splitmix64 of seed + (i / 4 + 1) * 0x9E3779B97F4A7C15, a 64-bit word cut into
// four 16-bit draws (elements 4k to 4k + 3); so the mask of element i depends on the seed and i alone.
void dropout_mask(uint64_t seed, int64_t count, uint16_t threshold, uint8_t* keep);

// out[i] = x[i] * (keep[i] ? scale : 0): dropout's output from its mask, and its gradient from the
// output's. fp32, or bf16 bits widened, multiplied in fp32 and rounded as float_to_bf16 rounds. A NaN
// stays NaN where it is dropped, as in torch's x * mask.
void masked_scale(const void* x, Dtype t, int64_t count, const uint8_t* keep, float scale, void* out);

}  // namespace transenc
