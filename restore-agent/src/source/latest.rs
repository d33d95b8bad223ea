//! `--pick latest`: which dump in a folder or under an S3 prefix is the newest.
//!
//! Kubegres names its backups `<name>-backup-DD_MM_YYYY_HH_MM_SS.gz`, which
//! does not sort lexically (day first), so the timestamp is parsed. The rule,
//! kept simple so that a person can predict it:
//!
//! 1. Hidden entries (names starting with `.`) are ignored; so are
//!    subdirectories that are not directory-format dumps (the listing code
//!    leaves those out before calling [`pick_latest`]).
//! 2. If any name carries a Kubegres timestamp, the newest by that timestamp
//!    wins, and entries without one are ignored (a stray `notes.txt` touched
//!    yesterday never beats last night's backup).
//! 3. Otherwise the newest by modification time (file mtime, S3
//!    LastModified) wins.
//! 4. Ties go to the later modification time, then to the greater name.
//!
//! Which cluster a Kubegres backup belongs to is in its name (`<cluster>-backup-...`).
//! With `--backups-of CLUSTER` only that cluster's backups count (a backup
//! PVC shared by several clusters, or holding the backups of a cluster
//! restored from it, never hands over another cluster's dump). Without it a
//! folder holding the backups of several clusters is refused: which one is
//! "latest" would be a guess.

use std::time::SystemTime;

use super::SourceError;

/// One entry of a listing: its name (last path segment, no trailing `/`)
/// and its modification time when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    pub modified: Option<SystemTime>,
}

/// Why no candidate was picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotPicked {
    /// Nothing left after dropping hidden names.
    Empty,
    /// `--backups-of` named a cluster with no backup here; `clusters` are the ones found.
    NoBackupsOf { cluster: String, clusters: Vec<String> },
    /// Backups of several clusters and none named.
    SeveralClusters(Vec<String>),
}

impl NotPicked {
    /// The source error for a listing of `what`; `empty` says what was ignored.
    pub fn into_error(self, what: String, empty: &str) -> SourceError {
        match self {
            NotPicked::Empty => SourceError::NoDump { what, detail: empty.to_string() },
            NotPicked::NoBackupsOf { cluster, clusters } => SourceError::NoDump {
                what,
                detail: if clusters.is_empty() {
                    format!("no Kubegres backup of cluster {cluster:?} (named {cluster}-backup-DD_MM_YYYY_HH_MM_SS...)")
                } else {
                    format!(
                        "no Kubegres backup of cluster {cluster:?} (named {cluster}-backup-DD_MM_YYYY_HH_MM_SS...); \
                         it holds backups of: {}",
                        clusters.join(", ")
                    )
                },
            },
            NotPicked::SeveralClusters(clusters) => SourceError::SeveralClusters { what, clusters },
        }
    }
}

/// A timestamp parsed from a Kubegres backup name, ordered as time goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KubegresTimestamp {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

const MARK: &str = "-backup-";
/// `DD_MM_YYYY_HH_MM_SS`
const STAMP_LEN: usize = 19;

/// The timestamp of a Kubegres backup name: `<name>-backup-DD_MM_YYYY_HH_MM_SS`
/// followed by the end of the name or an extension (`.gz`, `.sql.gz`, ...).
pub fn kubegres_timestamp(name: &str) -> Option<KubegresTimestamp> {
    kubegres_backup(name).map(|(_, t)| t)
}

/// The cluster and timestamp of a Kubegres backup name.
pub fn kubegres_backup(name: &str) -> Option<(&str, KubegresTimestamp)> {
    // The last "-backup-" followed by a valid stamp (a cluster name may contain "-backup-" too).
    name.rmatch_indices(MARK).find_map(|(i, _)| {
        let rest = &name[i + MARK.len()..];
        let stamp = rest.get(..STAMP_LEN)?;
        let after = &rest[STAMP_LEN..];
        if !(after.is_empty() || after.starts_with('.')) || i == 0 {
            return None;
        }
        parse_stamp(stamp).map(|t| (&name[..i], t))
    })
}

fn parse_stamp(s: &str) -> Option<KubegresTimestamp> {
    let b = s.as_bytes();
    if !b.iter().all(|c| c.is_ascii_digit() || *c == b'_') {
        return None;
    }
    // Separators at 2, 5, 10, 13, 16.
    if [2, 5, 10, 13, 16].iter().any(|&i| b[i] != b'_') {
        return None;
    }
    let num = |from: usize, len: usize| -> Option<u16> {
        let part = &s[from..from + len];
        if part.bytes().all(|c| c.is_ascii_digit()) { part.parse().ok() } else { None }
    };
    let t = KubegresTimestamp {
        day: num(0, 2)? as u8,
        month: num(3, 2)? as u8,
        year: num(6, 4)?,
        hour: num(11, 2)? as u8,
        minute: num(14, 2)? as u8,
        second: num(17, 2)? as u8,
    };
    let valid =
        (1..=12).contains(&t.month) && (1..=31).contains(&t.day) && t.hour < 24 && t.minute < 60 && t.second <= 60;
    valid.then_some(t)
}

