//! Dumps made by the installed pg_dump/pg_dumpall, in every format and
//! compression, written into a temporary directory. Compression uses the real
//! `gzip`, `zstd` and `lz4` command-line tools, as a user's pipeline would.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

use crate::pg::{PgCluster, run_ok};

/// A format and compression of a single-database dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DumpKind {
    /// `pg_dump` plain SQL.
    Plain,
    /// Plain SQL through `gzip`.
    PlainGzip,
    /// Plain SQL through `zstd`.
    PlainZstd,
    /// Plain SQL through `lz4`.
    PlainLz4,
    /// `pg_dump -Fc`.
    Custom,
    /// `pg_dump -Fc` through `zstd`.
    CustomZstd,
    /// `pg_dump -Fd` (a directory).
    Directory,
    /// `pg_dump -Ft`.
    Tar,
}

/// An external compressor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compressor {
    /// `gzip -c`.
    Gzip,
    /// `zstd -c` (content checksum on, as by default).
    Zstd,
    /// `lz4 -c` (frame format, content checksum on, as by default).
    Lz4,
}

impl Compressor {
    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Compressor::Gzip => "gz",
            Compressor::Zstd => "zst",
            Compressor::Lz4 => "lz4",
        }
    }

    fn command(self) -> Command {
        let mut c = match self {
            Compressor::Gzip => Command::new("gzip"),
            Compressor::Zstd => Command::new("zstd"),
            Compressor::Lz4 => Command::new("lz4"),
        };
        c.args(["-q", "-c"]);
        c
    }
}

impl DumpKind {
    /// Every kind.
    pub const ALL: [DumpKind; 8] = [
        DumpKind::Plain,
        DumpKind::PlainGzip,
        DumpKind::PlainZstd,
        DumpKind::PlainLz4,
        DumpKind::Custom,
        DumpKind::CustomZstd,
        DumpKind::Directory,
        DumpKind::Tar,
    ];

    /// The file (or directory) name suffix for this kind.
    pub fn suffix(self) -> &'static str {
        match self {
            DumpKind::Plain => "sql",
            DumpKind::PlainGzip => "sql.gz",
            DumpKind::PlainZstd => "sql.zst",
            DumpKind::PlainLz4 => "sql.lz4",
            DumpKind::Custom => "dump",
            DumpKind::CustomZstd => "dump.zst",
            DumpKind::Directory => "dir",
            DumpKind::Tar => "tar",
        }
    }

    fn compressor(self) -> Option<Compressor> {
        match self {
            DumpKind::PlainGzip => Some(Compressor::Gzip),
            DumpKind::PlainZstd | DumpKind::CustomZstd => Some(Compressor::Zstd),
            DumpKind::PlainLz4 => Some(Compressor::Lz4),
            _ => None,
        }
    }
}

/// Compresses `input` into `output` with the real command-line tool.
pub fn compress_file(tool: Compressor, input: &Path, output: &Path) {
    let out = fs::File::create(output).unwrap_or_else(|e| panic!("cannot create {}: {e}", output.display()));
    let status = tool
        .command()
        .arg(input)
        .stdout(out)
        .stderr(Stdio::inherit())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {tool:?} (is it installed?): {e}"));
    assert!(status.success(), "{tool:?} of {} failed: {status}", input.display());
}

/// Compresses bytes with the real command-line tool.
pub fn compress_bytes(tool: Compressor, data: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("cannot create a temp dir");
    let input = dir.path().join("in");
    let output = dir.path().join("out");
    fs::write(&input, data).expect("cannot write a temp file");
    compress_file(tool, &input, &output);
    fs::read(&output).expect("cannot read the compressed temp file")
}

/// The SHA-256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> String {
    let data = fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    hex::encode(Sha256::digest(&data))
}

