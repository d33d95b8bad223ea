//! The harness proves itself: the real PostgreSQL tools and the comparison
//! (`pg`), and the local control plane as a real Kubernetes API
//! (`controlplane`).

mod controlplane;
mod pg;
