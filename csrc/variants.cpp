#include "variants.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace transenc {

namespace {

Isa widest() {
#ifdef TRANSENC_X86_VARIANTS
  if (__builtin_cpu_supports("x86-64-v4")) {
    if (!__builtin_cpu_supports("avx512vnni")) return Isa::avx512;
    return __builtin_cpu_supports("avx512bf16") ? Isa::avx512_bf16 : Isa::avx512_vnni;
  }
  if (__builtin_cpu_supports("x86-64-v3")) return Isa::avx2;
#endif
  return Isa::baseline;
}

Isa parse(const std::string& name) {
  if (name == "auto") return widest();
  for (Isa isa : kIsas) {
    if (name != isa_name(isa)) continue;
    if (!isa_supported(isa))
      throw std::invalid_argument("engine variant '" + name + "' does not run on this CPU or was not built");
    return isa;
  }
  throw std::invalid_argument("engine variant must be auto, baseline, avx2, avx512, avx512_vnni or avx512_bf16, got '" + name + "'");
}

std::atomic<int>& current() {
  static std::atomic<int> isa{static_cast<int>([] {
    const char* forced = std::getenv("TRANSENC_ENGINE_ISA");
    return forced ? parse(forced) : widest();
  }())};
  return isa;
}

}  // namespace

Isa engine_isa() { return static_cast<Isa>(current().load(std::memory_order_relaxed)); }

bool isa_supported(Isa isa) { return static_cast<int>(isa) <= static_cast<int>(widest()); }

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512_bf16: return "avx512_bf16";
    case Isa::avx512_vnni: return "avx512_vnni";
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "baseline";
  }
}

void set_engine_isa(const std::string& name) { current().store(static_cast<int>(parse(name))); }

}  // namespace transenc