/// Kubegres's backup file name, `<name>-backup-DD_MM_YYYY_HH_MM_SS.gz`, for a
/// time (UTC, as in Kubegres's backup container).
pub fn kubegres_file_name(name: &str, at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{name}-backup-{d:02}_{m:02}_{y:04}_{:02}_{:02}_{:02}.gz", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A temporary directory of dumps.
pub struct Dumps {
    dir: tempfile::TempDir,
}

impl Default for Dumps {
    fn default() -> Self {
        Self::new()
    }
}

impl Dumps {
    /// A new, empty directory.
    pub fn new() -> Dumps {
        Dumps { dir: tempfile::Builder::new().prefix("kgr-dumps-").tempdir().expect("cannot create a temp dir") }
    }

    /// A new, empty directory inside `parent` (for example
    /// [`PgCluster::scratch_dir`], so that dumps kept in a `static` go away
    /// with the cluster when the test process exits).
    pub fn new_in(parent: &Path) -> Dumps {
        Dumps {
            dir: tempfile::Builder::new().prefix("kgr-dumps-").tempdir_in(parent).expect("cannot create a temp dir"),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `bytes` into a file of this directory and returns its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        fs::write(&p, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
        p
    }

    /// Dumps `db` of `c` as `kind` into `<label>.<suffix>` and returns its
    /// path (a directory for [`DumpKind::Directory`]).
    pub fn dump(&self, c: &PgCluster, db: &str, kind: DumpKind, label: &str) -> PathBuf {
        let target = self.dir.path().join(format!("{label}.{}", kind.suffix()));
        match kind {
            DumpKind::Plain => {
                c.pg_dump_to(db, &["-Fp"], &target);
            }
            DumpKind::Custom => {
                c.pg_dump_to(db, &["-Fc"], &target);
            }
            DumpKind::Tar => {
                c.pg_dump_to(db, &["-Ft"], &target);
            }
            DumpKind::Directory => {
                c.pg_dump_to(db, &["-Fd", "-j", "2"], &target);
            }
            DumpKind::PlainGzip | DumpKind::PlainZstd | DumpKind::PlainLz4 | DumpKind::CustomZstd => {
                let fmt = if kind == DumpKind::CustomZstd { "-Fc" } else { "-Fp" };
                let raw = self.dir.path().join(format!("{label}.{}.raw", kind.suffix()));
                c.pg_dump_to(db, &[fmt], &raw);
                compress_file(kind.compressor().expect("compressed kind"), &raw, &target);
                let _ = fs::remove_file(&raw);
            }
        }
        target
    }

    /// The exact Kubegres backup: `pg_dumpall -c | gzip` into
    /// `<name>-backup-DD_MM_YYYY_HH_MM_SS.gz`.
    pub fn kubegres_backup(&self, c: &PgCluster, name: &str) -> PathBuf {
        let target = self.dir.path().join(kubegres_file_name(name, SystemTime::now()));
        let out = fs::File::create(&target).expect("cannot create the backup file");
        let mut dumpall =
            c.command("pg_dumpall").arg("-c").stdout(Stdio::piped()).spawn().expect("cannot run pg_dumpall");
        let stdout = dumpall.stdout.take().expect("piped stdout");
        let gzip = Command::new("gzip").stdin(stdout).stdout(out).status().expect("cannot run gzip");
        let status = dumpall.wait().expect("pg_dumpall did not finish");
        assert!(status.success() && gzip.success(), "pg_dumpall -c | gzip failed: {status}, {gzip}");
        target
    }

    /// `pg_dumpall` with `args` into a plain file named `name`.
    pub fn dumpall(&self, c: &PgCluster, args: &[&str], name: &str) -> PathBuf {
        let target = self.dir.path().join(name);
        run_ok(c.command("pg_dumpall").args(args).arg("-f").arg(&target), "pg_dumpall");
        target
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn kubegres_names_use_day_month_year() {
        // 2025-11-24 15:41:07 UTC
        let t = UNIX_EPOCH + Duration::from_secs(1_763_998_867);
        assert_eq!(kubegres_file_name("mypostgres", t), "mypostgres-backup-24_11_2025_15_41_07.gz");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
