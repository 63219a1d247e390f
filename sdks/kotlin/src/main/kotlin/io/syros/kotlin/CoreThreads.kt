package io.syros.kotlin

import com.sun.jna.CallbackThreadInitializer
import com.sun.jna.Native
import io.syros.kotlin.ffi.uniffiRustFutureContinuationCallbackImpl

/**
 * How the client core's runtime threads enter the JVM. Every `suspend` call ends with the core
 * waking its coroutine through UniFFI's continuation callback, called by JNA on a Rust runtime
 * thread. JNA's default attaches such a thread to the JVM for the one callback and detaches it
 * after (a `java.lang.Thread` created and torn down per call: ~12 % of the JVM's CPU in a lock
 * cycle profile). Kept attached instead, as daemon threads named `syros-core`; JNA detaches each
 * when the Rust thread ends.
 */
internal object CoreThreads {
    init {
        // Must precede the callback's first use: JNA reads the initializer when it first makes
        // the callback's native trampoline.
        Native.setCallbackThreadInitializer(
            uniffiRustFutureContinuationCallbackImpl,
            CallbackThreadInitializer(true, false, "syros-core"),
        )
    }

    /** Apply the setting (once; later calls do nothing). */
    fun keepAttached() = Unit
}
