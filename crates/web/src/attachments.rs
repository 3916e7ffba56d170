//! Attachments over HTTP. An upload is streamed to a temporary file (never
//! whole in memory), its type decided from its content, its metadata
//! stripped, then sealed into the blob store and recorded `quarantined`.
//! The scanner worker takes it from there; only a clean verdict lets
//! `GET /attachments/{id}/content` serve it (invariant 7).

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiResult, Problem};
use crate::extract::Body;
use crate::views::AttachmentView;
use axum::Json;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use careline_attach::{Kind, Sniffer, check_declared, content_disposition, sanitize_filename};
use careline_blob::{BlobError, BlobStore, blob_aad};
use careline_core::Error;
use careline_core::attachment::Attachment;
use careline_core::ids::*;
use careline_core::model::Role;
use careline_store::NewAttachment;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;
use uuid::Uuid;

/// Where attachments go and the limits on them.
pub struct AttachmentConfig {
    pub blobs: BlobStore,
    /// Uploads are spooled here (under the data directory) and removed at once.
    pub spool: PathBuf,
    /// Largest file accepted.
    pub max_bytes: u64,
    /// Most files in one upload or one message.
    pub max_files: usize,
    /// The virus scanner; without one, files stay quarantined.
    pub scanner: Option<Arc<careline_attach::Scanner>>,
    /// Wakes the scanner when a file arrives.
    pub wake: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for AttachmentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachmentConfig")
            .field("blobs", &self.blobs.describe())
            .field("max_bytes", &self.max_bytes)
            .field("max_files", &self.max_files)
            .finish_non_exhaustive()
    }
}

/// Default largest file: 25 MB.
pub const DEFAULT_MAX_BYTES: u64 = 25 * 1024 * 1024;
/// Default most files per message.
pub const DEFAULT_MAX_FILES: usize = 10;

pub(crate) fn blob_error(e: BlobError) -> Error {
    if e.is_not_found() {
        Error::internal(format!("attachment bytes missing from the blob store: {e}"))
    } else if e.is_integrity() {
        Error::internal(format!("attachment failed its integrity check: {e}"))
    } else {
        Error::Unavailable(format!("the attachment store is not reachable: {e}"))
    }
}

fn io_error(e: std::io::Error) -> Error {
    Error::internal(format!("spooling an upload: {e}"))
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> Error {
    Error::invalid(format!(
        "the upload is not a valid multipart form: {}",
        e.body_text()
    ))
}

/// The caller may attach at most `max` files to one message.
pub fn check_count(s: &AppState, ids: &[Uuid]) -> Result<Vec<AttachmentId>, Error> {
    let max = s.attachments.max_files;
    if ids.len() > max {
        return Err(Error::TooLarge {
            rule: "too-many-attachments",
            detail: format!(
                "a message carries at most {max} files ({} given)",
                ids.len()
            ),
        });
    }
    Ok(ids.iter().map(|i| AttachmentId(*i)).collect())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// The member the files are about: required for staff and for a proxy
    /// acting for more than one member.
    pub member_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadList {
    pub items: Vec<AttachmentView>,
}

/// The SHA-256 of a file, read in blocks.
fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(buf.get(..n).unwrap_or_default());
    }
    Ok(hex::encode(h.finalize()))
}

