#!/usr/bin/env python3
"""Patch the UniFFI-generated Kotlin bindings (run by native.sh right after uniffi-bindgen).

One change, for speed: every bridge call used to allocate a fresh `UniffiRustCallStatus`, a JNA
Structure whose native memory is malloc'd, registered in JNA's global memory map and with its
Cleaner, and freed by the Cleaner after a GC (two such allocations per call: the status and its
nested error buffer). In the lock cycle profile that was ~24 % of the JVM's CPU, plus most of the
GC's. Each thread now reuses one status (the Rust side only writes it; it is reset before each
call). A call made while the thread's status is in use (a re-entrant call from a callback) gets
a fresh one, as before.

Exact-text replacement of UniFFI's pinned template (bindings/uniffi's uniffi version): fails
loudly when the text is not found exactly once, so a UniFFI upgrade cannot drop it silently.

    patch-bindings.py <generated syros.kt>
"""
import sys

ORIGINAL = """private inline fun <U, E: kotlin.Exception> uniffiRustCallWithError(errorHandler: UniffiRustCallStatusErrorHandler<E>, callback: (UniffiRustCallStatus) -> U): U {
    var status = UniffiRustCallStatus()
    val return_value = callback(status)
    uniffiCheckCallStatus(errorHandler, status)
    return return_value
}
"""

PATCHED = """private inline fun <U, E: kotlin.Exception> uniffiRustCallWithError(errorHandler: UniffiRustCallStatusErrorHandler<E>, callback: (UniffiRustCallStatus) -> U): U {
    // Patched by sdks/kotlin/scripts/patch-bindings.py: this thread's status, unless in use.
    val slot = uniffiCallStatusSlot.get()
    val reused = !slot.inUse
    val status = if (reused) slot.status else UniffiRustCallStatus()
    if (reused) {
        slot.inUse = true
        status.code = UNIFFI_CALL_SUCCESS
    }
    try {
        val return_value = callback(status)
        uniffiCheckCallStatus(errorHandler, status)
        return return_value
    } finally {
        if (reused) slot.inUse = false
    }
}

/** One reusable call status per thread (patch-bindings.py). */
internal class UniffiCallStatusSlot {
    val status = UniffiRustCallStatus()
    var inUse = false
}

internal val uniffiCallStatusSlot: ThreadLocal<UniffiCallStatusSlot> = ThreadLocal.withInitial { UniffiCallStatusSlot() }
"""


def main() -> None:
    path = sys.argv[1]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    count = text.count(ORIGINAL)
    if count != 1:
        sys.exit(f"patch-bindings.py: uniffiRustCallWithError found {count} times in {path}, expected 1 "
                 "(UniFFI's Kotlin template changed: update the patch)")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(ORIGINAL, PATCHED))


if __name__ == "__main__":
    main()
