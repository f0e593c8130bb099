// PNG files, written and read with node:zlib only: 8-bit RGB out (filter "Sub" on every row, a fixed
// zlib level, so the same pixels always give the same bytes); 8-bit gray/RGB/RGBA, non-interlaced in.
import { deflateSync, inflateSync } from 'node:zlib';
import { TrimpiError, check } from '../../gpu/errors.js';
import { crc32 } from '../../nn/safetensors.js';

const SIGNATURE = Uint8Array.from([137, 80, 78, 71, 13, 10, 26, 10]);

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** An RGB image: `rgb` holds height*width*3 bytes, rows top to bottom. */
export interface RgbImage {
  width: number;
  height: number;
  rgb: Uint8Array;
}

/** Encodes 8-bit RGB pixels as a PNG file. */
export function encodePng(img: RgbImage): Uint8Array {
  const { width, height, rgb } = img;
  check(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0, 'encodePng', () => `bad size ${width}x${height}`);
  check(rgb.length === width * height * 3, 'encodePng', () => `expected ${width * height * 3} bytes for ${width}x${height} RGB, got ${rgb.length}`);
  const stride = width * 3;
  const raw = new Uint8Array((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    const o = y * (stride + 1);
    const s = y * stride;
    raw[o] = 1; // Sub: each byte minus the byte one pixel to the left (cheap, good on smooth images)
    for (let x = 0; x < stride; x++) raw[o + 1 + x] = (rgb[s + x] - (x >= 3 ? rgb[s + x - 3] : 0)) & 0xff;
  }
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr.set([8, 2, 0, 0, 0], 8); // depth 8, color type 2 (RGB), deflate, adaptive filtering, no interlace
  const parts = [SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 6 })), chunk('IEND', new Uint8Array(0))];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Decodes an 8-bit, non-interlaced gray, RGB or RGBA PNG to RGB (alpha dropped). */
export function decodePng(file: Uint8Array): RgbImage {
  const op = 'decodePng';
  check(file.length > 8 && SIGNATURE.every((b, i) => file[i] === b), op, () => 'not a PNG file (bad signature)');
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  let pos = 8;
  let width = 0, height = 0, colorType = -1;
  const idat: Uint8Array[] = [];
  while (pos + 8 <= file.length) {
    const len = dv.getUint32(pos);
    const type = String.fromCharCode(...file.subarray(pos + 4, pos + 8));
    const data = file.subarray(pos + 8, pos + 8 + len);
    check(pos + 12 + len <= file.length, op, () => `truncated ${type} chunk`);
    check(crc32(file.subarray(pos + 4, pos + 8 + len)) === dv.getUint32(pos + 8 + len), op, () => `CRC mismatch in ${type} chunk`);
    if (type === 'IHDR') {
      const h = new DataView(data.buffer, data.byteOffset, data.byteLength);
      width = h.getUint32(0);
      height = h.getUint32(4);
      colorType = data[9];
      check(data[8] === 8, op, () => `only 8-bit PNGs are supported (bit depth ${data[8]})`);
      check(data[12] === 0, op, () => 'interlaced PNGs are not supported');
      check(colorType === 0 || colorType === 2 || colorType === 6, op, () => `unsupported color type ${colorType} (gray, RGB or RGBA expected)`);
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    pos += 12 + len;
  }
  check(width > 0 && idat.length > 0, op, () => 'missing IHDR or IDAT');
  const channels = colorType === 0 ? 1 : colorType === 2 ? 3 : 4;
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  check(raw.length >= (stride + 1) * height, op, () => 'image data too short');
  const px = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    const src = y * (stride + 1) + 1;
    const o = y * stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? px[o + x - channels] : 0;
      const b = y > 0 ? px[o - stride + x] : 0;
      const c = x >= channels && y > 0 ? px[o - stride + x - channels] : 0;
      const v = raw[src + x];
      let r: number;
      if (f === 0) r = v;
      else if (f === 1) r = v + a;
      else if (f === 2) r = v + b;
      else if (f === 3) r = v + ((a + b) >> 1);
      else if (f === 4) r = v + paeth(a, b, c);
      else throw new TrimpiError(op, `bad filter type ${f} on row ${y}`);
      px[o + x] = r & 0xff;
    }
  }
  if (channels === 3) return { width, height, rgb: px };
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    for (let k = 0; k < 3; k++) rgb[3 * i + k] = px[i * channels + (channels === 1 ? 0 : k)];
  }
  return { width, height, rgb };
}
