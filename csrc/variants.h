// One build for every x86-64 it is copied to: the engine's vector kernels are compiled five times,
// for a baseline (x86-64-v2: SSE4.2), for AVX2 (x86-64-v3), for AVX-512 (x86-64-v4), for AVX-512
// with VNNI's int8 dot products (x86-64-v4 + AVX512-VNNI: only the int8 matmul differs) and for that
// with AVX512-BF16's bf16 dot products (only attention differs), in namespaces transenc::baseline,
// ::avx2, ::avx512, ::avx512_vnni and ::avx512_bf16, and each call takes the widest variant the CPU
// runs (as numpy and faiss pick theirs). Elsewhere than x86-64 the baseline alone is built.
#pragma once
#include <string>

#if defined(__x86_64__) && defined(__GNUC__)
#define TRANSENC_X86_VARIANTS 1
// gcc 12's AVX-512 intrinsics start from _mm512_undefined_*() and warn spuriously at every use
// (gcc bug 105593); silence those warnings for the intrinsics header only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

namespace transenc {

// a CPU that runs one runs those below it (every CPU with AVX512-BF16 has AVX512-VNNI)
enum class Isa : int { baseline = 0, avx2 = 1, avx512 = 2, avx512_vnni = 3, avx512_bf16 = 4 };
constexpr Isa kIsas[] = {Isa::baseline, Isa::avx2, Isa::avx512, Isa::avx512_vnni, Isa::avx512_bf16};

// The variant calls take now: the one set by set_engine_isa (or TRANSENC_ENGINE_ISA at load), else
// the widest this CPU runs.
Isa engine_isa();
bool isa_supported(Isa isa);
const char* isa_name(Isa isa);
// "auto" or an isa_name; std::invalid_argument for another name or a variant this CPU
// (or this build) cannot run. For tests and benchmarks that compare the variants.
void set_engine_isa(const std::string& name);

}  // namespace transenc

#ifdef TRANSENC_X86_VARIANTS
#define TRANSENC_VARIANT_CALL(fn)                                                           \
  (::transenc::engine_isa() == ::transenc::Isa::avx512_bf16   ? ::transenc::avx512_bf16::fn \
   : ::transenc::engine_isa() == ::transenc::Isa::avx512_vnni ? ::transenc::avx512_vnni::fn \
   : ::transenc::engine_isa() == ::transenc::Isa::avx512    ? ::transenc::avx512::fn      \
   : ::transenc::engine_isa() == ::transenc::Isa::avx2      ? ::transenc::avx2::fn        \
                                                            : ::transenc::baseline::fn)
#else
#define TRANSENC_VARIANT_CALL(fn) (::transenc::baseline::fn)
#endif
