//! `sit mirror`: the data folder's archive copied off the machine ([`crate::archive::mirror`]),
//! beside whatever publishes into it (`sit run`, `sit collect`, `sit serve`); or, with
//! `--restore`, the mirror's latest snapshot written back into a folder.

use super::{Command, Paths};
use crate::archive::mirror::Mirror;
use crate::cli::error::{Error, Result};
use std::time::Duration;

pub(super) async fn run(cli: &Paths, c: Command) -> Result<()> {
    let Command::Mirror {
        to,
        every,
        once,
        restore,
    } = c
    else {
        return Err(Error::Usage("not a mirror command".into()));
    };
    if !(1..=3600).contains(&every) {
        return Err(Error::Usage(format!(
            "--every {every}: give 1-3600 seconds between passes"
        )));
    }
    crate::archive::mirror::Location::parse(&to)?;
    let mut m = Mirror::open(&to).await?;
    if let Some(dir) = restore {
        if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
            return Err(Error::Usage(format!(
                "--restore {}: the folder is not empty; give a new or empty one",
                dir.display()
            )));
        }
        let (n, files) = m.restore(&dir, "").await?;
        println!(
            "restored snapshot {n} of {}: {files} files into {} (each checked against its blake3)",
            m.location,
            dir.display()
        );
        return Ok(());
    }
    if !cli.data.exists() {
        return Err(Error::Usage(format!(
            "no data folder at {}; pass --data DIR (the folder whose published/ and archive/ are mirrored)",
            cli.data.display()
        )));
    }
    m.check_create_only().await?;
    tracing::info!(
        "sit mirror: {} refuses to overwrite (If-None-Match: *); mirroring {} every {every} s",
        m.location,
        cli.data.display()
    );
    let mut backoff = Duration::from_secs(1);
    let mut shutdown = std::pin::pin!(crate::sys::shutdown::signal());
    loop {
        match m.pass(&cli.data).await {
            Ok(p) => {
                backoff = Duration::from_secs(1);
                if p.uploaded > 0 || p.snapshot.is_some() || once {
                    let snap = match (p.snapshot, m.latest()) {
                        (Some(n), _) => format!("snapshot {n} written"),
                        (None, Some((n, _))) => format!("snapshot {n} current"),
                        (None, None) => "nothing to mirror yet".into(),
                    };
                    println!(
                        "mirrored {} files to {}: {} new objects ({} bytes); {snap}",
                        p.files, m.location, p.uploaded, p.uploaded_bytes
                    );
                }
                if once {
                    return Ok(());
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(every)) => {}
                    _ = &mut shutdown => return Ok(()),
                }
            }
            Err(e) => {
                if once {
                    return Err(e.into());
                }
                // retried until acknowledged: what was acknowledged stays, the rest comes again
                tracing::warn!("sit mirror: {e}; trying again in {} s", backoff.as_secs());
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = &mut shutdown => return Err(e.into()),
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}
