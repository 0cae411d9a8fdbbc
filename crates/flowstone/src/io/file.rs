//! Filesystem IO: one JSON file per asset and partition, written atomically.
//!
//! Layout: `<root>/<asset>/<partition>.json` with its metadata beside it in
//! `<partition>.meta.json`. The partition's canonical encoding is made file-name safe by
//! percent-escaping, so every partition maps to exactly one file. Writes go to a temporary file in
//! the same folder, are synced, then renamed over the target: a reader sees the old file or the
//! new one, never half of one. The value is written before its metadata, so metadata never
//! describes a value that is not there.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{IoManager, IoMetadata, Stored};
use crate::error::{Error, Result};
use crate::output::Output;
use crate::partition::Partition;

/// Stores outputs as JSON files under a root folder.
#[derive(Debug, Clone)]
pub struct FileIo {
    root: PathBuf,
}

impl FileIo {
    /// Stores under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FileIo { root: root.into() }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file holding the output of `asset` for `partition`.
    pub fn path_for(&self, asset: &str, partition: &Partition) -> PathBuf {
        self.root
            .join(file_safe(asset))
            .join(format!("{}.json", file_safe(&partition.encode())))
    }

    fn meta_path_for(&self, asset: &str, partition: &Partition) -> PathBuf {
        self.root
            .join(file_safe(asset))
            .join(format!("{}.meta.json", file_safe(&partition.encode())))
    }
}

/// Percent-escapes everything but `[A-Za-z0-9_-]` (and `.` when not leading), so names are
/// portable and `..`, `/` and the like cannot escape the root.
fn file_safe(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, byte) in name.bytes().enumerate() {
        let keep =
            byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' || (byte == b'.' && i > 0);
        if keep {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

async fn write_atomic(path: &Path, bytes: Vec<u8>) -> Result<()> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || -> Result<()> {
        use std::io::Write as _;
        let dir = path
            .parent()
            .ok_or_else(|| Error::io(format!("'{}' has no parent folder", path.display())))?;
        std::fs::create_dir_all(dir).map_err(|e| io_error("create folder", dir, e))?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
            uuid::Uuid::now_v7().simple()
        ));
        let result = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(err) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(io_error("write", &path, err));
        }
        Ok(())
    })
    .await
    .map_err(|e| Error::io(format!("file write task failed: {e}")))?
}

async fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match tokio::fs::read(path).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(io_error("read", path, err)),
    }
}

fn io_error(action: &str, path: &Path, err: std::io::Error) -> Error {
    Error::io(format!("could not {action} '{}': {err}", path.display())).with_source(err)
}

#[async_trait]
impl IoManager for FileIo {
    async fn store(
        &self,
        asset: &str,
        partition: &Partition,
        output: &Output,
        meta: &IoMetadata,
    ) -> Result<()> {
        let bytes = output.to_json_bytes()?;
        let meta = IoMetadata {
            size_bytes: Some(bytes.len() as u64),
            ..meta.clone()
        };
        write_atomic(&self.path_for(asset, partition), bytes).await?;
        write_atomic(
            &self.meta_path_for(asset, partition),
            serde_json::to_vec(&meta)?,
        )
        .await
    }

    async fn load(&self, asset: &str, partition: &Partition) -> Result<Option<Stored>> {
        let Some(meta) = self.metadata(asset, partition).await? else {
            return Ok(None);
        };
        let path = self.path_for(asset, partition);
        Ok(read_optional(&path).await?.map(|bytes| Stored {
            output: Output::from_json_bytes(bytes),
            meta,
        }))
    }

    async fn delete(&self, asset: &str, partition: &Partition) -> Result<bool> {
        let mut existed = false;
        // Metadata first: a value without metadata reads as absent.
        for path in [
            self.meta_path_for(asset, partition),
            self.path_for(asset, partition),
        ] {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => existed = true,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(io_error("delete", &path, err)),
            }
        }
        Ok(existed)
    }

    async fn metadata(&self, asset: &str, partition: &Partition) -> Result<Option<IoMetadata>> {
        let path = self.meta_path_for(asset, partition);
        match read_optional(&path).await? {
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::io(format!(
                    "metadata file '{}' is corrupt: {e}",
                    path.display()
                ))
            }),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::file_safe;

    #[test]
    fn file_names_cannot_escape_the_root() {
        assert_eq!(file_safe("../x"), "%2E.%2Fx");
        assert_eq!(file_safe("d:2024-01-01"), "d%3A2024-01-01");
        assert_eq!(file_safe(""), "%00");
    }
}
