// Decode an uploaded image file (PNG/JPEG/WebP, any size) to grey pixels in the browser.
// No Python image library is involved: the browser's decoder does the work.

const MAX_SIDE = 1600; // larger photos are scaled down (area-averaged by the browser)
const TYPES = ["image/png", "image/jpeg", "image/webp"];

export class ImageInputError extends Error {}

/**
 * @param {File} file
 * @returns {Promise<{pixels: Uint8Array, width: number, height: number}>}
 *   luminance 0-255; transparent areas become the background opposite to the ink.
 */
export async function decodeImageFile(file) {
  if (file.type && !TYPES.includes(file.type)) {
    throw new ImageInputError(`"${file.name}" is not a PNG, JPEG or WebP image.`);
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    throw new ImageInputError(`"${file.name}" could not be read as an image (is it a PNG, JPEG or WebP file?).`);
  }
  try {
    const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
    const width = Math.max(1, Math.round(bitmap.width * scale));
    const height = Math.max(1, Math.round(bitmap.height * scale));
    const canvas = new OffscreenCanvas(width, height);
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(bitmap, 0, 0, width, height);
    const rgba = ctx.getImageData(0, 0, width, height).data;
    return { pixels: toGrey(rgba), width, height };
  } finally {
    bitmap.close();
  }
}

function toGrey(rgba) {
  const n = rgba.length / 4;
  const lum = new Float32Array(n);
  let opaque = 0;
  let opaqueSum = 0;
  let transparent = 0;
  for (let i = 0; i < n; i++) {
    const r = rgba[4 * i], g = rgba[4 * i + 1], b = rgba[4 * i + 2], a = rgba[4 * i + 3];
    lum[i] = 0.299 * r + 0.587 * g + 0.114 * b;
    if (a >= 128) {
      opaque++;
      opaqueSum += lum[i];
    } else transparent++;
  }
  const out = new Uint8Array(n);
  if (transparent === 0) {
    for (let i = 0; i < n; i++) out[i] = Math.round(lum[i]);
    return out;
  }
  // Ink drawn on a transparent sheet: composite over the opposite of the ink's tone.
  const bg = opaque && opaqueSum / opaque > 127 ? 0 : 255;
  for (let i = 0; i < n; i++) {
    const a = rgba[4 * i + 3] / 255;
    out[i] = Math.round(lum[i] * a + bg * (1 - a));
  }
  return out;
}
