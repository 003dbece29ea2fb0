//! The operator's regional map: one PMTiles file downloaded before the disaster
//! (`--map FILE.pmtiles`), served tile by tile as whole responses (`/map/tiles/Z/X/Y`), which
//! the app's service worker keeps for offline use, with what the map needs to know about it
//! at `/map/tiles.json`. Without `--map` both answer 404 and the app shows its small world
//! map alone.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use pmtiles::{AsyncPmTilesReader, Compression, MmapBackend, TileCoord, TileType};

use crate::error::ServerError;
use crate::AppState;

/// Deepest zoom level a tile address may name (PMTiles allows 31; no map needs more).
const MAX_ZOOM: u8 = 24;
/// How long a browser may keep a tile without asking again: the file does not change while
/// the server runs.
const TILE_CACHE: &str = "public, max-age=604800";

/// An opened regional map.
pub struct RegionalMap {
    reader: AsyncPmTilesReader<MmapBackend>,
    /// `/map/tiles.json`, made once.
    info: String,
    /// The tiles' media type.
    media_type: &'static str,
    /// Their `Content-Encoding`, when stored compressed (vector tiles usually are, with gzip).
    encoding: Option<&'static str>,
}

impl RegionalMap {
    /// Opens `path` and checks it is a PMTiles v3 map of tiles a browser can show (vector
    /// tiles, PNG, JPEG or WebP). The file must not be changed while the server runs.
    pub async fn open(path: &Path) -> Result<Self, ServerError> {
        let refused =
            |why: String| ServerError::Refused(format!("--map {}: {why}", path.display()));
        let reader = AsyncPmTilesReader::new_with_path(path)
            .await
            .map_err(|error| refused(format!("not a PMTiles map ({error})")))?;
        let header = reader.get_header();
        let (kind, media_type) = match header.tile_type {
            TileType::Mvt => ("vector", "application/vnd.mapbox-vector-tile"),
            TileType::Png => ("raster", "image/png"),
            TileType::Jpeg => ("raster", "image/jpeg"),
            TileType::Webp => ("raster", "image/webp"),
            other => {
                return Err(refused(format!(
                    "its tiles are {other:?}, which browsers cannot show"
                )))
            }
        };
        let encoding = match header.tile_compression {
            Compression::None | Compression::Unknown => None,
            Compression::Gzip => Some("gzip"),
            Compression::Brotli => Some("br"),
            other => {
                return Err(refused(format!(
                    "its tiles are compressed with {other:?}, which browsers cannot open"
                )))
            }
        };
        let number = |value: f64| if value.is_finite() { value } else { 0.0 };
        let version = version_of(path).map_err(|error| refused(error.to_string()))?;
        let info = format!(
            "{{\"kind\":\"{kind}\",\"minzoom\":{},\"maxzoom\":{},\"bounds\":[{},{},{},{}],\"center\":[{},{},{}],\"version\":\"{version}\"}}",
            header.min_zoom,
            header.max_zoom.min(MAX_ZOOM),
            number(header.min_longitude),
            number(header.min_latitude),
            number(header.max_longitude),
            number(header.max_latitude),
            number(header.center_longitude),
            number(header.center_latitude),
            header.center_zoom,
        );
        tracing::info!(
            map = %path.display(),
            kind,
            minzoom = header.min_zoom,
            maxzoom = header.max_zoom,
            "regional map loaded"
        );
        Ok(Self {
            reader,
            info,
            media_type,
            encoding,
        })
    }
}

/// A name for the map file's contents, for phones to tell when the operator replaced it (their
/// kept tiles are then dropped): SHA-256 of its length, its modification time and its first
/// 16 KiB (the header and root directory, where every tile's place is written), in 16 hex
/// digits. Reading the whole file would make a start with a large map slow.
fn version_of(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    let mut hasher = Sha256::new();
    hasher.update(meta.len().to_le_bytes());
    if let Ok(since) = meta.modified().and_then(|m| {
        m.duration_since(std::time::UNIX_EPOCH)
            .map_err(std::io::Error::other)
    }) {
        hasher.update(since.as_nanos().to_le_bytes());
    }
    let mut start = Vec::with_capacity(16 * 1024);
    file.take(16 * 1024).read_to_end(&mut start)?;
    hasher.update(&start);
    Ok(mesh::hex::encode(&hasher.finalize()[..8]))
}

