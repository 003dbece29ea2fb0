//! The regional map (`--map FILE.pmtiles`): tiles served whole, by address, with their type,
//! encoding and caching; its description for the app; bad addresses and bad files refused
//! with a clear error. The maps are real PMTiles files written by the `pmtiles` crate.

use std::path::Path;
use std::process::Command;

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use axum::Router;
use clap::Parser;
use pmtiles::{PmTilesWriter, TileCoord, TileType};
use server::map::RegionalMap;
use server::{app, AppState, Config};
use tower::ServiceExt;

/// A raster map of zoom 0 to 2 whose every tile is the PNG-looking bytes "tile Z/X/Y".
fn write_raster(path: &Path) {
    let file = std::fs::File::create(path).unwrap();
    let mut writer = PmTilesWriter::new(TileType::Png)
        .min_zoom(0)
        .max_zoom(2)
        .bounds(-10.0, 40.0, 10.0, 55.0)
        .center(2.35, 48.85)
        .center_zoom(1)
        .create(file)
        .unwrap();
    for z in 0..=2u8 {
        for x in 0..(1u32 << z) {
            for y in 0..(1u32 << z) {
                // The eastern half of zoom 2 is missing, as in a regional extract.
                if z == 2 && x >= 2 {
                    continue;
                }
                let coord = TileCoord::new(z, x, y).unwrap();
                writer
                    .add_tile(coord, format!("\u{89}PNG tile {z}/{x}/{y}").as_bytes())
                    .unwrap();
            }
        }
    }
    writer.finalize().unwrap();
}

/// The app over an empty data folder, with the map at `map`.
async fn app_with_map(dir: &Path, map: Option<&Path>) -> Router {
    let config = Config::parse_from(["fieldmesh", "--tls", "off"]);
    let (mut state, _shutdown) = AppState::new(&config, &dir.join("data")).unwrap();
    if let Some(map) = map {
        state.map = Some(std::sync::Arc::new(RegionalMap::open(map).await.unwrap()));
    }
    app(state)
}

async fn get(router: &Router, path: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let response = router
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = to_bytes(body, 1 << 20).await.unwrap().to_vec();
    (parts.status, parts.headers, bytes)
}

#[tokio::test]
async fn a_regional_map_is_served_tile_by_tile_with_what_the_app_needs_to_know() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("region.pmtiles");
    write_raster(&map);
    let router = app_with_map(dir.path(), Some(&map)).await;

    let (status, headers, body) = get(&router, "/map/tiles.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    let info = String::from_utf8(body).unwrap();
    assert!(
        info.starts_with(
            "{\"kind\":\"raster\",\"minzoom\":0,\"maxzoom\":2,\"bounds\":[-10,40,10,55]"
        ),
        "{info}"
    );

    for (path, want) in [
        ("/map/tiles/0/0/0", "tile 0/0/0"),
        ("/map/tiles/2/1/3.png", "tile 2/1/3"),
    ] {
        let (status, headers, body) = get(&router, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], "image/png");
        assert!(headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("max-age"));
        assert_eq!(
            headers.get(header::CONTENT_ENCODING),
            None,
            "PNG tiles are not compressed again"
        );
        assert_eq!(
            headers.get(header::ACCEPT_RANGES),
            None,
            "whole responses, no ranges"
        );
        assert!(String::from_utf8_lossy(&body).ends_with(want), "{path}");
    }
    // Outside the extract: not found; not a tile address: refused before anything is read.
    assert_eq!(
        get(&router, "/map/tiles/2/3/0").await.0,
        StatusCode::NOT_FOUND
    );
    for bad in [
        "/map/tiles/2/4/0",
        "/map/tiles/25/0/0",
        "/map/tiles/1/-1/0",
        "/map/tiles/x/0/0",
    ] {
        let (status, _, body) = get(&router, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            String::from_utf8_lossy(&body).contains("zoom 0 to 24"),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn without_a_map_the_map_routes_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let router = app_with_map(dir.path(), None).await;
    for path in ["/map/tiles.json", "/map/tiles/0/0/0"] {
        let (status, _, body) = get(&router, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            String::from_utf8_lossy(&body).contains("no regional map"),
            "{path}"
        );
    }
}

#[test]
fn a_file_that_is_not_a_map_stops_the_server_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_map = dir.path().join("notes.pmtiles");
    std::fs::write(
        &not_a_map,
        b"these are not tiles at all, just words on a page",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_fieldmesh"))
        .args([
            "--tls",
            "off",
            "--no-qr",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .arg("--map")
        .arg(&not_a_map)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("notes.pmtiles: not a PMTiles map"), "{said}");
    assert!(!said.contains("panicked"), "{said}");
}

#[tokio::test]
async fn vector_tiles_go_as_stored_with_their_gzip_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("vector.pmtiles");
    let file = std::fs::File::create(&map).unwrap();
    let mut writer = PmTilesWriter::new(TileType::Mvt)
        .max_zoom(0)
        .create(file)
        .unwrap();
    let tile = b"a vector tile's protobuf bytes, repeated to be worth compressing ".repeat(8);
    writer
        .add_tile(TileCoord::new(0, 0, 0).unwrap(), &tile)
        .unwrap();
    writer.finalize().unwrap();
    let router = app_with_map(dir.path(), Some(&map)).await;
    let (_, _, info) = get(&router, "/map/tiles.json").await;
    assert!(String::from_utf8_lossy(&info).starts_with("{\"kind\":\"vector\""));
    let (status, headers, body) = get(&router, "/map/tiles/0/0/0.pbf").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "application/vnd.mapbox-vector-tile"
    );
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain).unwrap();
    assert_eq!(plain, tile);
}

