//! Attachment blobs for careline, encrypted at rest, on the local filesystem
//! or in any S3-compatible object store.
//!
//! # Storing
//!
//! [`BlobStore::put_file`] reads a plaintext file from local disk twice: once
//! to compute its SHA-256, then to encrypt it segment by segment (the `CLS1`
//! format of `careline-crypto`, 64 KiB segments) and upload it. Neither pass
//! holds the whole file in memory; objects larger than one 5 MiB part go up
//! as a multipart upload. The object's name is its content address,
//! `<prefix>/<org>/<sha256 hex>`, so storing the same content twice for one
//! organization stores it once (deduplication).
//!
//! # Reading
//!
//! [`BlobStore::open`] returns a [`BlobStream`] of plaintext for the whole
//! blob or a byte range. It fetches the header and only the segments that
//! cover the range, and verifies each segment before yielding any of its
//! bytes, so it is safe to send straight into an HTTP response body,
//! including for `Range` requests. A segment that fails verification ends the
//! stream with [`BlobError::Integrity`]; `open` itself already verifies the
//! first segment, so a wrong key, wrong AAD or a modified header is reported
//! before any byte is sent.
//!
//! # Associated data and deduplication
//!
//! The AAD binds a blob to what it belongs to: an object opens only with the
//! AAD it was sealed with. Because deduplicated attachments share one object,
//! the AAD must not name an attachment; bind it to the organization and the
//! content instead, with [`blob_aad`]: `b"blob:<org>:<sha256 hex>"`. The
//! SHA-256 is known before encryption starts (that is why `put_file` reads the
//! file twice).
//!
//! The same goes for the data key. If an organization moves to a new data key
//! version, new uploads of content that already exists under the old key
//! would find the old object: `put_file` detects this and returns
//! [`BlobError::Conflict`] rather than a reference it could not open. Callers
//! that rotate data keys pass a namespace that includes the key version as
//! `org` (e.g. `<org id>.k2`) and record it with the [`BlobRef`].
//!
//! # Locations
//!
//! [`BlobRef::location`] is `<org>/<sha256 hex>`, relative to the store's
//! prefix, so blobs can move to another directory, bucket or prefix by
//! copying the objects and changing the configuration alone.

mod config;
mod error;
#[cfg(feature = "testing")]
pub mod testing;

use std::ops::Range;
use std::path::Path as FsPath;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use careline_crypto::{
    CryptoError, DEFAULT_SEGMENT_SIZE, DataKey, STREAM_HEADER_LEN, SegmentLayout, SegmentOpener,
    SegmentSealer,
};
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    GetOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart,
};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

pub use config::{CREDENTIAL_VARS, DEFAULT_REGION, S3Config};
pub use error::BlobError;

/// Objects up to this size go up in one request; larger ones as a multipart
/// upload in parts of this size (S3's minimum part size is 5 MiB).
pub const PART_SIZE: usize = 5 * 1024 * 1024;
/// Multipart parts uploading at once, bounding memory to about this many
/// parts plus the one being filled.
const PARTS_IN_FLIGHT: usize = 2;
/// Ciphertext fetched per request when reading.
const READ_BATCH: u64 = 1024 * 1024;
/// Buffer for the hashing pass.
const HASH_BUFFER: usize = 256 * 1024;

/// The AAD to seal a deduplicated blob with: `blob:<org>:<sha256 hex>`.
pub fn blob_aad(org: &str, sha256: &str) -> Vec<u8> {
    format!("blob:{org}:{sha256}").into_bytes()
}

/// What [`BlobStore::put_file`] stored: record it with the attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRef {
    /// SHA-256 of the plaintext, lowercase hex.
    pub sha256: String,
    /// Plaintext length in bytes.
    pub size: u64,
    /// Length of the stored (encrypted) object in bytes.
    pub stored_size: u64,
    /// `<org>/<sha256>`, relative to the store's prefix; pass it to
    /// [`BlobStore::open`].
    pub location: String,
    /// Whether this call wrote the object (false: the same content was
    /// stored already and is shared). Only a writer that wrote it may take
    /// it back when what it was for is refused.
    pub written: bool,
}