/// `/map/tiles.json` and `/map/tiles/Z/X/Y`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/map/tiles.json", get(info))
        .route("/map/tiles/{z}/{x}/{y}", get(tile))
}

async fn info(State(state): State<AppState>) -> Response {
    let Some(map) = state.map.as_ref() else {
        return (
            StatusCode::NOT_FOUND,
            "this server has no regional map (--map)",
        )
            .into_response();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        map.info.clone(),
    )
        .into_response()
}

async fn tile(
    State(state): State<AppState>,
    UrlPath((z, x, y)): UrlPath<(String, String, String)>,
) -> Response {
    let Some(map) = state.map.clone() else {
        return (
            StatusCode::NOT_FOUND,
            "this server has no regional map (--map)",
        )
            .into_response();
    };
    let Some(coord) = address(&z, &x, &y) else {
        return (
            StatusCode::BAD_REQUEST,
            "a tile is /map/tiles/Z/X/Y: zoom 0 to 24, X and Y below 2^Z",
        )
            .into_response();
    };
    tile_response(&map, coord).await
}

/// The tile at `coord`: its bytes as stored, or 404 where the map has none.
async fn tile_response(map: &Arc<RegionalMap>, coord: TileCoord) -> Response {
    match map.reader.get_tile(coord).await {
        Ok(Some(bytes)) => {
            let mut response = (
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(map.media_type),
                    ),
                    (header::CACHE_CONTROL, HeaderValue::from_static(TILE_CACHE)),
                ],
                bytes,
            )
                .into_response();
            if let Some(encoding) = map.encoding {
                response
                    .headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
            }
            response
        }
        Ok(None) => (StatusCode::NOT_FOUND, "no tile there").into_response(),
        Err(error) => {
            tracing::warn!(%error, "reading a map tile failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the map file could not be read",
            )
                .into_response()
        }
    }
}

/// A tile address from its three path segments (`Y` may end in a file extension, as map
/// libraries like to add): `None` when it is not one.
fn address(z: &str, x: &str, y: &str) -> Option<TileCoord> {
    let y = y.split_once('.').map_or(y, |(number, _)| number);
    let digits = |s: &str| !s.is_empty() && s.len() <= 8 && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(z) && digits(x) && digits(y)) {
        return None;
    }
    let z: u8 = z.parse().ok().filter(|z| *z <= MAX_ZOOM)?;
    let (x, y): (u32, u32) = (x.parse().ok()?, y.parse().ok()?);
    let side = 1u32 << z;
    if x >= side || y >= side {
        return None;
    }
    TileCoord::new(z, x, y).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_addresses_are_checked_before_anything_is_read() {
        let at = |z, x, y| address(z, x, y).map(|c| (c.z(), c.x(), c.y()));
        assert_eq!(at("0", "0", "0"), Some((0, 0, 0)));
        assert_eq!(at("14", "8185", "5447.pbf"), Some((14, 8185, 5447)));
        assert_eq!(at("2", "3", "3.png"), Some((2, 3, 3)));
        for (z, x, y) in [
            ("2", "4", "0"),
            ("2", "0", "4"),
            ("25", "0", "0"),
            ("-1", "0", "0"),
            ("1", "+1", "0"),
            ("1", "", "0"),
            ("99999999999", "0", "0"),
            ("3", "1", "1e3"),
            ("3", "1", "..%2f"),
        ] {
            assert_eq!(address(z, x, y).map(|c| c.z()), None, "{z}/{x}/{y}");
        }
    }
}