/// A solid PNG of 256 × 256 pixels in `rgb`: a tile a browser draws.
fn png(rgb: [u8; 3]) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    // Each row: filter type 0, then 256 pixels.
    let row: Vec<u8> = std::iter::once(0)
        .chain(rgb.iter().copied().cycle().take(256 * 3))
        .collect();
    let rows = row.repeat(256);
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut zlib, &rows).unwrap();
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend_from_slice(&256u32.to_be_bytes());
    header.extend_from_slice(&256u32.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &header);
    chunk(&mut out, b"IDAT", &zlib.finish().unwrap());
    chunk(&mut out, b"IEND", &[]);
    out
}

/// Every tile address of zoom 0 to `max_zoom`, in the order a writer takes them.
fn every_tile(max_zoom: u8) -> impl Iterator<Item = TileCoord> {
    (0..=max_zoom).flat_map(|z| {
        (0..(1u32 << z))
            .flat_map(move |x| (0..(1u32 << z)).map(move |y| TileCoord::new(z, x, y).unwrap()))
    })
}

/// A map of the browser tests: zoom 0 to 3 over western Europe, centred on London, every
/// tile `tile(address)`.
fn write_browser_tests_tiles(path: &Path, kind: TileType, tile: impl Fn(TileCoord) -> Vec<u8>) {
    let file = std::fs::File::create(path).unwrap();
    let mut writer = PmTilesWriter::new(kind)
        .max_zoom(3)
        .bounds(-11.25, 40.98, 11.25, 55.78)
        .center(-0.12, 51.5)
        .center_zoom(3)
        .create(file)
        .unwrap();
    for coord in every_tile(3) {
        writer.add_tile(coord, &tile(coord)).unwrap();
    }
    writer.finalize().unwrap();
}

/// The regional map the browser tests serve (`end2end/fixtures/region.pmtiles`): raster
/// tiles, each a solid colour by zoom.
fn write_browser_tests_map(path: &Path) {
    let colours = [[40, 60, 90], [50, 80, 60], [90, 70, 40], [60, 60, 100]];
    write_browser_tests_tiles(path, TileType::Png, |coord| {
        png(colours[usize::from(coord.z())])
    });
}

