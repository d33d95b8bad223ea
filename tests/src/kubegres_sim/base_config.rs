//! The `base-kubegres-config` ConfigMap that Kubegres creates in each
//! namespace where a Kubegres lives (Kubegres v1.19's
//! `BaseConfigMapTemplate.yaml`), with the same keys and scripts that do the
//! same things, since users' clusters and backups depend on exactly them:
//! the replication role and its grant on `pg_promote`, `pg_basebackup -R`
//! for a new replica, and the backup's `pg_dumpall -c | gzip` under
//! `set -e` but without `pipefail` (a failed dump still leaves a `.gz` file
//! and the Job succeeds). Kubegres's long explanatory comments are left out.

use serde_json::{Value, json};

/// The ConfigMap's name.
pub const BASE_CONFIG_MAP: &str = "base-kubegres-config";

/// The keys a `spec.customConfig` ConfigMap may override.
pub const OVERRIDABLE: [&str; 4] = [POSTGRES_CONF, PRIMARY_INIT_SCRIPT, BACKUP_SCRIPT, PG_HBA_CONF];

pub const POSTGRES_CONF: &str = "postgres.conf";
pub const PRIMARY_INIT_SCRIPT: &str = "primary_init_script.sh";
pub const BACKUP_SCRIPT: &str = "backup_database.sh";
pub const PG_HBA_CONF: &str = "pg_hba.conf";
pub const CREATE_REPLICATION_ROLE: &str = "primary_create_replication_role.sh";
pub const COPY_PRIMARY_DATA: &str = "copy_primary_data_to_replica.sh";
pub const PROMOTE_REPLICA: &str = "promote_replica_to_primary.sh";

const POSTGRES_CONF_TEXT: &str = "
# Replication configs
listen_addresses = '*'
max_wal_senders = 10
max_connections = 100
shared_buffers = 128MB
";

const PRIMARY_INIT_SCRIPT_TEXT: &str = "#!/bin/bash
set -e

# Run once, the first time a primary container starts (in /docker-entrypoint-initdb.d).
# Kubegres ships it empty: add SQL for your own databases and users here.
";

const BACKUP_SCRIPT_TEXT: &str = r#"#!/bin/bash
set -e

dt=$(date '+%d/%m/%Y %H:%M:%S');
fileDt=$(date '+%d_%m_%Y_%H_%M_%S');
backUpFileName="$KUBEGRES_RESOURCE_NAME-backup-$fileDt.gz"
backUpFilePath="$BACKUP_DESTINATION_FOLDER/$backUpFileName"

echo "$dt - Starting DB backup of Kubegres resource $KUBEGRES_RESOURCE_NAME into file: $backUpFilePath";
echo "$dt - Running: pg_dumpall -h $BACKUP_SOURCE_DB_HOST_NAME -U postgres -c | gzip > $backUpFilePath"

pg_dumpall -h $BACKUP_SOURCE_DB_HOST_NAME -U postgres -c | gzip > $backUpFilePath

if [ $? -ne 0 ]; then
  rm $backUpFilePath
  echo "Unable to execute a BackUp. Please check DB connection settings"
  exit 1
fi

echo "$dt - DB backup completed for Kubegres resource $KUBEGRES_RESOURCE_NAME into file: $backUpFilePath";
"#;

const PG_HBA_CONF_TEXT: &str = "# TYPE  DATABASE        USER            ADDRESS                 METHOD
host    replication     replication     all                     md5
local   all             all                                     md5
host    all             all             all                     md5
host    all             all             0.0.0.0/0               reject
";

const CREATE_REPLICATION_ROLE_TEXT: &str = r#"#!/bin/bash
set -e

dt=$(date '+%d/%m/%Y %H:%M:%S');
echo "$dt - Creating replication role...";

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<-EOSQL
CREATE ROLE replication WITH REPLICATION PASSWORD '$POSTGRES_REPLICATION_PASSWORD' LOGIN;
GRANT EXECUTE ON FUNCTION pg_promote TO replication;
EOSQL

echo "$dt - Replication role created";
"#;

const COPY_PRIMARY_DATA_TEXT: &str = r#"#!/bin/bash
set -e

dt=$(date '+%d/%m/%Y %H:%M:%S');
echo "$dt - Attempting to copy Primary DB to Replica DB...";

if [ -z "$(ls -A $PGDATA)" ]; then
    echo "$dt - Copying Primary DB to Replica DB folder: $PGDATA";
    echo "$dt - Running: pg_basebackup -R -h $PRIMARY_HOST_NAME -D $PGDATA -P -U replication;";

    pg_basebackup -R -h $PRIMARY_HOST_NAME -D $PGDATA -P -U replication;

    if [ $UID == 0 ]
    then
    chown -R postgres:postgres $PGDATA;
    fi

    echo "$dt - Copy completed";
else
    echo "$dt - Skipping copy from Primary DB because Replica DB already exists";
fi
"#;

const PROMOTE_REPLICA_TEXT: &str = r#"#!/bin/bash
set -e

dt=$(date '+%d/%m/%Y %H:%M:%S');
echo "$dt - Attempting to promote a Replica PostgreSql to Primary..." > /usr/share/promotion.log
standbyFilePath="$PGDATA/standby.signal"
if [ ! -f "$standbyFilePath" ]; then
  echo "$dt - Skipping as this PostgreSql is already a Primary since the file '$standbyFilePath' does not exist." >> /usr/share/promotion.log
else
  counter=1
  until pg_isready -U postgres || [ $counter -gt 10 ]
  do
    ((counter++))
    sleep 5
  done
  if pg_isready -U postgres; then
    su -c '/usr/lib/postgresql/$PG_MAJOR/bin/pg_ctl promote -D $PGDATA' postgres >> /usr/share/promotion.log
  fi
fi
"#;

/// The ConfigMap as Kubegres creates it in `namespace` (no owner: it
/// outlives every Kubegres of the namespace).
pub fn config_map(namespace: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": BASE_CONFIG_MAP, "namespace": namespace},
        "data": {
            POSTGRES_CONF: POSTGRES_CONF_TEXT,
            PRIMARY_INIT_SCRIPT: PRIMARY_INIT_SCRIPT_TEXT,
            BACKUP_SCRIPT: BACKUP_SCRIPT_TEXT,
            PG_HBA_CONF: PG_HBA_CONF_TEXT,
            CREATE_REPLICATION_ROLE: CREATE_REPLICATION_ROLE_TEXT,
            COPY_PRIMARY_DATA: COPY_PRIMARY_DATA_TEXT,
            PROMOTE_REPLICA: PROMOTE_REPLICA_TEXT,
        },
    })
}
