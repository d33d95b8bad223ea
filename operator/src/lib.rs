//! The kubegres-restore operator.
//!
//! The controller that acts on `KubegresRestore` resources lands next (issue
//! 3, "The controller"). For now this crate only ships `crdgen`, which prints
//! the CustomResourceDefinition generated from the types in `proto::crd`:
//! `make crds` writes it to `deploy/crds/kubegres-restore.yaml`.
pub mod decide;
