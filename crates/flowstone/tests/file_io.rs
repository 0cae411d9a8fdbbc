//! The filesystem IO manager stores any valid asset and partition: keys too long for a file
//! name are hashed with the key kept beside them, a hash collision is an error, short keys keep
//! their paths, and nothing is written outside the root.

use std::path::{Path, PathBuf};

use flowstone::io::IoMetadata;
use flowstone::partition::{CustomPartitions, PartitionsDefinition};
use flowstone::{Asset, Error, FileIo, FlowStone, IoManager, Output, Partition, RunId};
use flowstone::{Run, Strategy};
use flowstone_queue::testing::TestDb;

/// A fresh folder under the system's temporary folder; removed by [`Scratch::drop`].
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "flowstone_file_io_{}",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir).expect("create the scratch folder");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn meta() -> IoMetadata {
    IoMetadata {
        run_id: RunId::new(),
        stored_at: chrono::Utc::now(),
        size_bytes: None,
    }
}

/// Every file below `dir`, recursively.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read folder") {
        let path = entry.expect("folder entry").path();
        if path.is_dir() {
            found.extend(files_below(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// An asset name whose escaped form (6 bytes a character) is far over 255 bytes.
fn long_asset() -> String {
    // 240 bytes: a valid asset name (at most 255 bytes), 720 bytes once escaped for a file name.
    "é".repeat(120)
}

/// A partition whose escaped encoding is far over 255 bytes: multibyte text in a tuple.
fn long_partition() -> Partition {
    Partition::Tuple(vec![Partition::Str("日本語".repeat(40)), Partition::Int(1)])
}

/// The file beside a hashed `value` file (`+<hash>.json`) that holds its key.
fn key_file_of(value: &Path) -> PathBuf {
    value.with_extension("key")
}

async fn stored_value(io: &FileIo, asset: &str, partition: &Partition) -> Option<String> {
    io.load(asset, partition)
        .await
        .expect("load")
        .map(|stored| stored.output.value::<String>().expect("a string output"))
}

#[test]
fn short_keys_keep_their_escaped_paths() {
    let io = FileIo::new("/data");
    let day = Partition::ymd(2024, 1, 1).unwrap();
    assert_eq!(
        io.path_for("orders", &day),
        Path::new("/data/orders/d%3A2024-01-01.json")
    );
    assert_eq!(
        io.path_for("a b", &Partition::Str("x".into())),
        Path::new("/data/a%20b/x.json")
    );
    // The longest escaped partition that still fits, with `.meta.json`, in 255 bytes.
    let fits = "p".repeat(245);
    assert_eq!(
        io.path_for("orders", &Partition::Str(fits.clone())),
        Path::new("/data/orders").join(format!("{fits}.json"))
    );
    let asset_fits = "a".repeat(255);
    assert_eq!(
        io.path_for(&asset_fits, &day),
        Path::new("/data")
            .join(&asset_fits)
            .join("d%3A2024-01-01.json")
    );
}

#[test]
fn keys_one_byte_too_long_are_hashed() {
    let io = FileIo::new("/data");
    let day = Partition::ymd(2024, 1, 1).unwrap();
    let path = io.path_for("orders", &Partition::Str("p".repeat(246)));
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with('+') && name.ends_with(".json"), "{name}");
    assert_eq!(path.parent().unwrap(), Path::new("/data/orders"));
    let path = io.path_for(&"a".repeat(256), &day);
    let folder = path
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    assert!(folder.starts_with('+'), "{folder}");
    assert_eq!(path.file_name().unwrap(), "d%3A2024-01-01.json");
}

#[tokio::test]
async fn long_keys_are_stored_under_hashed_names_with_the_key_beside() {
    let scratch = Scratch::new();
    let io = FileIo::new(&scratch.0);
    let (asset, partition) = (long_asset(), long_partition());
    io.store(&asset, &partition, &Output::new("long".to_owned()), &meta())
        .await
        .expect("store a key longer than a file name");
    assert_eq!(
        stored_value(&io, &asset, &partition).await.as_deref(),
        Some("long")
    );
    assert!(io.exists(&asset, &partition).await.unwrap());
    assert!(io.metadata(&asset, &partition).await.unwrap().is_some());

    for file in files_below(&scratch.0) {
        let name = file.file_name().unwrap().len();
        assert!(name <= 255, "{} is {name} bytes", file.display());
    }
    let value = io.path_for(&asset, &partition);
    let folder = value.parent().unwrap();
    assert_eq!(
        std::fs::read_to_string(key_file_of(&value)).unwrap(),
        partition.encode()
    );
    assert_eq!(
        std::fs::read_to_string(folder.with_extension("key")).unwrap(),
        asset
    );

    // Other partitions of the same long asset share its folder.
    let short = Partition::Int(3);
    io.store(&asset, &short, &Output::new("short".to_owned()), &meta())
        .await
        .unwrap();
    assert_eq!(io.path_for(&asset, &short).parent().unwrap(), folder);
    assert_eq!(
        stored_value(&io, &asset, &short).await.as_deref(),
        Some("short")
    );

    assert!(io.delete(&asset, &partition).await.unwrap());
    assert!(!value.exists() && !key_file_of(&value).exists());
    assert_eq!(stored_value(&io, &asset, &partition).await, None);
    assert!(!io.delete(&asset, &partition).await.unwrap());
    assert_eq!(
        stored_value(&io, &asset, &short).await.as_deref(),
        Some("short")
    );
}

#[tokio::test]
async fn a_hash_collision_is_an_error_not_another_keys_output() {
    let scratch = Scratch::new();
    let io = FileIo::new(&scratch.0);
    let (asset, partition) = (long_asset(), long_partition());
    io.store(&asset, &partition, &Output::new("mine".to_owned()), &meta())
        .await
        .unwrap();
    // Another partition whose encoding hashes alike claimed the name: it is its key that is
    // beside the files now.
    let value = io.path_for(&asset, &partition);
    std::fs::write(key_file_of(&value), "s:someone else").unwrap();
    let failures = [
        io.load(&asset, &partition).await.map(drop),
        io.metadata(&asset, &partition).await.map(drop),
        io.exists(&asset, &partition).await.map(drop),
        io.store(&asset, &partition, &Output::new("x".to_owned()), &meta())
            .await,
        io.delete(&asset, &partition).await.map(drop),
    ];
    for failure in failures {
        let err = failure.expect_err("a collision is an error");
        let message = err.to_string();
        assert!(message.contains("hash to the same file name"), "{message}");
        assert!(message.contains("s:someone else"), "{message}");
        assert!(message.contains(&partition.encode()), "{message}");
    }
    assert!(value.exists(), "the other key's output was deleted");

    // The same for an asset folder claimed by another asset name.
    let folder_key = value.parent().unwrap().with_extension("key");
    std::fs::write(&folder_key, "another asset").unwrap();
    let err = io.load(&asset, &Partition::Int(1)).await.unwrap_err();
    assert!(err.to_string().contains("another asset"), "{err}");
}

#[tokio::test]
async fn nothing_is_written_outside_the_root() {
    let scratch = Scratch::new();
    let root = scratch.0.join("root");
    let io = FileIo::new(&root);
    let assets = [
        "..".to_owned(),
        "../..".to_owned(),
        "/etc/passwd".to_owned(),
        "a/../../b".to_owned(),
        ".".to_owned(),
        String::new(),
        ".hidden".to_owned(),
        "C:\\Windows".to_owned(),
        "~".to_owned(),
        format!("../{}", "ü".repeat(150)),
    ];
    let partitions = [
        Partition::Unpartitioned,
        Partition::Str("..".into()),
        Partition::Str("/abs/path".into()),
        Partition::Str("../../x".into()),
        Partition::Str("nul\0lf\n".into()),
        Partition::Str(format!("/../{}", "🚀".repeat(100))),
        Partition::Tuple(vec![
            Partition::Str("..".into()),
            Partition::Str("/".into()),
        ]),
    ];
    for asset in &assets {
        for partition in &partitions {
            let text = format!("{asset:?} {partition:?}");
            io.store(asset, partition, &Output::new(text), &meta())
                .await
                .unwrap_or_else(|e| panic!("store {asset:?} {partition:?}: {e}"));
        }
    }
    for asset in &assets {
        for partition in &partitions {
            let text = format!("{asset:?} {partition:?}");
            assert_eq!(
                stored_value(&io, asset, partition).await,
                Some(text),
                "{asset:?} {partition:?}"
            );
            assert!(io.path_for(asset, partition).starts_with(&root));
        }
    }
    let beside_root: Vec<_> = std::fs::read_dir(&scratch.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside_root, ["root"]);
    // A value and its metadata per entry, a key file per hashed partition (the long ones) and
    // one per hashed asset folder (the long one): nothing went anywhere else.
    let hashed_partitions = assets.len();
    let hashed_assets = 1;
    assert_eq!(
        files_below(&root).len(),
        assets.len() * partitions.len() * 2 + hashed_partitions + hashed_assets
    );
}

// ---------------------------------------------------------------------------------------------
// Through FlowStone, with the records in SQLite or PostgreSQL
// ---------------------------------------------------------------------------------------------

fn long_partitions() -> CustomPartitions {
    CustomPartitions::new(|| {
        Ok(vec![
            long_partition(),
            Partition::Str(format!("{}\0\r\n\t", "長".repeat(100))),
        ])
    })
}

/// Materializes assets with long names and long partitions into a `FileIo` while the records
/// and lineage go to the database, and reads the outputs back.
async fn long_keys_materialize_into_files(db: &TestDb) {
    let scratch = Scratch::new();
    let upstream = long_asset();
    let downstream = format!("{upstream}_next");
    let fs = FlowStone::builder()
        .asset(
            Asset::new(upstream.as_str())
                .partitioned_by(long_partitions())
                .execute(|ctx| async move { Ok::<String, Error>(ctx.partition().encode()) }),
        )
        .asset(
            Asset::new(downstream.as_str())
                .partitioned_by(long_partitions())
                .depends_on([upstream.as_str()])
                .execute({
                    let upstream = upstream.clone();
                    move |ctx| {
                        let upstream = upstream.clone();
                        async move {
                            let key: String = ctx.dep(&upstream)?;
                            Ok::<String, Error>(format!("after {key}"))
                        }
                    }
                }),
        )
        .io_manager(FileIo::new(&scratch.0))
        .database(db.url())
        .connect()
        .await
        .expect("connect");
    for partition in long_partitions().partitions().unwrap() {
        let out: String = fs
            .materialize(
                &downstream,
                Run::partition(partition.clone())
                    .executor(Strategy::Sync)
                    .with_upstream(true),
            )
            .await
            .unwrap_or_else(|e| panic!("materialize {partition:?}: {e}"))
            .value()
            .unwrap();
        assert_eq!(out, format!("after {}", partition.encode()));
        let stored: String = fs.load(&upstream, partition.clone()).await.unwrap();
        assert_eq!(stored, partition.encode());
    }
    let files = files_below(&scratch.0);
    assert!(!files.is_empty(), "the outputs went to the FileIo");
    for file in files {
        assert!(file.file_name().unwrap().len() <= 255, "{}", file.display());
    }
}

flowstone_queue::both_engines!(long_keys_materialize_into_files);
