//! Certificates and keys for the local control plane, generated with rcgen:
//! a CA, the apiserver's serving certificate, client certificates (the admin
//! is `O=system:masters`) and the service-account signing key.

use std::net::{IpAddr, Ipv4Addr};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// The name the admin client certificate carries.
pub const ADMIN_USER: &str = "kubegres-restore-admin";

/// The group that RBAC lets do anything.
pub const ADMIN_GROUP: &str = "system:masters";

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct CertifiedKey {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key (PKCS#8), PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a private key.
        f.debug_struct("CertifiedKey").finish_non_exhaustive()
    }
}

/// The control plane's certificate authority; it signs the serving
/// certificate and every client certificate, and the apiserver trusts it for
/// client authentication (`--client-ca-file`).
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

impl Ca {
    /// Generates a fresh CA.
    pub fn generate() -> Result<Self, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "kubegres-restore-test-ca");
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key)?;
        Ok(Self { issuer: Issuer::new(params, key), cert_pem: cert.pem() })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A serving certificate for the apiserver on loopback (and the names
    /// in-cluster clients would use for the `kubernetes` Service).
    pub fn serving(&self, service_ip: IpAddr) -> Result<CertifiedKey, rcgen::Error> {
        let mut params = CertificateParams::new(vec![
            "localhost".to_string(),
            "kubernetes".to_string(),
            "kubernetes.default".to_string(),
            "kubernetes.default.svc".to_string(),
            "kubernetes.default.svc.cluster.local".to_string(),
        ])?;
        for ip in [IpAddr::V4(Ipv4Addr::LOCALHOST), service_ip] {
            params.subject_alt_names.push(rcgen::SanType::IpAddress(ip));
        }
        params.distinguished_name.push(DnType::CommonName, "kube-apiserver");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(&params)
    }

    /// A client certificate for `user` in `groups` (CN is the user name, each
    /// group an O), which the apiserver maps to that identity.
    pub fn client(&self, user: &str, groups: &[&str]) -> Result<CertifiedKey, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, user);
        for group in groups {
            params.distinguished_name.push(DnType::OrganizationName, *group);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(&params)
    }

    fn sign(&self, params: &CertificateParams) -> Result<CertifiedKey, rcgen::Error> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertifiedKey { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

/// A fresh key pair for signing service-account tokens (ES256): the private
/// key (PKCS#8 PEM) for `--service-account-signing-key-file` and the public
/// key (SPKI PEM) for `--service-account-key-file`, which does not accept a
/// PKCS#8 private key.
pub fn service_account_key() -> Result<ServiceAccountKey, rcgen::Error> {
    let key = KeyPair::generate()?;
    Ok(ServiceAccountKey { public_pem: key.public_key_pem(), private_pem: key.serialize_pem() })
}

/// The service-account token signing key pair, both PEM.
pub struct ServiceAccountKey {
    /// The public key (SPKI).
    pub public_pem: String,
    /// The private key (PKCS#8).
    pub private_pem: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_are_pem_and_signed() {
        let ca = Ca::generate().unwrap();
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let serving = ca.serving(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))).unwrap();
        assert!(serving.cert_pem.contains("BEGIN CERTIFICATE"));
        assert!(serving.key_pem.contains("BEGIN PRIVATE KEY"));
        let admin = ca.client(ADMIN_USER, &[ADMIN_GROUP]).unwrap();
        assert!(admin.cert_pem.contains("BEGIN CERTIFICATE"));
        assert_eq!(format!("{admin:?}"), "CertifiedKey { .. }");
        let sa = service_account_key().unwrap();
        assert!(sa.private_pem.contains("BEGIN PRIVATE KEY"));
        assert!(sa.public_pem.contains("BEGIN PUBLIC KEY"));
    }
}
