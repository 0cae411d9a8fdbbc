//! Filesystem IO: one JSON file per asset and partition, written atomically.
//!
//! Layout: `<root>/<asset>/<partition>.json` with its metadata beside it in
//! `<partition>.meta.json`. The asset name and the partition's canonical encoding are made
//! file-name safe by percent-escaping, so every key maps to exactly one name, and no name can
//! climb out of the root (`..`, `/` and a leading `.` are escaped). Writes go to a temporary file
//! in the same folder, are synced, then renamed over the target: a reader sees the old file or
//! the new one, never half of one. The value is written before its metadata, so metadata never
//! describes a value that is not there.
//!
//! # Keys too long for a file name
//!
//! File systems cap a name at 255 bytes, and escaping can triple a key's length. A key whose
//! escaped name does not fit (an asset folder over 255 bytes, a partition whose
//! `<name>.meta.json` would be) is named `+` and its hash instead (`+` never appears in an
//! escaped name, so the two kinds cannot meet), and the key itself is kept beside it in
//! `<hashed name>.key`: the folder `<root>/+<hash>` has `<root>/+<hash>.key` holding the asset
//! name, the files `+<hash>.json` and `+<hash>.meta.json` have `+<hash>.key` holding the encoded
//! partition. The key file is written before anything it names and removed after, and every
//! access checks it: a different key there means two keys hash alike, which is reported as an
//! error instead of serving one key's output for the other. Keys that fit keep their escaped
//! names, so their files are where they always were.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{IoManager, IoMetadata, Stored};
use crate::error::{Error, Result};
use crate::output::Output;
use crate::partition::Partition;

/// The longest file name (in bytes) that common file systems (ext4, APFS, NTFS) accept.
const MAX_FILE_NAME: usize = 255;
const VALUE_SUFFIX: &str = ".json";
const META_SUFFIX: &str = ".meta.json";
const KEY_SUFFIX: &str = ".key";
/// Starts every hashed name; [`file_safe`] escapes it, so no escaped name starts with it.
const HASHED_PREFIX: char = '+';

/// Stores outputs as JSON files under a root folder: `<root>/<asset>/<partition>.json`, both
/// names percent-escaped. An asset or partition too long for a file name (255 bytes) is named
/// `+<hash>` instead, with the full key in `+<hash>.key` beside it, checked on every access.
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
        self.entry(asset, partition).value_path()
    }

    fn entry(&self, asset: &str, partition: &Partition) -> Entry {
        let folder = Name::of("asset", asset.to_owned(), &self.root, MAX_FILE_NAME);
        let dir = self.root.join(&folder.stem);
        let file = Name::of(
            "partition",
            partition.encode(),
            &dir,
            MAX_FILE_NAME - META_SUFFIX.len(),
        );
        Entry { folder, dir, file }
    }

    /// The entry of `asset` and `partition`, once its key files (if any) are confirmed to hold
    /// these keys; `None` when a key file is missing, so nothing is stored under that name.
    async fn existing_entry(&self, asset: &str, partition: &Partition) -> Result<Option<Entry>> {
        let entry = self.entry(asset, partition);
        for name in [&entry.folder, &entry.file] {
            if !name.verify().await? {
                return Ok(None);
            }
        }
        Ok(Some(entry))
    }
}

/// Where one (asset, partition) is stored: the asset's folder and the partition's files in it.
struct Entry {
    folder: Name,
    dir: PathBuf,
    file: Name,
}

impl Entry {
    fn value_path(&self) -> PathBuf {
        self.dir.join(format!("{}{VALUE_SUFFIX}", self.file.stem))
    }

    fn meta_path(&self) -> PathBuf {
        self.dir.join(format!("{}{META_SUFFIX}", self.file.stem))
    }

