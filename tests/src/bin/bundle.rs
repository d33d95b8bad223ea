//! Prints deploy/install.yaml: the resources of deploy/kustomization.yaml
//! concatenated in order; with `--namespaced`, deploy/install-namespaced.yaml
//! (the namespace-scoped install). `make bundle` writes both files.

// Test code: a failed unwrap or expect is a failed test (or harness set-up), with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let namespaced = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--namespaced") => true,
        Some(other) => {
            eprintln!("bundle: unknown argument {other:?} (the only one is --namespaced)");
            return ExitCode::from(2);
        }
    };
    let bundle = if namespaced { harness::deploy::try_namespaced_bundle() } else { harness::deploy::try_bundle() };
    match bundle {
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
