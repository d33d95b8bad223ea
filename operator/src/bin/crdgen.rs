//! Prints the KubegresRestore CustomResourceDefinition as YAML.
//!
//! `make crds` runs it to write `deploy/crds/kubegres-restore.yaml`; the
//! test below fails when that file no longer matches the types in
//! `proto::crd`.

use std::io::Write;
use std::process::ExitCode;

/// The first lines of the generated file.
const HEADER: &str = "\
# Generated from proto/src/crd by `make crds`
# (cargo run -q -p kubegres-restore-operator --bin crdgen). Do not edit.
";

/// The CRD as the YAML document that `make crds` writes.
fn render() -> Result<String, serde_saphyr::SerializeError> {
    let yaml = serde_saphyr::to_string(&proto::crd::crd())?;
    Ok(format!("{HEADER}---\n{yaml}"))
}

fn main() -> ExitCode {
    let yaml = match render() {
        Ok(yaml) => yaml,
        Err(error) => {
            eprintln!("crdgen: cannot serialise the CRD as YAML: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(yaml.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("crdgen: cannot write the CRD: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::render;

    #[test]
    fn deploy_crd_matches_the_types() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds/kubegres-restore.yaml");
        let on_disk = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}; run `make crds`", path.display()));
        let generated = render().expect("the CRD serialises as YAML");
        assert!(
            on_disk == generated,
            "deploy/crds/kubegres-restore.yaml differs from the CRD generated from proto/src/crd: run `make crds`"
        );
    }

    #[test]
    fn the_yaml_reads_back_as_the_same_crd() {
        let yaml = render().expect("the CRD serialises as YAML");
        let read: serde_json::Value = serde_saphyr::from_str(&yaml).expect("the YAML parses");
        assert_eq!(read, serde_json::to_value(proto::crd::crd()).unwrap());
    }
}
