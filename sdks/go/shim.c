// The tiny C shim between the C ABI's callback type and the Go function exported to it: the
// exported function's generated prototype lacks the `const` of SyrosCallback, so the cast lives
// here, in C. user_data is a cgo.Handle passed as uintptr_t (never as a pointer).
#include "_cgo_export.h"

SyrosCallback syros_go_callback(void) { return (SyrosCallback)syrosGoComplete; }
