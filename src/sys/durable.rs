//! Durable file writes: every `fsync` the oracle makes is in this file.
//!
//! A write is acknowledged (a record published, a key generated, a settlement signed) only
//! once it would survive a crash, and a crash half-way never leaves a file that looks
//! finished. Four shapes cover every file the oracle writes:
//! - [`replace`]: a file whose content may change (a period's INDICATIVE settlement record,
//!   the run clock, a day's secret): written aside, fsynced, renamed over the old one, folder
//!   fsynced. A reader sees the old bytes or the new ones, never a mix.
//! - [`create_once`]: a file that is never rewritten (a published record, a key): created
//!   with `O_EXCL`, fsynced, folder fsynced. An existing file is an `AlreadyExists` error.
//! - [`link_once`]: a never-rewritten file that two writers may race to create (a FINAL
//!   settlement record): written aside in full, then hard-linked into place, so the name
//!   appears with its whole content or not at all, and the loser reads the winner's bytes.
//! - [`append_line`]: one line added to an append-only log, after dropping a torn final line
//!   that a crash left (it was never acknowledged).
//!
//! - [`persist`]: the store's observation log, written at offsets the store tracks (with
//!   [`start_writeback`] as each chunk is written), fsynced before the store commits the new
//!   end in sled, so bytes past the committed end after a crash were never acknowledged;
//!   [`open_segment`] creates or opens a segment and cuts it back to its committed length.
//!
//! [`rename_into_place`] moves a finished folder (an audit bundle written aside) into place.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Who may read a file written here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The process umask decides (records, public keys, settlement files).
    Shared,
    /// Owner only, mode 0600 (private keys, day secrets).
    Private,
    /// Mode 0644, whatever the umask (public keys).
    Public,
}

impl Access {
    fn apply(self, o: &mut OpenOptions) {
        match self {
            Access::Shared => {}
            Access::Private => {
                o.mode(0o600);
            }
            Access::Public => {
                o.mode(0o644);
            }
        }
    }
}

/// fsync a folder, so that a name created, renamed or linked in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parent(path: &Path) -> &Path {
    path.parent().expect("a file in a folder")
}

/// Write `bytes` to `path`, replacing what was there: `path.tmp` written and fsynced,
/// renamed over `path`, the folder fsynced. Creates the folder if needed.
pub fn replace(path: &Path, bytes: &[u8], access: Access) -> io::Result<()> {
    let dir = parent(path);
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    {
        let mut o = OpenOptions::new();
        o.write(true).create(true).truncate(true);
        access.apply(&mut o);
        let mut f = o.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// Create `path` holding `bytes`; an existing file is never touched (`AlreadyExists`). The file
/// and its folder are fsynced. The folder must exist.
pub fn create_once(path: &Path, bytes: &[u8], access: Access) -> io::Result<()> {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    access.apply(&mut o);
    let mut f = o.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    sync_dir(parent(path))
}

/// Create `path` holding `bytes` unless it exists: `Ok(None)` when this call created it,
/// `Ok(Some(bytes))` with the existing content when it was there first (also when another
/// writer won a race). The content is written aside and fsynced before the name is linked,
/// so `path` never holds a part of it. Creates the folder if needed.
pub fn link_once(path: &Path, bytes: &[u8]) -> io::Result<Option<Vec<u8>>> {
    if let Ok(old) = std::fs::read(path) {
        return Ok(Some(old));
    }
    let dir = parent(path);
    std::fs::create_dir_all(dir)?;
    // Unique per writer (process and instant), so two racing writers never share a temp file.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tmp = dir.join(format!(
        ".{}.{}.{nonce}.tmp",
        path.file_name().expect("a name").to_string_lossy(),
        std::process::id()
    ));
    {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(dir)?;
            Ok(None)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Some(std::fs::read(path)?)),
        Err(e) => Err(e),
    }
}

