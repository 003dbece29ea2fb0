//! Photos made small on the phone before anything leaves it, with the browser's own decoder
//! and encoder (`createImageBitmap` and a canvas): no image codec is shipped in the Wasm.
//! Drawing the picture again keeps only its pixels, so the camera's notes (location among
//! them) stay behind even at the original size.

use js_sys::{Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};

use crate::js;

/// A photo as it will be sent.
pub(crate) struct Photo {
    /// Its encoded bytes (a `Blob`).
    pub(crate) blob: JsValue,
    /// Their size.
    pub(crate) size: u64,
    /// `image/webp` where the browser really produces WebP, else `image/jpeg`.
    pub(crate) media_type: String,
    /// Its size in pixels.
    pub(crate) width: u16,
    /// Its size in pixels.
    pub(crate) height: u16,
    /// A tiny preview for the message itself (at most
    /// [`mesh::body::MAX_THUMBNAIL_BYTES`]; empty when none fits).
    pub(crate) thumbnail: Vec<u8>,
}

/// Quality of the sent photo (0 to 1).
const QUALITY: f64 = 0.82;
/// Thumbnail sizes (longest side) and qualities tried, largest first, until one fits.
const THUMBNAIL_SIDES: [u32; 3] = [40, 32, 24];
const THUMBNAIL_QUALITIES: [f64; 2] = [0.5, 0.3];

/// Decodes `file` (turned upright as its camera noted) and draws it again with its longest
/// side at most `longest` pixels (`None`: as taken).
pub(crate) async fn shrink(file: &web_sys::File, longest: Option<u32>) -> Result<Photo, String> {
    let options = Object::new();
    let _ = Reflect::set(&options, &"imageOrientation".into(), &"from-image".into());
    let bitmap = js::call_async(
        &js_sys::global(),
        "createImageBitmap",
        &[file.into(), options.into()],
    )
    .await
    .map_err(|_| "this picture could not be read".to_string())?;
    let result = draw_photo(&bitmap, longest).await;
    let _ = js::call(&bitmap, "close", &[]);
    result.map_err(|error| {
        js::error_message(&error).unwrap_or_else(|| "the browser could not draw it".into())
    })
}

async fn draw_photo(bitmap: &JsValue, longest: Option<u32>) -> Result<Photo, JsValue> {
    let width = number(bitmap, "width");
    let height = number(bitmap, "height");
    if width == 0 || height == 0 {
        return Err(JsValue::from_str("the picture is empty"));
    }
    let (w, h) = fit(width, height, longest.unwrap_or(u32::MAX));
    let blob = encode(bitmap, w, h, QUALITY).await?;
    let media_type = Reflect::get(&blob, &"type".into())?
        .as_string()
        .unwrap_or_default();
    let size = Reflect::get(&blob, &"size".into())?.as_f64().unwrap_or(0.0) as u64;
    let thumbnail = thumbnail(bitmap, width, height).await;
    Ok(Photo {
        blob,
        size,
        media_type,
        width: w.min(u32::from(u16::MAX)) as u16,
        height: h.min(u32::from(u16::MAX)) as u16,
        thumbnail,
    })
}

/// The size that keeps the proportions with the longest side at most `longest`.
fn fit(width: u32, height: u32, longest: u32) -> (u32, u32) {
    let side = width.max(height);
    if side <= longest {
        return (width, height);
    }
    let scale = f64::from(longest) / f64::from(side);
    let scaled = |n: u32| ((f64::from(n) * scale).round() as u32).max(1);
    (scaled(width), scaled(height))
}

async fn thumbnail(bitmap: &JsValue, width: u32, height: u32) -> Vec<u8> {
    for side in THUMBNAIL_SIDES {
        let (w, h) = fit(width, height, side);
        for quality in THUMBNAIL_QUALITIES {
            let Ok(blob) = encode(bitmap, w, h, quality).await else {
                return Vec::new();
            };
            let Ok(buffer) = js::call_async(&blob, "arrayBuffer", &[]).await else {
                return Vec::new();
            };
            let bytes = Uint8Array::new(&buffer).to_vec();
            if bytes.len() <= mesh::body::MAX_THUMBNAIL_BYTES {
                return bytes;
            }
        }
    }
    Vec::new()
}

/// Draws `bitmap` at `w` × `h` and encodes it: WebP where the browser really makes WebP (the
/// answer's type says), JPEG otherwise.
async fn encode(bitmap: &JsValue, w: u32, h: u32, quality: f64) -> Result<JsValue, JsValue> {
    let blob = draw(bitmap, w, h, "image/webp", quality).await?;
    if Reflect::get(&blob, &"type".into())?.as_string().as_deref() == Some("image/webp") {
        return Ok(blob);
    }
    draw(bitmap, w, h, "image/jpeg", quality).await
}

async fn draw(
    bitmap: &JsValue,
    w: u32,
    h: u32,
    media_type: &str,
    quality: f64,
) -> Result<JsValue, JsValue> {
    let global = js_sys::global();
    let offscreen = Reflect::get(&global, &"OffscreenCanvas".into())?;
    let canvas = if offscreen.is_function() {
        Reflect::construct(
            offscreen.unchecked_ref::<js_sys::Function>(),
            &js_sys::Array::of2(&w.into(), &h.into()),
        )?
    } else {
        let document = Reflect::get(&global, &"document".into())?;
        let canvas = js::call(&document, "createElement", &["canvas".into()])?;
        Reflect::set(&canvas, &"width".into(), &w.into())?;
        Reflect::set(&canvas, &"height".into(), &h.into())?;
        canvas
    };
    let context = js::call(&canvas, "getContext", &["2d".into()])?;
    Reflect::set(&context, &"imageSmoothingQuality".into(), &"high".into())?;
    js::call(
        &context,
        "drawImage",
        &[bitmap.clone(), 0.into(), 0.into(), w.into(), h.into()],
    )?;
    if offscreen.is_function() {
        let options = Object::new();
        Reflect::set(&options, &"type".into(), &media_type.into())?;
        Reflect::set(&options, &"quality".into(), &quality.into())?;
        return js::call_async(&canvas, "convertToBlob", &[options.into()]).await;
    }
    // An older browser: the canvas's callback form.
    let promise = js_sys::Promise::new(&mut |resolve, reject| {
        if js::call(
            &canvas,
            "toBlob",
            &[resolve.into(), media_type.into(), quality.into()],
        )
        .is_err()
        {
            let _ = reject.call0(&JsValue::NULL);
        }
    });
    let blob = wasm_bindgen_futures::JsFuture::from(promise).await?;
    if blob.is_null() {
        return Err(JsValue::from_str(
            "the browser could not encode the picture",
        ));
    }
    Ok(blob)
}

fn number(object: &JsValue, name: &str) -> u32 {
    Reflect::get(object, &name.into())
        .ok()
        .and_then(|n| n.as_f64())
        .unwrap_or(0.0) as u32
}
