//! Local files and directories (a mounted PVC is just a path).

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use super::latest::{self, Candidate};
use super::{OpenedSource, Pick, Resolved, SourceError, SourceOptions};

/// Resolves a local path: a file streams; a directory holding `toc.dat` is a
/// directory-format dump; with [`Pick::Latest`] a directory is narrowed to
/// its newest dump first (a directory that is itself a dump is taken as is,
/// and so is a plain file).
pub(super) async fn resolve(path: &Path, opts: &SourceOptions) -> Result<Resolved, SourceError> {
    let what = path.display().to_string();
    let meta = tokio::fs::metadata(path).await.map_err(|e| SourceError::from_io(&what, e))?;
    if !meta.is_dir() {
        return open_file(path).await.map(Resolved::Stream);
    }
    if is_directory_dump(path).await {
        return directory(path).await;
    }
    if opts.pick == Pick::Exact {
        return Err(SourceError::NoDump {
            what,
            detail: "it is a directory without toc.dat (not a directory-format dump); \
                     use --pick latest to take the newest dump in it"
                .into(),
        });
    }
    let chosen = pick_in_directory(path).await?;
    tracing::info!(folder = %path.display(), picked = %chosen.display(), "picked the latest dump");
    if tokio::fs::metadata(&chosen).await.map_err(|e| SourceError::from_io(&what, e))?.is_dir() {
        directory(&chosen).await
    } else {
        open_file(&chosen).await.map(Resolved::Stream)
    }
}

/// Opens a regular file as a stream.
pub(super) async fn open_file(path: &Path) -> Result<OpenedSource, SourceError> {
    let display = path.display().to_string();
    let file = tokio::fs::File::open(path).await.map_err(|e| SourceError::from_io(&display, e))?;
    let meta = file.metadata().await.map_err(|e| SourceError::from_io(&display, e))?;
    if !meta.is_file() {
        return Err(SourceError::NoDump { what: display, detail: "it is not a regular file".into() });
    }
    Ok(OpenedSource {
        reader: Box::pin(FileReader { inner: file, what: display.clone() }),
        size: Some(meta.len()),
        display,
    })
}

async fn is_directory_dump(path: &Path) -> bool {
    for name in crate::archive::TOC_NAMES {
        if tokio::fs::metadata(path.join(name)).await.is_ok_and(|m| m.is_file()) {
            return true;
        }
    }
    false
}

/// A local directory-format dump; its size is the sum of its files' sizes.
async fn directory(path: &Path) -> Result<Resolved, SourceError> {
    let display = path.display().to_string();
    let mut size = 0u64;
    let mut entries = tokio::fs::read_dir(path).await.map_err(|e| SourceError::from_io(&display, e))?;
    while let Some(entry) = entries.next_entry().await.map_err(|e| SourceError::from_io(&display, e))? {
        match entry.metadata().await {
            Ok(m) if m.is_file() => size += m.len(),
            _ => {}
        }
    }
    Ok(Resolved::Directory { path: path.to_path_buf(), display, size: Some(size), staging: None })
}

/// The newest dump in `dir`: regular files and directory-format dumps, not
/// hidden entries nor other subdirectories (see [`latest`]).
async fn pick_in_directory(dir: &Path) -> Result<PathBuf, SourceError> {
    let what = dir.display().to_string();
    let mut entries = tokio::fs::read_dir(dir).await.map_err(|e| SourceError::from_io(&what, e))?;
    let mut paths = Vec::new();
    let mut candidates = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(|e| SourceError::from_io(&what, e))? {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            tracing::warn!(folder = %what, "skipping an entry whose name is not UTF-8");
            continue;
        };
        if latest::is_hidden(&name) {
            continue;
        }
        let path = entry.path();
        // Follows symlinks: a link to a dump counts as the dump.
        let Ok(meta) = tokio::fs::metadata(&path).await else {
            continue;
        };
        let modified = if meta.is_file() {
            meta.modified().ok()
        } else if meta.is_dir() && is_directory_dump(&path).await {
            // A directory dump is as new as its table of contents.
            toc_modified(&path).await.or(meta.modified().ok())
        } else {
            continue;
        };
        candidates.push(Candidate { name, modified });
        paths.push(path);
    }
    match latest::pick_latest(&candidates) {
        Some(i) => Ok(paths.swap_remove(i)),
        None => Err(SourceError::NoDump {
            what,
            detail: "the folder holds no files (hidden entries and subdirectories without toc.dat are ignored)".into(),
        }),
    }
}

async fn toc_modified(dir: &Path) -> Option<std::time::SystemTime> {
    for name in crate::archive::TOC_NAMES {
        if let Ok(m) = tokio::fs::metadata(dir.join(name)).await {
            return m.modified().ok();
        }
    }
    None
}

