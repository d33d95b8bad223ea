//! Prints deploy/install.yaml: the resources of deploy/kustomization.yaml
//! concatenated in order. `make bundle` writes its output to the file.

// Test code: a failed unwrap or expect is a failed test (or harness set-up), with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    match harness::deploy::try_bundle() {
        Ok(bundle) => match std::io::stdout().lock().write_all(bundle.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("bundle: cannot write the bundle: {error}");
                ExitCode::FAILURE
            }
        },
        Err(error) => {
            eprintln!("bundle: {error}");
            ExitCode::FAILURE
        }
    }
}