/// Append `line` and a newline to the log at `path` (created, with its folder, if missing),
/// then fsync the log and its folder. A final line without its newline, left by a crash
/// during an earlier append, is dropped first: it was never acknowledged.
pub fn append_line(path: &Path, line: &[u8]) -> io::Result<()> {
    let dir = parent(path);
    std::fs::create_dir_all(dir)?;
    let mut log = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .open(path)?;
    // Only the last byte is read when the log is whole (the common case): the whole log is
    // read only after a crash left a torn line, to find where it starts.
    let len = log.metadata()?.len();
    let whole = len == 0 || {
        let mut last = [0u8; 1];
        log.seek(SeekFrom::Start(len - 1))?;
        log.read_exact(&mut last)?;
        last[0] == b'\n'
    };
    let keep = if whole {
        len
    } else {
        let mut existing = Vec::new();
        log.seek(SeekFrom::Start(0))?;
        log.read_to_end(&mut existing)?;
        let keep = existing
            .iter()
            .rposition(|&b| b == b'\n')
            .map(|i| i + 1)
            .unwrap_or(0) as u64;
        log.set_len(keep)?;
        keep
    };
    log.seek(SeekFrom::Start(keep))?;
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line);
    bytes.push(b'\n');
    log.write_all(&bytes)?;
    log.sync_all()?;
    sync_dir(dir)
}

/// Ask the kernel to start writing `len` bytes of `file` from `offset` to disk, without
/// waiting (Linux `sync_file_range`; elsewhere nothing): a later [`persist`] then has less
/// left to wait for. Not a durability guarantee on its own.
pub fn start_writeback(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: the call reads no memory of ours; a failure only loses the head start.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                offset as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// fsync `file`'s data (and the metadata needed to read it back): what was written to it
/// survives a crash once this returns.
pub fn persist(file: &File) -> io::Result<()> {
    file.sync_data()
}

/// Open the log segment at `path` for reading and writing, created (and its folder fsynced)
/// if missing, and cut back to `committed` bytes if a crash left more (they were never
/// acknowledged). A segment shorter than `committed` is an `UnexpectedEof` error: bytes that
/// were acknowledged are gone.
pub fn open_segment(path: &Path, committed: u64) -> io::Result<File> {
    let dir = parent(path);
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        sync_dir(parent(dir))?;
    }
    let existed = path.exists();
    let f = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .open(path)?;
    if !existed {
        f.sync_all()?;
        sync_dir(dir)?;
    }
    let len = f.metadata()?.len();
    if len < committed {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "{} holds {len} bytes, the store committed {committed}",
                path.display()
            ),
        ));
    }
    if len > committed {
        f.set_len(committed)?;
        f.sync_all()?;
    }
    Ok(f)
}

/// Rename the finished folder (or file) `from` to `to` and fsync `to`'s folder.
pub fn rename_into_place(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)?;
    sync_dir(parent(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_overwrites_and_leaves_no_temp_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub").join("f.json");
        replace(&p, b"one", Access::Shared).unwrap();
        replace(&p, b"two", Access::Private).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert!(!p.with_extension("tmp").exists());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn create_once_never_overwrites() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k.pem");
        create_once(&p, b"first", Access::Shared).unwrap();
        let e = create_once(&p, b"second", Access::Shared).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
    }

    #[test]
    fn link_once_keeps_the_first_content_and_returns_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("final").join("2026-01.json");
        assert_eq!(link_once(&p, b"winner").unwrap(), None);
        assert_eq!(link_once(&p, b"loser").unwrap(), Some(b"winner".to_vec()));
        assert_eq!(std::fs::read(&p).unwrap(), b"winner");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file left beside the record");
    }

    #[test]
    fn append_line_drops_a_torn_final_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log.jsonl");
        append_line(&p, b"{\"a\":1}").unwrap();
        // A crash during the next append left half a line.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"b\":").unwrap();
        drop(f);
        append_line(&p, b"{\"c\":3}").unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"a\":1}\n{\"c\":3}\n"
        );
    }
}