    async fn read_meta(&self) -> Result<Option<IoMetadata>> {
        let path = self.meta_path();
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

/// The name a key (an asset name, or an encoded partition) has in its folder.
struct Name {
    /// What the key is, for error messages: "asset" or "partition".
    kind: &'static str,
    key: String,
    /// The file or folder name, before any suffix.
    stem: String,
    /// For a hashed stem, the file beside it that holds the key.
    key_file: Option<PathBuf>,
}

impl Name {
    /// Names `key` in `dir`: escaped when that fits in `max_stem` bytes, hashed otherwise.
    fn of(kind: &'static str, key: String, dir: &Path, max_stem: usize) -> Name {
        let escaped = file_safe(&key);
        if escaped.len() <= max_stem {
            return Name {
                kind,
                key,
                stem: escaped,
                key_file: None,
            };
        }
        let stem = format!("{HASHED_PREFIX}{:032x}", fnv1a_128(key.as_bytes()));
        let key_file = Some(dir.join(format!("{stem}{KEY_SUFFIX}")));
        Name {
            kind,
            key,
            stem,
            key_file,
        }
    }

    /// Whether the key file (if the name is hashed) holds this key: `false` when it is missing,
    /// an error when it holds another key.
    async fn verify(&self) -> Result<bool> {
        let Some(key_file) = &self.key_file else {
            return Ok(true);
        };
        match read_optional(key_file).await? {
            None => Ok(false),
            Some(held) if held == self.key.as_bytes() => Ok(true),
            Some(held) => Err(Error::io(format!(
                "the {kind} '{key}' and the {kind} '{held}' hash to the same file name, kept by \
                 '{path}' for the latter; refusing to mix their outputs: store one of them under \
                 another FileIo root",
                kind = self.kind,
                key = self.key,
                held = String::from_utf8_lossy(&held),
                path = key_file.display(),
            ))),
        }
    }

    /// [`Name::verify`], writing the key file when it is missing: before storing under a name.
    async fn claim(&self) -> Result<()> {
        if let Some(key_file) = &self.key_file
            && !self.verify().await?
        {
            write_atomic(key_file, self.key.clone().into_bytes()).await?;
        }
        Ok(())
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

/// FNV-1a with 128 bits: fixed by its definition, so hashed names stay the same across versions
/// and platforms. Not cryptographic, which is why the key file is checked on every access.
fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET_BASIS: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u128::from(byte)).wrapping_mul(PRIME)
    })
}

async fn write_atomic(path: &Path, bytes: Vec<u8>) -> Result<()> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || -> Result<()> {
        use std::io::Write as _;
        let dir = path
            .parent()
            .ok_or_else(|| Error::io(format!("'{}' has no parent folder", path.display())))?;
        std::fs::create_dir_all(dir).map_err(|e| io_error("create folder", dir, e))?;
        // Not named after the target: that name may already use all 255 bytes.
        let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::now_v7().simple()));
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
        let entry = self.entry(asset, partition);
        entry.folder.claim().await?;
        entry.file.claim().await?;
        write_atomic(&entry.value_path(), bytes).await?;
        write_atomic(&entry.meta_path(), serde_json::to_vec(&meta)?).await
    }

    async fn load(&self, asset: &str, partition: &Partition) -> Result<Option<Stored>> {
        let Some(entry) = self.existing_entry(asset, partition).await? else {
            return Ok(None);
        };
        let Some(meta) = entry.read_meta().await? else {
            return Ok(None);
        };
        Ok(read_optional(&entry.value_path())
            .await?
            .map(|bytes| Stored {
                output: Output::from_json_bytes(bytes),
                meta,
            }))
    }

    async fn delete(&self, asset: &str, partition: &Partition) -> Result<bool> {
        let Some(entry) = self.existing_entry(asset, partition).await? else {
            return Ok(false);
        };
        let mut existed = false;
        // Metadata first: a value without metadata reads as absent. The key file last: it
        // must name whatever is still there.
        for path in [entry.meta_path(), entry.value_path()] {
            existed |= remove_optional(&path).await?;
        }
        if let Some(key_file) = &entry.file.key_file {
            remove_optional(key_file).await?;
        }
        Ok(existed)
    }

    async fn metadata(&self, asset: &str, partition: &Partition) -> Result<Option<IoMetadata>> {
        match self.existing_entry(asset, partition).await? {
            Some(entry) => entry.read_meta().await,
            None => Ok(None),
        }
    }
}

/// Removes `path`; whether it was there.
async fn remove_optional(path: &Path) -> Result<bool> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(io_error("delete", path, err)),
    }
}

#[cfg(test)]
mod tests {
    use super::{file_safe, fnv1a_128};

    #[test]
    fn the_hash_is_fnv1a_128() {
        // Published FNV-1a 128-bit test vectors.
        assert_eq!(fnv1a_128(b""), 0x6c62272e07bb014262b821756295c58d);
        assert_eq!(fnv1a_128(b"a"), 0xd228cb696f1a8caf78912b704e4a8964);
    }

    #[test]
    fn file_names_cannot_escape_the_root() {
        assert_eq!(file_safe("../x"), "%2E.%2Fx");
        assert_eq!(file_safe("d:2024-01-01"), "d%3A2024-01-01");
        assert_eq!(file_safe(""), "%00");
    }
}
