// Declarations only: libFuzzer itself comes from the toolchain's compiler-rt.
#include "CLibFuzzer.h"
