// The entry points of the fuzz harnesses. SwiftPM links an executable target with `main` aliased to
// `<Target>_main`, which the Swift compiler does not emit for a module built with -parse-as-library (a libFuzzer
// harness has no main of its own). These hand the command line to libFuzzer's driver, which calls the module's
// LLVMFuzzerTestOneInput for each input. Each harness uses one of them; the others are never called.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int FuzzIDX_main(int argc, char **argv) { return LLVMFuzzerRunDriver(&argc, &argv, LLVMFuzzerTestOneInput); }
int FuzzCheckpoint_main(int argc, char **argv) { return LLVMFuzzerRunDriver(&argc, &argv, LLVMFuzzerTestOneInput); }
int FuzzNumPy_main(int argc, char **argv) { return LLVMFuzzerRunDriver(&argc, &argv, LLVMFuzzerTestOneInput); }
int FuzzCSV_main(int argc, char **argv) { return LLVMFuzzerRunDriver(&argc, &argv, LLVMFuzzerTestOneInput); }
