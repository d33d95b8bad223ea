//! Unit tests of the KubegresRestore types: serde round-trips of inline YAML
//! fixtures, defaults, the resolved source and target, status, phases and
//! the generated CRD's shape.

mod phase;
mod round_trip;
mod schema;
mod target;

use super::KubegresRestore;

/// Parses a KubegresRestore written as YAML.
fn restore(yaml: &str) -> KubegresRestore {
    serde_saphyr::from_str(yaml).unwrap_or_else(|error| panic!("fixture does not parse: {error}\n{yaml}"))
}

/// A restore written for the original Kubegres fork: a Kubegres backup on a
/// PVC into a new cluster copied from an existing one.
const FORK_RESTORE: &str = r#"
apiVersion: kubegres.reactive-tech.io/v1
kind: KubegresRestore
metadata:
  name: restore-mypostgres
  namespace: default
spec:
  clusterName: mypostgres-restored
  databaseName: postgres
  customConfig: mypostgres-restore-config
  dataSource:
    file:
      pvcName: mypostgres-backup-pvc
      mountPath: /var/lib/backup
      snapshot: mypostgres-backup-24_02_2023_13_00_01.gz
    cluster:
      clusterName: mypostgres
  resources:
    requests:
      memory: 200Mi
      cpu: 1
    limits:
      memory: 1Gi
  env:
    - name: PGCONNECT_TIMEOUT
      value: "10"
"#;

/// The fork's other form: the new cluster's Kubegres spec given inline.
const FORK_INLINE_SPEC: &str = r#"
apiVersion: kubegres.reactive-tech.io/v1
kind: KubegresRestore
metadata:
  name: restore-inline
spec:
  clusterName: restored
  dataSource:
    file:
      pvcName: backups
      mountPath: /backups
      snapshot: latest
    cluster:
      clusterSpec:
        replicas: 3
        image: postgres:17
        port: 5432
        database:
          size: 8Gi
          storageClassName: standard
          volumeMount: /var/lib/postgresql/data
        customConfig: base-kubegres-config
        env:
          - name: POSTGRES_PASSWORD
            valueFrom:
              secretKeyRef: {name: mypostgres-secret, key: superUserPassword}
        someFutureKubegresField: {nested: [1, 2, 3]}
"#;

/// S3 into a new database of an existing cluster.
const S3_INTO_DATABASE: &str = r#"
apiVersion: kubegres.reactive-tech.io/v1
kind: KubegresRestore
metadata:
  name: orders-from-s3
spec:
  dataSource:
    s3:
      bucket: backups
      prefix: prod/orders/
      endpoint: https://minio.example:9000
      region: eu-west-1
      pathStyle: true
      credentialsSecret:
        name: s3-credentials
  target:
    database:
      clusterName: main
      database: orders
  format: custom
  engine: pg-tools
  jobs: 4
  sha256: 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08
  backoffLimit: 5
  activeDeadlineSeconds: 3600
  agent:
    image: ghcr.io/kubegres-restore/restore-agent:0.1.0
    imagePullPolicy: IfNotPresent
    nodeSelector:
      kubernetes.io/arch: amd64
    tolerations:
      - key: dedicated
        operator: Equal
        value: restore
        effect: NoSchedule
"#;

/// HTTP into an existing PostgreSQL, allowed to hold data.
const HTTP_INTO_POSTGRES: &str = r#"
apiVersion: kubegres.reactive-tech.io/v1
kind: KubegresRestore
metadata:
  name: app-from-http
spec:
  dataSource:
    http:
      url: https://user:hunter2@dumps.example/app/latest.sql.zst?token=abc#frag
      headersSecret:
        name: dump-token
  target:
    postgres:
      host: db.example
      database: app
      credentialsSecret:
        name: app-db
      allowNonEmpty: true
  compression: zstd
  onError: continue
"#;