/// A place to keep encrypted blobs: a local directory or an S3 bucket.
/// Cheap to clone; clones share one connection pool.
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    description: String,
    segment_size: u32,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore")
            .field("store", &self.description)
            .finish_non_exhaustive()
    }
}

impl BlobStore {
    /// Blobs in a local directory, created (with its parents) if missing.
    /// Writes are fsynced before they count as stored.
    pub fn local(dir: &FsPath) -> Result<Self, BlobError> {
        let io = |source| BlobError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let root = std::fs::canonicalize(dir).map_err(io)?;
        let store = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| BlobError::Config(format!("{}: {e}", root.display())))?
            .with_automatic_cleanup(true)
            .with_fsync(true);
        Ok(Self {
            store: Arc::new(store),
            prefix: Path::default(),
            description: format!("local filesystem at {}", root.display()),
            segment_size: DEFAULT_SEGMENT_SIZE,
        })
    }

    /// Blobs in an S3 bucket (AWS or any S3-compatible server). Nothing is
    /// contacted until the first request; call [`BlobStore::check`] at
    /// startup to find out whether the bucket is reachable.
    pub fn s3(cfg: S3Config) -> Result<Self, BlobError> {
        if cfg.bucket.is_empty() {
            return Err(BlobError::Config("S3 bucket name is empty".into()));
        }
        // object_store's HTTP client uses rustls with the process's default
        // crypto provider; careline uses ring. Fails harmlessly if a provider
        // is already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let prefix = Path::parse(cfg.prefix.trim_matches('/'))
            .map_err(|e| BlobError::Config(format!("S3 prefix {:?}: {e}", cfg.prefix)))?;
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&cfg.bucket)
            .with_region(&cfg.region)
            .with_access_key_id(&cfg.access_key_id)
            .with_secret_access_key(&cfg.secret_access_key)
            .with_allow_http(cfg.allow_http)
            .with_virtual_hosted_style_request(false)
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: std::time::Duration::from_secs(30),
                ..RetryConfig::default()
            });
        let place = match &cfg.endpoint {
            Some(endpoint) => {
                builder = builder.with_endpoint(endpoint);
                format!("at endpoint {}", config::redact_endpoint(endpoint))
            }
            None => format!("in AWS region {}", cfg.region),
        };
        let store = builder
            .build()
            .map_err(|e| BlobError::Config(format!("S3 bucket {}: {e}", cfg.bucket)))?;
        let under = if prefix.is_root() {
            String::new()
        } else {
            format!(" under {prefix}/")
        };
        Ok(Self {
            store: Arc::new(store),
            prefix,
            description: format!("S3 bucket {} {place}{under}", cfg.bucket),
            segment_size: DEFAULT_SEGMENT_SIZE,
        })
    }

    /// A store from careline's `blob_store` setting:
    ///
    /// - `""` or `"local"`: `<data_dir>/blobs`;
    /// - `file:///absolute/path`: that directory;
    /// - `s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1`:
    ///   an S3 bucket (`endpoint` omitted: AWS; `region` omitted: `AWS_REGION`
    ///   or `us-east-1`; `allow_http` defaults to whether the endpoint is
    ///   `http://`), with credentials from `CARELINE_S3_ACCESS_KEY_ID` and
    ///   `CARELINE_S3_SECRET_ACCESS_KEY`, else `AWS_ACCESS_KEY_ID` and
    ///   `AWS_SECRET_ACCESS_KEY`. Credentials in the URL are refused.
    pub fn from_url(url: &str, data_dir: &FsPath) -> Result<Self, BlobError> {
        Self::from_url_with_env(url, data_dir, |name| std::env::var(name).ok())
    }

    /// [`BlobStore::from_url`] with environment variables looked up by `env`.
    pub fn from_url_with_env(
        url: &str,
        data_dir: &FsPath,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, BlobError> {
        match config::parse(url, data_dir, &env)? {
            config::Target::Local(dir) => Self::local(&dir),
            config::Target::S3(cfg) => Self::s3(cfg),
        }
    }

    /// Which store this is, for logs and messages, without secrets: `local
    /// filesystem at /var/lib/careline/blobs`, `S3 bucket b at endpoint
    /// http://127.0.0.1:9000 under careline/`.
    pub fn describe(&self) -> String {
        self.description.clone()
    }

    /// Encrypts and stores the plaintext file at `path` for `org` under `key`
    /// and `aad` (see the crate docs for what the AAD should be), unless an
    /// object with the same content address exists already. The file is read
    /// twice and never held whole in memory.
    ///
    /// `org` is a namespace: 1 to 128 ASCII letters, digits, `-`, `_` or
    /// `.`, not starting with `.`.
    pub async fn put_file(
        &self,
        org: &str,
        path: &FsPath,
        key: &DataKey,
        aad: &[u8],
    ) -> Result<BlobRef, BlobError> {
        check_org(org)?;
        let (sha256, size) = hash_file(path).await?;
        let location = format!("{org}/{sha256}");
        let object = self.object_path(&location)?;

        if self.head(&object, &location).await?.is_some() {
            let stored_size = self
                .verify_existing(&object, &location, size, key, aad)
                .await?;
            tracing::debug!(store = %self.description, %location, size, "blob already stored");
            return Ok(BlobRef {
                sha256,
                size,
                stored_size,
                location,
                written: false,
            });
        }

        let mut sealer = SegmentSealer::with_segment_size(key, aad, size, self.segment_size)?;
        let stored_size = sealer.layout().sealed_len();
        let mut reader = PlainReader::open(path, &sha256).await?;
        if stored_size <= PART_SIZE as u64 {
            let mut parts = vec![Bytes::copy_from_slice(sealer.header())];
            while let Some(segment) = reader.next_segment(&mut sealer).await? {
                parts.push(segment);
            }
            reader.finish().await?;
            self.store
                .put(&object, parts.into_iter().collect::<PutPayload>())
                .await
                .map_err(|e| self.store_error("put", &location, e))?;
        } else {
            let upload = self
                .store
                .put_multipart(&object)
                .await
                .map_err(|e| self.store_error("upload", &location, e))?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            let written = self
                .write_parts(&mut writer, &mut sealer, &mut reader, &location)
                .await;
            if let Err(e) = written {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(store = %self.description, %location, error = %abort, "could not abort multipart upload");
                }
                return Err(e);
            }
            writer
                .finish()
                .await
                .map_err(|e| self.store_error("upload", &location, e))?;
        }
        tracing::debug!(store = %self.description, %location, size, stored_size, "blob stored");
        Ok(BlobRef {
            sha256,
            size,
            stored_size,
            location,
            written: true,
        })
    }

    async fn write_parts(
        &self,
        writer: &mut WriteMultipart,
        sealer: &mut SegmentSealer,
        reader: &mut PlainReader,
        location: &str,
    ) -> Result<(), BlobError> {
        writer.put(Bytes::copy_from_slice(sealer.header()));
        while let Some(segment) = reader.next_segment(sealer).await? {
            writer
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(|e| self.store_error("upload", location, e))?;
            writer.put(segment);
        }
        // Completing the upload is what makes the object appear, so a file
        // that changed under us is never stored.
        reader.finish().await
    }

    /// Checks that an existing object at a content address opens with this
    /// key and AAD and has the expected length.
    async fn verify_existing(
        &self,
        object: &Path,
        location: &str,
        size: u64,
        key: &DataKey,
        aad: &[u8],
    ) -> Result<u64, BlobError> {
        let conflict = || BlobError::Conflict {
            location: location.to_owned(),
        };
        let (opener, stored_size) = match self.read_header(object, location, key, aad).await {
            Ok(found) => found,
            Err(BlobError::Integrity { .. }) => return Err(conflict()),
            Err(e) => return Err(e),
        };
        let layout = opener.layout();
        if layout.plain_len() != size || layout.sealed_len() != stored_size {
            return Err(conflict());
        }
        let mut reader = SegmentReader::new(self, object.clone(), location, opener, 0..0, 0);
        match reader.next_chunk().await {
            Ok(_) => Ok(stored_size),
            Err(BlobError::Integrity { .. }) => Err(conflict()),
            Err(e) => Err(e),
        }
    }

    /// Plaintext of the blob at `location`, or of bytes `range` of it, as a
    /// stream of verified chunks. Only the segments covering the range are
    /// fetched. Fails with [`BlobError::NotFound`], with
    /// [`BlobError::RangeNotSatisfiable`] for a range past the end, and with
    /// [`BlobError::Integrity`] for the wrong key or AAD or a modified or
    /// truncated object (later segments that fail end the stream with that
    /// error instead).
    pub async fn open(
        &self,
        location: &str,
        key: &DataKey,
        aad: &[u8],
        range: Option<Range<u64>>,
    ) -> Result<BlobStream, BlobError> {
        let object = self.object_path(location)?;
        let (opener, stored_size) = self.read_header(&object, location, key, aad).await?;
        let layout = opener.layout();
        if stored_size != layout.sealed_len() {
            return Err(integrity(
                location,
                format!(
                    "stored object is {stored_size} bytes but its header implies {}",
                    layout.sealed_len()
                ),
            ));
        }
        let total = layout.plain_len();
        let range = range.unwrap_or(0..total);
        if range.start > range.end || range.end > total {
            return Err(BlobError::RangeNotSatisfiable { range, size: total });
        }
        let (first, end) = match layout.segment_range_for(range.clone()) {
            Some(span) => (span.segments.start, span.segments.end),
            // An empty range still proves the key and AAD on one segment.
            None => {
                let at = layout
                    .segment_of(range.start)
                    .unwrap_or(layout.segment_count().saturating_sub(1));
                (at, at + 1)
            }
        };
        let mut reader = SegmentReader::new(self, object, location, opener, range.clone(), first);
        reader.end = end;
        let head = reader.next_chunk().await?.filter(|b| !b.is_empty());
        let rest = stream::try_unfold(reader, |mut reader| async move {
            Ok(reader.next_chunk().await?.map(|chunk| (chunk, reader)))
        });
        Ok(BlobStream {
            inner: stream::iter(head.map(Ok)).chain(rest).boxed(),
            range,
            total,
        })
    }

    /// Size of the stored (encrypted) object, or `None` if there is none.
    pub async fn stored_size(&self, location: &str) -> Result<Option<u64>, BlobError> {
        let object = self.object_path(location)?;
        self.head(&object, location).await
    }

    /// Deletes the object at `location`; deleting a missing object succeeds.
    /// Deduplicated attachments share objects: delete only once no
    /// attachment refers to it.
    pub async fn delete(&self, location: &str) -> Result<(), BlobError> {
        let object = self.object_path(location)?;
        match self.store.delete(&object).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.store_error("delete", location, e)),
        }
    }

    /// Startup check: writes, reads back and deletes a small probe object.
    /// Fails with [`BlobError::Unavailable`] naming the store and the step.
    pub async fn check(&self) -> Result<(), BlobError> {
        let nonce: [u8; 8] = random()?;
        // Organization names cannot start with '.', so this never collides.
        let probe = self
            .prefix
            .clone()
            .join(format!(".careline-check-{}", hex::encode(nonce)).as_str());
        let body = Bytes::from_static(b"careline blob store check");
        let failed = |step: &'static str, source: Box<dyn std::error::Error + Send + Sync>| {
            BlobError::Unavailable {
                store: self.description.clone(),
                step,
                source,
            }
        };
        self.store
            .put(&probe, body.clone().into())
            .await
            .map_err(|e| failed("write", e.into()))?;
        let read = match self.store.get(&probe).await {
            Ok(got) => got.bytes().await,
            Err(e) => Err(e),
        };
        let delete = self.store.delete(&probe).await;
        match read {
            Ok(bytes) if bytes == body => {}
            Ok(_) => return Err(failed("read", "probe object came back different".into())),
            Err(e) => return Err(failed("read", e.into())),
        }
        delete.map_err(|e| failed("delete", e.into()))
    }

    fn object_path(&self, location: &str) -> Result<Path, BlobError> {
        let invalid = |reason| BlobError::InvalidName {
            what: "location",
            value: location.chars().take(200).collect(),
            reason,
        };
        let (org, sha) = location
            .split_once('/')
            .ok_or_else(|| invalid("expected <org>/<sha256 hex>"))?;
        check_org(org).map_err(|_| invalid("organization part is not a valid name"))?;
        if sha.len() != 64 || !sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid("expected 64 lowercase hex digits after the '/'"));
        }
        Ok(self.prefix.clone().join(org).join(sha))
    }

    async fn head(&self, object: &Path, location: &str) -> Result<Option<u64>, BlobError> {
        match self.store.head(object).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.store_error("head", location, e)),
        }
    }

    /// Fetches and parses the header; returns the opener and the object's
    /// stored size.
    async fn read_header(
        &self,
        object: &Path,
        location: &str,
        key: &DataKey,
        aad: &[u8],
    ) -> Result<(SegmentOpener, u64), BlobError> {
        let options = GetOptions::new().with_range(Some(0..STREAM_HEADER_LEN as u64));
        let got = match self.store.get_opts(object, options).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(BlobError::NotFound(location.to_owned()));
            }
            Err(e) => {
                // A range past the end of a truncated object fails in a
                // store-specific way; tell truncation apart by its size.
                if let Ok(Some(size)) = self.head(object, location).await
                    && size < STREAM_HEADER_LEN as u64
                {
                    return Err(integrity(
                        location,
                        format!("stored object is only {size} bytes"),
                    ));
                }
                return Err(self.store_error("get", location, e));
            }
        };
        let stored_size = got.meta.size;
        let header = got
            .bytes()
            .await
            .map_err(|e| self.store_error("get", location, e))?;
        let opener = SegmentOpener::new(key, &header, aad)
            .map_err(|e| integrity(location, format!("header: {e}")))?;
        Ok((opener, stored_size))
    }

    fn store_error(
        &self,
        op: &'static str,
        location: &str,
        source: object_store::Error,
    ) -> BlobError {
        match source {
            object_store::Error::NotFound { .. } => BlobError::NotFound(location.to_owned()),
            source => BlobError::Store {
                store: self.description.clone(),
                op,
                location: location.to_owned(),
                source: Box::new(source),
            },
        }
    }

    /// Raw access to stored objects, for tests that inspect or damage them.
    #[cfg(feature = "testing")]
    pub async fn read_stored(&self, location: &str) -> Result<Bytes, BlobError> {
        let object = self.object_path(location)?;
        let got = self
            .store
            .get(&object)
            .await
            .map_err(|e| self.store_error("get", location, e))?;
        got.bytes()
            .await
            .map_err(|e| self.store_error("get", location, e))
    }

    /// Replaces a stored object's bytes, for tests that damage it.
    #[cfg(feature = "testing")]
    pub async fn write_stored(&self, location: &str, bytes: Bytes) -> Result<(), BlobError> {
        let object = self.object_path(location)?;
        self.store
            .put(&object, bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| self.store_error("put", location, e))
    }
}