/// Upload files (multipart, fields named `file`). Each is checked, stripped
/// of metadata, stored encrypted and quarantined until scanned.
#[utoipa::path(post, path = "/api/v1/attachments", tag = "attachments", security(("bearer" = [])),
    params(("member_id" = Option<Uuid>, Query, description = "The member the files are about: required for staff and for a proxy acting for more than one member.")),
    request_body(content_type = "multipart/form-data", content = crate::views::UploadForm, description = "one or more fields named `file`"),
    responses((status = 201, body = UploadList), (status = 404, body = Problem, description = "no such member"), (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
pub async fn upload(
    State(s): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<UploadQuery>,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<(StatusCode, Json<UploadList>)> {
    let member = match p.role {
        Role::Member | Role::Proxy => p.message_subject(q.member_id.map(MemberId))?,
        _ => MemberId(q.member_id.ok_or_else(|| {
            Error::invalid("member_id is required: the member the files are about")
        })?),
    };
    // Nothing is read or stored for someone who may not write to this member.
    s.store.reach_member(&p, member).await?;
    let mut form = form.map_err(|e| {
        Error::invalid(format!(
            "send the files as multipart/form-data, each in a field named 'file' ({})",
            e.body_text()
        ))
    })?;
    let cfg = s.attachments.clone();
    // All or nothing: every file is read and checked before any is stored,
    // and a refusal after that takes back what this request stored.
    let mut checked: Vec<Checked> = Vec::new();
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        if field.name() != Some("file") {
            return Err(Error::invalid(format!(
                "unexpected form field '{}': send each file in a field named 'file'",
                field.name().unwrap_or_default()
            ))
            .into());
        }
        if checked.len() >= cfg.max_files {
            return Err(Error::TooLarge {
                rule: "too-many-attachments",
                detail: format!(
                    "at most {} files at a time; none of these was stored",
                    cfg.max_files
                ),
            }
            .into());
        }
        checked.push(check_file(&cfg, field).await?);
    }
    if checked.is_empty() {
        return Err(
            Error::invalid("no file: send each file in a multipart field named 'file'").into(),
        );
    }
    let org = p.org_id.to_string();
    let key = s.store.blob_key(p.org_id).await?;
    let mut stored = Vec::with_capacity(checked.len());
    let mut files = Vec::with_capacity(checked.len());
    for c in checked {
        let put = cfg
            .blobs
            .put_file(&org, c.clean.path(), &key, &blob_aad(&org, &c.sha256))
            .await;
        let blob = match put {
            Ok(b) => b,
            Err(e) => {
                take_back(&cfg.blobs, &stored).await;
                return Err(blob_error(e).into());
            }
        };
        files.push(NewAttachment {
            member_id: member,
            file_name: c.name,
            content_type: c.kind.mime().into(),
            size: blob.size,
            sha256: blob.sha256.clone(),
            blob: blob.location.clone(),
            metadata_removed: c.removed,
        });
        stored.push(blob);
    }
    let recorded = match s.store.create_attachments(&p, files, s.clock.now()).await {
        Ok(r) => r,
        Err(e) => {
            take_back(&cfg.blobs, &stored).await;
            return Err(e.into());
        }
    };
    let items = recorded
        .iter()
        .map(|a| AttachmentView::new(a, p.role.is_staff()))
        .collect();
    cfg.wake.notify_one();
    Ok((StatusCode::CREATED, Json(UploadList { items })))
}

/// One uploaded file that passed every check, stripped, waiting to be stored.
struct Checked {
    /// The stripped file; removed when dropped.
    clean: tempfile::NamedTempFile,
    name: String,
    kind: Kind,
    sha256: String,
    /// What metadata was removed.
    removed: Vec<String>,
}

/// Reads one multipart file to a spool file within the size limit, decides
/// its type from its content, refuses what careline does not accept, and
/// strips its metadata. Nothing is stored.
async fn check_file(
    cfg: &AttachmentConfig,
    mut field: axum::extract::multipart::Field<'_>,
) -> Result<Checked, Error> {
    let declared = field.content_type().map(str::to_owned);
    let given_name = field.file_name().unwrap_or("attachment").to_owned();
    let spooled = tempfile::NamedTempFile::new_in(&cfg.spool).map_err(io_error)?;
    let mut out = tokio::fs::File::from_std(spooled.reopen().map_err(io_error)?);
    let mut sniffer = Sniffer::new();
    let mut size: u64 = 0;
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        size += chunk.len() as u64;
        if size > cfg.max_bytes {
            return Err(Error::TooLarge {
                rule: "attachment-too-large",
                detail: format!(
                    "\"{}\" is larger than the {} MB limit; no file of this upload was stored",
                    sanitize_filename(&given_name, Kind::Text),
                    cfg.max_bytes / (1024 * 1024)
                ),
            });
        }
        sniffer.update(&chunk);
        out.write_all(&chunk).await.map_err(io_error)?;
    }
    out.flush().await.map_err(io_error)?;
    drop(out);
    let detected = sniffer.finish();
    let Some(kind) = detected.kind() else {
        return Err(Error::Unsupported {
            rule: "attachment-type",
            detail: format!(
                "\"{}\" looks like {}; careline accepts JPEG, PNG, HEIC/HEIF and WebP images, PDF documents and plain text; no file of this upload was stored",
                sanitize_filename(&given_name, Kind::Text),
                detected.what()
            ),
        });
    };
    let name = sanitize_filename(&given_name, kind);
    if let Err(m) = check_declared(declared.as_deref(), kind) {
        return Err(Error::Unsupported {
            rule: "attachment-type-mismatch",
            detail: format!(
                "\"{name}\" was sent as {} but its content is {}; no file of this upload was stored",
                m.declared,
                kind.description()
            ),
        });
    }
    // Metadata (EXIF with GPS, XMP, comments) goes before anything is stored.
    let clean = tempfile::NamedTempFile::new_in(&cfg.spool).map_err(io_error)?;
    let (src, dst) = (spooled.path().to_owned(), clean.path().to_owned());
    let described = name.clone();
    let report =
        tokio::task::spawn_blocking(move || careline_attach::strip_metadata(kind, &src, &dst))
            .await
            .map_err(Error::internal)?
            .map_err(|e| {
                Error::invalid(format!(
                    "\"{described}\" cannot be read as {}: {e}",
                    kind.description()
                ))
            })?;
    drop(spooled);
    let path = clean.path().to_owned();
    let sha256 = tokio::task::spawn_blocking(move || sha256_file(&path))
        .await
        .map_err(Error::internal)?
        .map_err(io_error)?;
    Ok(Checked {
        clean,
        name,
        kind,
        sha256,
        removed: report.removed.iter().map(|r| (*r).to_owned()).collect(),
    })
}

/// Removes the objects this request wrote after the request was refused.
/// Objects that were stored already (the same content uploaded before) are
/// shared with earlier attachments and stay. A failure here leaves an
/// object no record points to, which is logged: it holds only ciphertext.
async fn take_back(blobs: &BlobStore, stored: &[careline_blob::BlobRef]) {
    for b in stored.iter().filter(|b| b.written) {
        if let Err(e) = blobs.delete(&b.location).await {
            tracing::warn!(location = %b.location, error = %e, "could not remove the blob of a refused upload");
        }
    }
}

/// An attachment's record and scan state.
#[utoipa::path(get, path = "/api/v1/attachments/{id}", tag = "attachments", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = AttachmentView), (status = 404, body = Problem)))]
pub async fn get_attachment(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<AttachmentView>> {
    let a = s.store.attachment(&p, AttachmentId(id)).await?;
    Ok(Json(AttachmentView::new(&a, p.role.is_staff())))
}

/// What a `Range` header asks of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: serve the whole file.
    Whole,
    /// One satisfiable byte range.
    Part(Range<u64>),
    /// A range outside the file (416).
    Unsatisfiable,
}

/// A `Range: bytes=…` header (one range) against a file of `size` bytes.
/// Several ranges or another unit are answered with the whole file, as
/// RFC 9110 allows.
pub fn parse_range(h: Option<&HeaderValue>, size: u64) -> RangeRequest {
    use RangeRequest::*;
    let Some(spec) = h
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Whole;
    };
    if spec.contains(',') {
        return Whole;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Unsatisfiable;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // A suffix: the last n bytes.
        return match b.parse::<u64>() {
            Ok(n) if n > 0 && size > 0 => Part(size.saturating_sub(n)..size),
            _ => Unsatisfiable,
        };
    }
    let Ok(start) = a.parse::<u64>() else {
        return Unsatisfiable;
    };
    let end = if b.is_empty() {
        size
    } else {
        match b.parse::<u64>() {
            Ok(last) => last.saturating_add(1).min(size),
            Err(_) => return Unsatisfiable,
        }
    };
    if start >= size || start >= end {
        Unsatisfiable
    } else {
        Part(start..end)
    }
}

