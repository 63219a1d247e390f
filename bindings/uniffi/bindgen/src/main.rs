//! `uniffi-bindgen` for the Syros Kotlin and Swift SDKs: UniFFI's own command line, pinned to
//! the UniFFI version the bridge (`bindings/uniffi`) is built with. sdks/kotlin's Maven build
//! and scripts/kotlin-sdk.sh run
//! `uniffi-bindgen generate --no-format --library <libsyros_uniffi.so> --language kotlin|swift`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
