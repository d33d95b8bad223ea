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

use std::time::SystemTime;

/// One entry of a listing: its name (last path segment, no trailing `/`)
/// and its modification time when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    pub modified: Option<SystemTime>,
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
    // The last "-backup-" followed by a valid stamp (a cluster name may contain "-backup-" too).
    name.rmatch_indices(MARK).find_map(|(i, _)| {
        let rest = &name[i + MARK.len()..];
        let stamp = rest.get(..STAMP_LEN)?;
        let after = &rest[STAMP_LEN..];
        if !(after.is_empty() || after.starts_with('.')) || i == 0 {
            return None;
        }
        parse_stamp(stamp)
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

/// The index of the newest candidate by the rule in the module docs, or
/// `None` when no candidate is left after dropping hidden names.
pub fn pick_latest(candidates: &[Candidate]) -> Option<usize> {
    let visible = || candidates.iter().enumerate().filter(|(_, c)| !is_hidden(&c.name));
    let stamped = visible().filter_map(|(i, c)| kubegres_timestamp(&c.name).map(|t| (i, c, t)));
    if let Some((i, _, _)) = stamped.max_by(|(_, a, ta), (_, b, tb)| {
        ta.cmp(tb).then_with(|| a.modified.cmp(&b.modified)).then_with(|| a.name.cmp(&b.name))
    }) {
        return Some(i);
    }
    visible().max_by(|(_, a), (_, b)| a.modified.cmp(&b.modified).then_with(|| a.name.cmp(&b.name))).map(|(i, _)| i)
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
        pick_latest(cands).map(|i| cands[i].name.as_str())
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
        let cands = vec![c("a-backup-01_01_2024_00_00_00.gz", at(2)), c("b-backup-01_01_2024_00_00_00.gz", at(1))];
        assert_eq!(pick(&cands), Some("a-backup-01_01_2024_00_00_00.gz"));
    }

    #[test]
    fn hidden_names_are_ignored_and_empty_means_none() {
        let cands = vec![c(".pg-backup-01_01_2030_00_00_00.gz", at(100)), c("old.sql", at(1))];
        assert_eq!(pick(&cands), Some("old.sql"));
        assert_eq!(pick(&[c(".hidden", at(1))]), None);
        assert_eq!(pick(&[]), None);
    }
}