/// A Mapbox vector tile (version 2.1, extent 4096) in the Protomaps basemap's layers: land
/// (`earth`) over the whole tile and a lake (`water`) in its middle quarter. Written by hand
/// from the specification: a message of length-delimited layers, each with its name, one
/// polygon feature (a move, three lines and a close, in zigzag deltas) and its extent.
fn mvt_tile() -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }
    fn field(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
        varint(out, number << 3 | 2);
        varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
    fn zigzag(value: i32) -> u64 {
        u64::from(((value << 1) ^ (value >> 31)) as u32)
    }
    /// A square from (`from`, `from`) of side `side`, clockwise on screen (an outer ring).
    fn square(from: i32, side: i32) -> Vec<u8> {
        let mut commands = Vec::new();
        varint(&mut commands, 1 | 1 << 3); // move to, once
        varint(&mut commands, zigzag(from));
        varint(&mut commands, zigzag(from));
        varint(&mut commands, 2 | 3 << 3); // line to, three times
        for (dx, dy) in [(side, 0), (0, side), (-side, 0)] {
            varint(&mut commands, zigzag(dx));
            varint(&mut commands, zigzag(dy));
        }
        varint(&mut commands, 7 | 1 << 3); // close
        commands
    }
    let mut tile = Vec::new();
    for (name, geometry) in [("earth", square(0, 4096)), ("water", square(1024, 2048))] {
        let mut feature = Vec::new();
        varint(&mut feature, 3 << 3); // type: polygon
        varint(&mut feature, 3);
        field(&mut feature, 4, &geometry);
        let mut layer = Vec::new();
        varint(&mut layer, 15 << 3); // version 2
        varint(&mut layer, 2);
        field(&mut layer, 1, name.as_bytes());
        field(&mut layer, 2, &feature);
        varint(&mut layer, 5 << 3); // extent
        varint(&mut layer, 4096);
        field(&mut tile, 3, &layer);
    }
    tile
}

/// The vector regional map the browser tests serve (`end2end/fixtures/region-vector.pmtiles`):
/// every tile land with a lake in its middle.
fn write_browser_tests_vector_map(path: &Path) {
    let tile = mvt_tile();
    write_browser_tests_tiles(path, TileType::Mvt, |_| tile.clone());
}

/// Writes a map to a path.
type Writer = fn(&Path);

/// The browser tests' maps: (file name, writer).
const BROWSER_TESTS_MAPS: [(&str, Writer); 2] = [
    ("region.pmtiles", write_browser_tests_map),
    ("region-vector.pmtiles", write_browser_tests_vector_map),
];

/// `cargo test -p server --test map -- --ignored` writes the browser tests' maps again.
#[test]
#[ignore = "writes end2end/fixtures/region.pmtiles and region-vector.pmtiles"]
fn write_the_browser_tests_maps() {
    for (name, write) in BROWSER_TESTS_MAPS {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../end2end/fixtures")
            .join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write(&path);
    }
}

#[test]
fn the_browser_tests_maps_are_what_these_writers_make() {
    let dir = tempfile::tempdir().unwrap();
    for (name, write) in BROWSER_TESTS_MAPS {
        let made = dir.path().join(name);
        write(&made);
        let kept = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../end2end/fixtures")
            .join(name);
        assert!(
            std::fs::read(&made).ok() == std::fs::read(&kept).ok(),
            "end2end/fixtures/{name} is not what its writer makes: \
             run `cargo test -p server --test map -- --ignored` to write it again"
        );
    }
}

#[tokio::test]
async fn the_description_names_the_map_so_a_phone_drops_the_tiles_of_a_map_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let version = |info: &str| {
        let at = info.find("\"version\":\"").expect("a version") + 11;
        info[at..at + 16].to_string()
    };
    let first = dir.path().join("first.pmtiles");
    write_raster(&first);
    let (_, _, body) = get(
        &app_with_map(dir.path(), Some(&first)).await,
        "/map/tiles.json",
    )
    .await;
    let one = version(&String::from_utf8(body).unwrap());
    assert!(one.chars().all(|c| c.is_ascii_hexdigit()), "{one}");
    // The same map opened again: the same name (what a phone holds stays good).
    let (_, _, body) = get(
        &app_with_map(dir.path(), Some(&first)).await,
        "/map/tiles.json",
    )
    .await;
    assert_eq!(version(&String::from_utf8(body).unwrap()), one);
    // Another map in its place: another name.
    let second = dir.path().join("second.pmtiles");
    write_browser_tests_map(&second);
    std::fs::rename(&second, &first).unwrap();
    let (_, _, body) = get(
        &app_with_map(dir.path(), Some(&first)).await,
        "/map/tiles.json",
    )
    .await;
    assert_ne!(version(&String::from_utf8(body).unwrap()), one);
}
