//! The control plane that a test binary's tests share, with deploy/
//! installed, and admin clients of it.

use std::sync::OnceLock;

use crate::controlplane::{ADMIN_GROUP, ADMIN_USER, ControlPlane};

use super::{install_kubegres_crd, install_operator_rbac};

static CONTROL_PLANE: OnceLock<ControlPlane> = OnceLock::new();

/// The control plane of this test binary, with deploy/'s namespace, CRD and
/// RBAC and the stand-in Kubegres CRD installed, started on first use.
/// Started on a thread of its own so that any test's runtime can share it:
/// the processes outlive that thread, and each test makes its own clients
/// (with [`admin`]).
pub fn control_plane() -> &'static ControlPlane {
    CONTROL_PLANE.get_or_init(|| {
        std::thread::spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|error| panic!("no runtime to start the control plane: {error}"));
            runtime.block_on(async {
                let control_plane = ControlPlane::start().await;
                let admin = control_plane.client();
                install_operator_rbac(&admin).await;
                install_kubegres_crd(&admin).await;
                control_plane
            })
        })
        .join()
        .unwrap_or_else(|_| panic!("the control plane with deploy/ installed did not start (see above)"))
    })
}

/// A fresh admin client of [`control_plane`] for the calling test's runtime.
pub async fn admin() -> kube::Client {
    control_plane()
        .client_for_user(ADMIN_USER, &[ADMIN_GROUP])
        .await
        .unwrap_or_else(|error| panic!("no admin client of the shared control plane: {error}"))
}
