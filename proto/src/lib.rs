//! The Syros wire contract, generated from `proto/syros/v1/*.proto` (and the standard gRPC health
//! service) by volo-build. Message types are pilota's (`FastStr`, `Bytes`).
#![allow(clippy::all, missing_docs)]

mod gen {
    include!(concat!(env!("OUT_DIR"), "/volo_gen.rs"));
}

pub use gen::volo_gen::*;
