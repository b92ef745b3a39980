// libFuzzer's entry for a program that keeps its own main (compiler-rt's FuzzerInterface.h).
// Linked only into the libFuzzer build of coffre-fuzz (-sanitize=fuzzer); see Scripts/fuzz.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