fn integrity(location: &str, reason: impl Into<String>) -> BlobError {
    BlobError::Integrity {
        location: location.to_owned(),
        reason: reason.into(),
    }
}

fn random<const N: usize>() -> Result<[u8; N], BlobError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| BlobError::Crypto(CryptoError::Rng(e)))?;
    Ok(out)
}

fn check_org(org: &str) -> Result<(), BlobError> {
    let invalid = |reason| BlobError::InvalidName {
        what: "organization",
        value: org.chars().take(200).collect(),
        reason,
    };
    if org.is_empty() || org.len() > 128 {
        return Err(invalid("must be 1 to 128 characters"));
    }
    if org.starts_with('.') {
        return Err(invalid("must not start with '.'"));
    }
    if !org
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(invalid(
            "may hold only ASCII letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(())
}

fn io_error(path: &FsPath) -> impl Fn(std::io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// First pass: SHA-256 (lowercase hex) and length of a file.
async fn hash_file(path: &FsPath) -> Result<(String, u64), BlobError> {
    let mut file = tokio::fs::File::open(path).await.map_err(io_error(path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; HASH_BUFFER];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buffer).await.map_err(io_error(path))?;
        let Some(read) = buffer.get(..n).filter(|r| !r.is_empty()) else {
            break;
        };
        hasher.update(read);
        len += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), len))
}