/// A file whose read errors are marked as source errors.
struct FileReader {
    inner: tokio::fs::File,
    what: String,
}

impl AsyncRead for FileReader {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Err(e)) => {
                let what = self.what.clone();
                Poll::Ready(Err(SourceError::Read { what, source: e }.into_io()))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};
    use tokio::io::AsyncReadExt;

    fn set_mtime(path: &Path, secs: u64) {
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)).unwrap();
    }

    fn latest() -> SourceOptions {
        SourceOptions { pick: Pick::Latest, ..Default::default() }
    }

    #[tokio::test]
    async fn a_file_streams_with_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.sql");
        std::fs::write(&p, b"SELECT 1;\n").unwrap();
        let Resolved::Stream(mut s) = resolve(&p, &SourceOptions::default()).await.unwrap() else { panic!() };
        assert_eq!(s.size, Some(10));
        assert_eq!(s.display, p.display().to_string());
        let mut out = Vec::new();
        s.reader.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"SELECT 1;\n");
    }

    #[tokio::test]
    async fn missing_files_and_plain_directories_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let e = resolve(&dir.path().join("nope.gz"), &SourceOptions::default()).await.unwrap_err();
        assert_eq!(e.reason(), "SourceNotFound");
        assert!(e.to_string().contains("nope.gz not found"), "{e}");
        let e = resolve(dir.path(), &SourceOptions::default()).await.unwrap_err();
        assert_eq!(e.reason(), "NoDumpFound");
        assert!(e.to_string().contains("--pick latest"), "{e}");
        let e = resolve(dir.path(), &latest()).await.unwrap_err();
        assert_eq!(e.reason(), "NoDumpFound");
    }

    #[tokio::test]
    async fn picks_latest_by_kubegres_name_then_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (name, mtime) in [
            ("pg-backup-31_12_2023_10_00_00.gz", 300),
            ("pg-backup-01_02_2024_10_00_00.gz", 100),
            ("pg-backup-15_01_2024_10_00_00.gz", 200),
            ("notes.txt", 900),
        ] {
            std::fs::write(d.join(name), name).unwrap();
            set_mtime(&d.join(name), mtime);
        }
        std::fs::write(d.join(".pg-backup-01_01_2099_00_00_00.gz"), b"hidden").unwrap();
        std::fs::create_dir(d.join("pg-backup-01_01_2098_00_00_00.gz")).unwrap();
        let Resolved::Stream(s) = resolve(d, &latest()).await.unwrap() else { panic!() };
        assert!(s.display.ends_with("pg-backup-01_02_2024_10_00_00.gz"), "{}", s.display);

        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (name, mtime) in [("a.sql.gz", 300), ("b.sql.gz", 100)] {
            std::fs::write(d.join(name), name).unwrap();
            set_mtime(&d.join(name), mtime);
        }
        let Resolved::Stream(s) = resolve(d, &latest()).await.unwrap() else { panic!() };
        assert!(s.display.ends_with("a.sql.gz"), "{}", s.display);
    }

    #[tokio::test]
    async fn directory_dumps_resolve_to_directories_and_can_be_picked() {
        let dir = tempfile::tempdir().unwrap();
        let dump = dir.path().join("db.dir");
        std::fs::create_dir(&dump).unwrap();
        std::fs::write(dump.join("toc.dat"), b"PGDMP....").unwrap();
        std::fs::write(dump.join("3001.dat.gz"), b"0123456789").unwrap();
        let Resolved::Directory { path, size, staging, .. } = resolve(&dump, &SourceOptions::default()).await.unwrap()
        else {
            panic!()
        };
        assert_eq!(path, dump);
        assert_eq!(size, Some(19));
        assert!(staging.is_none());
        set_mtime(&dump.join("toc.dat"), 5_000_000_000);
        std::fs::write(dir.path().join("old.sql"), b"x").unwrap();
        let Resolved::Directory { path, .. } = resolve(dir.path(), &latest()).await.unwrap() else { panic!() };
        assert_eq!(path, dump);
    }

    #[tokio::test]
    async fn a_compressed_toc_marks_a_directory_dump_too() {
        let dir = tempfile::tempdir().unwrap();
        for name in crate::archive::TOC_NAMES {
            let dump = dir.path().join(format!("with-{name}"));
            std::fs::create_dir(&dump).unwrap();
            std::fs::write(dump.join(name), b"x").unwrap();
            assert!(is_directory_dump(&dump).await, "{name}");
            assert!(
                matches!(resolve(&dump, &SourceOptions::default()).await, Ok(Resolved::Directory { .. })),
                "{name}"
            );
            // The toc file itself is no directory dump.
            assert!(!is_directory_dump(&dump.join(name)).await, "{name}");
        }
        assert!(!is_directory_dump(dir.path()).await);
    }
}