/// Whether a listing entry is hidden (and so never picked).
pub fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

/// The index of the newest candidate by the rule in the module docs; with
/// `backups_of`, the newest backup of that cluster.
pub fn pick_latest(candidates: &[Candidate], backups_of: Option<&str>) -> Result<usize, NotPicked> {
    let visible = || candidates.iter().enumerate().filter(|(_, c)| !is_hidden(&c.name));
    let stamped: Vec<(usize, &Candidate, &str, KubegresTimestamp)> =
        visible().filter_map(|(i, c)| kubegres_backup(&c.name).map(|(cluster, t)| (i, c, cluster, t))).collect();
    let mut clusters: Vec<String> = stamped.iter().map(|(_, _, cluster, _)| cluster.to_string()).collect();
    clusters.sort();
    clusters.dedup();
    let newest = |cluster: Option<&str>| {
        stamped
            .iter()
            .filter(|(_, _, c, _)| cluster.is_none_or(|want| *c == want))
            .max_by(|(_, a, _, ta), (_, b, _, tb)| {
                ta.cmp(tb).then_with(|| a.modified.cmp(&b.modified)).then_with(|| a.name.cmp(&b.name))
            })
            .map(|(i, ..)| *i)
    };
    if let Some(cluster) = backups_of {
        return newest(Some(cluster)).ok_or_else(|| NotPicked::NoBackupsOf { cluster: cluster.to_string(), clusters });
    }
    if clusters.len() > 1 {
        return Err(NotPicked::SeveralClusters(clusters));
    }
    if let Some(i) = newest(None) {
        return Ok(i);
    }
    visible()
        .max_by(|(_, a), (_, b)| a.modified.cmp(&b.modified).then_with(|| a.name.cmp(&b.name)))
        .map(|(i, _)| i)
        .ok_or(NotPicked::Empty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> Option<SystemTime> {
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
    }

    fn c(name: &str, modified: Option<SystemTime>) -> Candidate {
        Candidate { name: name.to_string(), modified }
    }

    fn pick(cands: &[Candidate]) -> Option<&str> {
        pick_latest(cands, None).ok().map(|i| cands[i].name.as_str())
    }

    #[test]
    fn parses_kubegres_names() {
        assert_eq!(
            kubegres_timestamp("mypostgres-backup-31_12_2023_23_59_58.gz"),
            Some(KubegresTimestamp { year: 2023, month: 12, day: 31, hour: 23, minute: 59, second: 58 })
        );
        assert!(kubegres_timestamp("my-backup-db-backup-01_02_2024_03_04_05.gz").is_some());
        assert!(kubegres_timestamp("pg-backup-01_02_2024_03_04_05").is_some());
        assert!(kubegres_timestamp("pg-backup-01_02_2024_03_04_05.sql.gz").is_some());
        for bad in [
            "pg-backup-01_02_2024_03_04_05x.gz",
            "pg-backup-1_02_2024_03_04_05.gz",
            "pg-backup-01_13_2024_03_04_05.gz",
            "pg-backup-00_12_2024_03_04_05.gz",
            "pg-backup-01_12_2024_24_04_05.gz",
            "pg-backup-01-12-2024-03-04-05.gz",
            "-backup-01_02_2024_03_04_05.gz",
            "pg-backup-01_02_2024_03_04.gz",
            "pg-backup-+1_02_2024_03_04_05.gz",
            "pg-backup-é1_02_2024_03_04_0.gz",
            "pg-backup-01_0é_2024_03_04_0.gz",
            "dump.sql.gz",
        ] {
            assert_eq!(kubegres_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn kubegres_names_go_by_their_timestamp_not_lexically() {
        // Lexically the greatest is "31_01_2023", the oldest.
        let cands = vec![
            c("pg-backup-31_01_2023_10_00_00.gz", at(500)),
            c("pg-backup-02_03_2024_09_00_00.gz", at(400)),
            c("pg-backup-15_02_2024_23_59_59.gz", at(300)),
            c("pg-backup-01_01_2025_00_00_01.gz", at(100)),
            c("pg-backup-28_12_2024_12_00_00.gz", at(200)),
            c("pg-backup-01_01_2025_00_00_00.gz", at(600)),
        ];
        assert_eq!(pick(&cands), Some("pg-backup-01_01_2025_00_00_01.gz"));
        // Across days of one month, and across hours of one day.
        let cands = vec![
            c("db-backup-09_05_2024_01_00_00.gz", None),
            c("db-backup-10_05_2024_00_59_59.gz", None),
            c("db-backup-10_05_2024_00_05_00.gz", None),
        ];
        assert_eq!(pick(&cands), Some("db-backup-10_05_2024_00_59_59.gz"));
    }

    #[test]
    fn kubegres_names_beat_newer_unstamped_files() {
        let cands = vec![
            c("notes.txt", at(9_999)),
            c("pg-backup-01_01_2020_00_00_00.gz", at(1)),
            c("manual.sql.gz", at(9_000)),
        ];
        assert_eq!(pick(&cands), Some("pg-backup-01_01_2020_00_00_00.gz"));
    }

    #[test]
    fn other_names_go_by_mtime_then_name() {
        let cands = vec![c("b.sql.gz", at(10)), c("z.sql.gz", at(5)), c("a.dump", at(20))];
        assert_eq!(pick(&cands), Some("a.dump"));
        let cands = vec![c("b.sql.gz", at(10)), c("c.sql.gz", at(10)), c("a.sql.gz", at(10))];
        assert_eq!(pick(&cands), Some("c.sql.gz"));
        // Unknown times sort first.
        let cands = vec![c("z.sql", None), c("a.sql", at(1))];
        assert_eq!(pick(&cands), Some("a.sql"));
    }

    #[test]
    fn same_timestamp_goes_by_mtime() {
        let cands = vec![c("a-backup-01_01_2024_00_00_00.gz", at(2)), c("a-backup-01_01_2024_00_00_00.sql.gz", at(1))];
        assert_eq!(pick(&cands), Some("a-backup-01_01_2024_00_00_00.gz"));
    }

    #[test]
    fn hidden_names_are_ignored_and_empty_means_none() {
        let cands = vec![c(".pg-backup-01_01_2030_00_00_00.gz", at(100)), c("old.sql", at(1))];
        assert_eq!(pick(&cands), Some("old.sql"));
        assert_eq!(pick(&[c(".hidden", at(1))]), None);
        assert_eq!(pick(&[]), None);
    }

    #[test]
    fn the_cluster_is_the_name_before_the_stamp() {
        assert_eq!(kubegres_backup("mypostgres-backup-31_12_2023_23_59_58.gz").map(|(c, _)| c), Some("mypostgres"));
        assert_eq!(kubegres_backup("my-backup-db-backup-01_02_2024_03_04_05.gz").map(|(c, _)| c), Some("my-backup-db"));
        assert_eq!(kubegres_backup("notes.txt"), None);
    }

    #[test]
    fn backups_of_takes_only_that_clusters_backups() {
        // The restored cluster's own CronJob wrote a newer backup into the same PVC.
        let cands = vec![
            c("orders-backup-01_01_2025_00_00_00.gz", at(1)),
            c("orders-restored-backup-02_01_2025_00_00_00.gz", at(2)),
            c("orders-backup-31_12_2024_00_00_00.gz", at(3)),
            c("newer-manual.sql.gz", at(9)),
        ];
        let got = pick_latest(&cands, Some("orders")).map(|i| cands[i].name.as_str());
        assert_eq!(got, Ok("orders-backup-01_01_2025_00_00_00.gz"));
        let got = pick_latest(&cands, Some("orders-restored")).map(|i| cands[i].name.as_str());
        assert_eq!(got, Ok("orders-restored-backup-02_01_2025_00_00_00.gz"));
    }

    #[test]
    fn several_clusters_and_none_named_is_refused() {
        let cands = vec![
            c("orders-backup-01_01_2025_00_00_00.gz", at(1)),
            c("orders-restored-backup-02_01_2025_00_00_00.gz", at(2)),
        ];
        assert_eq!(
            pick_latest(&cands, None),
            Err(NotPicked::SeveralClusters(vec!["orders".into(), "orders-restored".into()]))
        );
        let e = NotPicked::SeveralClusters(vec!["orders".into(), "orders-restored".into()])
            .into_error("/backups".into(), "");
        assert_eq!(e.reason(), "AmbiguousBackups");
        let text = e.to_string();
        assert!(text.contains("orders, orders-restored") && text.contains("--backups-of"), "{text}");
    }

    #[test]
    fn a_named_cluster_without_backups_names_the_ones_found() {
        let cands = vec![c("orders-backup-01_01_2025_00_00_00.gz", at(1)), c("dump.sql", at(5))];
        let e = pick_latest(&cands, Some("billing")).unwrap_err();
        assert_eq!(e, NotPicked::NoBackupsOf { cluster: "billing".into(), clusters: vec!["orders".into()] });
        let text = e.into_error("/backups".into(), "").to_string();
        assert!(text.contains("\"billing\"") && text.contains("holds backups of: orders"), "{text}");
        // Unstamped files never stand in for a named cluster's backup.
        let e = pick_latest(&[c("dump.sql", at(5))], Some("billing")).unwrap_err();
        assert_eq!(e, NotPicked::NoBackupsOf { cluster: "billing".into(), clusters: vec![] });
    }
}