/// Streams an attachment's bytes from the blob store.
async fn serve(s: &AppState, a: &Attachment, range: Option<Range<u64>>) -> Result<Response, Error> {
    let key = s.store.blob_key(a.org_id).await?;
    let org = a.org_id.to_string();
    let stream = s
        .attachments
        .blobs
        .open(&a.blob, &key, &blob_aad(&org, &a.sha256), range.clone())
        .await
        .map_err(blob_error)?;
    let (len, served, total) = (stream.len(), stream.range(), stream.total_len());
    let body = axum::body::Body::from_stream(stream.map(|r| r.map_err(std::io::Error::other)));
    let mut resp = body.into_response();
    let mut headers = vec![
        (header::CONTENT_TYPE, a.content_type.clone()),
        (header::CONTENT_LENGTH, len.to_string()),
        (
            header::CONTENT_DISPOSITION,
            content_disposition(&a.file_name),
        ),
        (header::ACCEPT_RANGES, "bytes".into()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".into()),
        (header::CACHE_CONTROL, "no-store".into()),
    ];
    if range.is_some() {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        headers.push((
            header::CONTENT_RANGE,
            format!(
                "bytes {}-{}/{total}",
                served.start,
                served.end.saturating_sub(1)
            ),
        ));
    }
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
    Ok(resp)
}

/// Download a released (clean) attachment; range requests are honoured and
/// every download is recorded as a read of the member's data.
#[utoipa::path(get, path = "/api/v1/attachments/{id}/content", tag = "attachments", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, description = "the file"), (status = 206, description = "part of the file"), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "not released: quarantined, scanning, failed or infected"), (status = 416, body = Problem)))]
pub async fn content(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let a = s
        .store
        .download_attachment(&p, AttachmentId(id), s.clock.now())
        .await?;
    let range = match parse_range(headers.get(header::RANGE), a.size) {
        RangeRequest::Whole => None,
        RangeRequest::Part(r) => Some(r),
        RangeRequest::Unsatisfiable => {
            let mut r = crate::error::problem(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range-not-satisfiable",
                "Range not satisfiable",
                format!("the file is {} bytes", a.size),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", a.size)) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    Ok(serve(&s, &a, range).await?)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// Why the file is needed (recorded).
    pub reason: String,
}

/// A privacy officer exports a file that was never released (infected, or
/// still quarantined), with a reason that is recorded.
#[utoipa::path(post, path = "/api/v1/attachments/{id}/export", tag = "attachments", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = ExportRequest, responses((status = 200, description = "the quarantined file"), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn export(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
    Body(req): Body<ExportRequest>,
) -> ApiResult<Response> {
    let a = s
        .store
        .export_attachment(&p, AttachmentId(id), &req.reason, s.clock.now())
        .await?;
    Ok(serve(&s, &a, None).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str, size: u64) -> RangeRequest {
        parse_range(
            Some(&HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static(""))),
            size,
        )
    }

    #[test]
    fn byte_ranges_follow_rfc_9110() {
        use RangeRequest::*;
        assert_eq!(parse_range(None, 10), Whole);
        assert_eq!(range("bytes=0-3", 10), Part(0..4));
        assert_eq!(range("bytes=5-", 10), Part(5..10));
        assert_eq!(range("bytes=-4", 10), Part(6..10));
        assert_eq!(range("bytes=-40", 10), Part(0..10));
        assert_eq!(range("bytes=8-100", 10), Part(8..10));
        assert_eq!(range("bytes=10-", 10), Unsatisfiable);
        assert_eq!(range("bytes=4-2", 10), Unsatisfiable);
        assert_eq!(range("bytes=x-2", 10), Unsatisfiable);
        assert_eq!(range("bytes=0-1,4-5", 10), Whole);
        assert_eq!(range("pages=1-2", 10), Whole);
    }
}
