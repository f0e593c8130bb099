// Contact sheets: sample images in a grid, each with a few lines of caption (e.g. its answer) drawn
// in a built-in 5x7 pixel font (upper-case; lower-case letters are drawn as capitals).
import type { RgbImage } from './png.js';

// 7 rows of 5 bits per glyph, most significant bit leftmost
const GLYPHS: Record<string, readonly number[]> = {
  A: [0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001],
  B: [0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110],
  C: [0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110],
  D: [0b11110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b11110],
  E: [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111],
  F: [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000],
  G: [0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111],
  H: [0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001],
  I: [0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110],
  J: [0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100],
  K: [0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001],
  L: [0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111],
  M: [0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001],
  N: [0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001],
  O: [0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110],
  P: [0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000],
  Q: [0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101],
  R: [0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001],
  S: [0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110],
  T: [0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100],
  U: [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110],
  V: [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100],
  W: [0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010],
  X: [0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001],
  Y: [0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100, 0b00100],
  Z: [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111],
  '0': [0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110],
  '1': [0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110],
  '2': [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111],
  '3': [0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110],
  '4': [0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010],
  '5': [0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110],
  '6': [0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110],
  '7': [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000],
  '8': [0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110],
  '9': [0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100],
  '-': [0, 0, 0, 0b11111, 0, 0, 0],
  _: [0, 0, 0, 0, 0, 0, 0b11111],
  '.': [0, 0, 0, 0, 0, 0b01100, 0b01100],
  ',': [0, 0, 0, 0, 0b01100, 0b00100, 0b01000],
  ':': [0, 0b01100, 0b01100, 0, 0b01100, 0b01100, 0],
  '?': [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0, 0b00100],
  '!': [0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0, 0b00100],
  '/': [0b00001, 0b00010, 0b00010, 0b00100, 0b01000, 0b01000, 0b10000],
  '(': [0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0b00100, 0b00010],
  ')': [0b01000, 0b00100, 0b00010, 0b00010, 0b00010, 0b00100, 0b01000],
  "'": [0b00100, 0b00100, 0b01000, 0, 0, 0, 0],
  '=': [0, 0, 0b11111, 0, 0b11111, 0, 0],
  '+': [0, 0b00100, 0b00100, 0b11111, 0b00100, 0b00100, 0],
  '*': [0, 0b00100, 0b10101, 0b01110, 0b10101, 0b00100, 0],
};

const ADVANCE = 6; // 5 pixels and a gap
const LINE = 9; // 7 pixels and a gap

/** Draws `text` into `img` at (x, y) (top-left of the first glyph), clipped to the image. */
export function drawText(img: RgbImage, x: number, y: number, text: string, color: readonly [number, number, number] = [20, 20, 20]): void {
  let cx = x;
  for (const ch of text.toUpperCase()) {
    const g = GLYPHS[ch];
    if (g) {
      for (let row = 0; row < 7; row++) {
        for (let col = 0; col < 5; col++) {
          if (!(g[row] & (1 << (4 - col)))) continue;
          const px = cx + col;
          const py = y + row;
          if (px < 0 || py < 0 || px >= img.width || py >= img.height) continue;
          const o = 3 * (py * img.width + px);
          img.rgb[o] = color[0];
          img.rgb[o + 1] = color[1];
          img.rgb[o + 2] = color[2];
        }
      }
    }
    cx += ADVANCE;
  }
}

/** Wraps text to lines of at most `chars` characters (words longer than that are cut). */
export function wrap(text: string, chars: number): string[] {
  const lines: string[] = [];
  let cur = '';
  for (const w of text.split(/\s+/).filter(Boolean)) {
    const word = w.length > chars ? w.slice(0, chars) : w;
    if (!cur) cur = word;
    else if (cur.length + 1 + word.length <= chars) cur += ` ${word}`;
    else {
      lines.push(cur);
      cur = word;
    }
  }
  if (cur) lines.push(cur);
  return lines;
}

/** One tile of a contact sheet: an image and its caption lines. */
export interface SheetTile {
  image: RgbImage;
  /** Caption lines (wrapped to the tile width; at most `captionLines` are drawn). */
  caption: string[];
}

/**
 * A grid of tiles: each image scaled up by `scale` (nearest neighbour) with its caption underneath,
 * on a white background.
 */
export function contactSheet(tiles: readonly SheetTile[], opts: { columns?: number; scale?: number; captionLines?: number } = {}): RgbImage {
  const scale = opts.scale ?? 2;
  const n = Math.max(1, tiles.length);
  const columns = Math.min(opts.columns ?? 6, n);
  const rows = Math.ceil(n / columns);
  const w0 = tiles[0]?.image.width ?? 64;
  const h0 = tiles[0]?.image.height ?? 64;
  const captionLines = opts.captionLines ?? 3;
  const pad = 6;
  const tileW = Math.max(w0 * scale, 16) + pad;
  const tileH = h0 * scale + captionLines * LINE + pad + 2;
  const img: RgbImage = { width: columns * tileW + pad, height: rows * tileH + pad, rgb: new Uint8Array((columns * tileW + pad) * (rows * tileH + pad) * 3).fill(255) };
  const chars = Math.floor((tileW - pad) / ADVANCE);
  tiles.forEach((t, k) => {
    const ox = pad + (k % columns) * tileW;
    const oy = pad + Math.floor(k / columns) * tileH;
    for (let y = 0; y < t.image.height * scale; y++) {
      for (let x = 0; x < t.image.width * scale; x++) {
        const s = 3 * (Math.floor(y / scale) * t.image.width + Math.floor(x / scale));
        const d = 3 * ((oy + y) * img.width + ox + x);
        img.rgb[d] = t.image.rgb[s];
        img.rgb[d + 1] = t.image.rgb[s + 1];
        img.rgb[d + 2] = t.image.rgb[s + 2];
      }
    }
    const lines = t.caption.flatMap((c) => wrap(c, chars)).slice(0, captionLines);
    lines.forEach((line, i) => drawText(img, ox, oy + t.image.height * scale + 3 + i * LINE, line));
  });
  return img;
}