/// Second pass: reads the file one segment at a time, hashing again to make
/// sure it is the content that was addressed.
struct PlainReader {
    file: tokio::fs::File,
    path: std::path::PathBuf,
    hasher: Sha256,
    expected: String,
    buffer: Vec<u8>,
}

impl PlainReader {
    async fn open(path: &FsPath, sha256: &str) -> Result<Self, BlobError> {
        let file = tokio::fs::File::open(path).await.map_err(io_error(path))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            hasher: Sha256::new(),
            expected: sha256.to_owned(),
            buffer: Vec::new(),
        })
    }

    /// Reads and seals the next segment, or `None` once all are sealed.
    async fn next_segment(
        &mut self,
        sealer: &mut SegmentSealer,
    ) -> Result<Option<Bytes>, BlobError> {
        let Some(len) = sealer.next_len() else {
            return Ok(None);
        };
        let len = usize::try_from(len).map_err(|_| BlobError::FileChanged(self.path.clone()))?;
        self.buffer.resize(len, 0);
        let mut filled = 0;
        while let Some(rest) = self.buffer.get_mut(filled..).filter(|r| !r.is_empty()) {
            let n = self.file.read(rest).await.map_err(io_error(&self.path))?;
            if n == 0 {
                return Err(BlobError::FileChanged(self.path.clone()));
            }
            filled += n;
        }
        self.hasher.update(&self.buffer);
        Ok(Some(Bytes::from(sealer.seal_segment(&self.buffer)?)))
    }

    /// Checks the file ended where it did in the first pass, with the same
    /// content.
    async fn finish(&mut self) -> Result<(), BlobError> {
        let mut probe = [0u8; 1];
        let extra = self
            .file
            .read(&mut probe)
            .await
            .map_err(io_error(&self.path))?;
        let hash = hex::encode(std::mem::take(&mut self.hasher).finalize());
        if extra != 0 || hash != self.expected {
            return Err(BlobError::FileChanged(self.path.clone()));
        }
        Ok(())
    }
}

/// Fetches, verifies and trims the segments of one read.
struct SegmentReader {
    store: Arc<dyn ObjectStore>,
    object: Path,
    location: String,
    opener: SegmentOpener,
    layout: SegmentLayout,
    /// Plaintext bytes asked for.
    range: Range<u64>,
    /// Next segment to yield, and one past the last.
    next: u64,
    end: u64,
    /// Fetched ciphertext, starting at segment `next`.
    buffer: Bytes,
    description: String,
}

impl SegmentReader {
    fn new(
        blobs: &BlobStore,
        object: Path,
        location: &str,
        opener: SegmentOpener,
        range: Range<u64>,
        first: u64,
    ) -> Self {
        let layout = opener.layout();
        Self {
            store: Arc::clone(&blobs.store),
            object,
            location: location.to_owned(),
            opener,
            layout,
            range,
            next: first,
            end: first + 1,
            buffer: Bytes::new(),
            description: blobs.description.clone(),
        }
    }

    /// The next segment's plaintext, cut to the range; `None` at the end.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, BlobError> {
        if self.next >= self.end {
            return Ok(None);
        }
        let location = self.location.clone();
        let bad = |reason: &str| integrity(&location, reason.to_owned());
        let sealed = self
            .layout
            .segment_sealed_range(self.next)
            .ok_or_else(|| bad("segment index past the end"))?;
        if self.buffer.is_empty() {
            self.fetch(sealed.start).await?;
        }
        let len = usize::try_from(sealed.end - sealed.start)
            .map_err(|_| bad("segment too long for this platform"))?;
        if self.buffer.len() < len {
            return Err(bad("stored object is shorter than its header says"));
        }
        let segment = self.buffer.split_to(len);
        let plain = self
            .opener
            .open_segment(self.next, &segment)
            .map_err(|e| {
                integrity(
                    &self.location,
                    match e {
                        CryptoError::DecryptionFailed => format!(
                            "segment {} failed authentication (wrong key or AAD, or the stored object was modified)",
                            self.next
                        ),
                        other => format!("segment {}: {other}", self.next),
                    },
                )
            })?;
        let held = self
            .layout
            .segment_plain_range(self.next)
            .ok_or_else(|| bad("segment index past the end"))?;
        self.next += 1;
        let from = self.range.start.clamp(held.start, held.end) - held.start;
        let to = self.range.end.clamp(held.start, held.end) - held.start;
        let (Ok(from), Ok(to)) = (usize::try_from(from), usize::try_from(to.max(from))) else {
            return Err(bad("segment too long for this platform"));
        };
        let plain = Bytes::from(plain);
        if to > plain.len() {
            return Err(bad("segment shorter than its layout"));
        }
        Ok(Some(plain.slice(from..to)))
    }

    /// Fetches segments `next..` up to about [`READ_BATCH`] bytes, in one
    /// request.
    async fn fetch(&mut self, start: u64) -> Result<(), BlobError> {
        let stride =
            u64::from(self.layout.segment_size()) + careline_crypto::SEGMENT_OVERHEAD as u64;
        let count = (READ_BATCH / stride).max(1);
        let last = (self.next + count).min(self.end) - 1;
        let end = self
            .layout
            .segment_sealed_range(last)
            .map(|r| r.end)
            .ok_or_else(|| integrity(&self.location, "segment index past the end"))?;
        let bytes = match self.store.get_range(&self.object, start..end).await {
            Ok(bytes) => bytes,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(BlobError::NotFound(self.location.clone()));
            }
            Err(e) => {
                return Err(BlobError::Store {
                    store: self.description.clone(),
                    op: "get",
                    location: self.location.clone(),
                    source: Box::new(e),
                });
            }
        };
        if bytes.len() as u64 != end - start {
            return Err(integrity(
                &self.location,
                "stored object is shorter than its header says",
            ));
        }
        self.buffer = bytes;
        Ok(())
    }
}

/// Verified plaintext of a blob or a range of it, chunk by chunk (at most
/// one 64 KiB segment each). Implements [`Stream`], so it can become an HTTP
/// response body directly. After an error it ends.
pub struct BlobStream {
    inner: BoxStream<'static, Result<Bytes, BlobError>>,
    range: Range<u64>,
    total: u64,
}

impl BlobStream {
    /// The plaintext bytes this stream yields (for `Content-Range`).
    pub fn range(&self) -> Range<u64> {
        self.range.clone()
    }

    /// How many bytes it yields (for `Content-Length`).
    pub fn len(&self) -> u64 {
        self.range.end - self.range.start
    }

    /// Whether it yields nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Plaintext length of the whole blob (the `/size` of `Content-Range`).
    pub fn total_len(&self) -> u64 {
        self.total
    }
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStream")
            .field("range", &self.range)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl Stream for BlobStream {
    type Item = Result<Bytes, BlobError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}
