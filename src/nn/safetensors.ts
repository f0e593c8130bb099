// The safetensors format (https://github.com/huggingface/safetensors), written and read here without
// dependencies: an 8-byte little-endian header length N, N bytes of JSON header
// {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}},
// then the raw little-endian tensor bytes, offsets relative to the end of the header. Python's
// `safetensors.numpy.load_file` / `safetensors.torch.load_file` read what this writes.
//
// Integrity: encodeSafetensors records a CRC32 (IEEE, as zlib / PNG) of each tensor's bytes in the
// metadata as `crc32.<name>` (8 lowercase hex digits), and decodeSafetensors verifies them, so a
// flipped bit, a zeroed or truncated data section, or a header whose offsets were swapped between two
// same-shape tensors is refused with the tensor named. Files without these keys (other writers,
// checkpoints from before the checksums) are read unchecked. Other readers see ordinary metadata.
//
// Files are written atomically: a temporary file in the same directory, fsync, rename over the
// target, fsync of the directory. A crash leaves either the old file or the new one.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import * as zlib from 'node:zlib';
import { endianness } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { TrimpiError, check, fmtShape } from '../gpu/errors.js';
import type { HostTensor } from './module.js';

const DTYPES = { F32: 'f32', I32: 'i32' } as const;
const CODES = { f32: 'F32', i32: 'I32' } as const;
/** Headers larger than this are refused (the format's own reader caps them at 100 MB). */
const MAX_HEADER = 100_000_000;

check(endianness() === 'LE', 'safetensors', () => 'this host is big-endian; safetensors data are little-endian and no byte swapping is implemented');

/** A decoded safetensors file. */
export interface Safetensors {
  /** The tensors by name, in the header's order. */
  tensors: Map<string, HostTensor>;
  /** `__metadata__` without the `crc32.<name>` checksum keys (verified by decodeSafetensors). */
  metadata: Record<string, string>;
  /** Whether the file carried a CRC32 for every tensor (all verified); false: no checksums at all. */
  checksummed: boolean;
}

/** Prefix of the metadata keys holding each tensor's CRC32. */
export const CRC_PREFIX = 'crc32.';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

const zlibCrc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;

/** CRC32 (IEEE 802.3, the zlib / PNG polynomial) of `bytes`, as an unsigned 32-bit integer. */
export function crc32(bytes: Uint8Array): number {
  if (zlibCrc32) return zlibCrc32(bytes) >>> 0; // native since Node 20.15 / 22.2
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function hex32(x: number): string {
  return x.toString(16).padStart(8, '0');
}

function bytesOf(t: HostTensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/**
 * The file's bytes: tensors in the map's order, header padded with spaces to 8-byte alignment, and
 * a `crc32.<name>` metadata entry per tensor (replacing any such keys in `metadata`) unless
 * `checksums` is false.
 */
export function encodeSafetensors(tensors: ReadonlyMap<string, HostTensor>, metadata: Record<string, string> = {}, opts: { checksums?: boolean } = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  const meta: Record<string, string> = {};
  for (const [k, v] of Object.entries(metadata)) if (!k.startsWith(CRC_PREFIX)) meta[k] = v;
  header.__metadata__ = meta;
  let offset = 0;
  for (const [name, t] of tensors) {
    check(name !== '__metadata__', 'encodeSafetensors', () => "'__metadata__' cannot name a tensor");
    const n = t.shape.reduce((a, b) => a * b, 1);
    check(t.data.length === n, 'encodeSafetensors', () => `tensor ${name}: shape ${fmtShape(t.shape)} needs ${n} values, got ${t.data.length}`);
    header[name] = { dtype: CODES[t.dtype], shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    if (opts.checksums ?? true) meta[CRC_PREFIX + name] = hex32(crc32(bytesOf(t)));
    offset += t.data.byteLength;
  }
  if (Object.keys(meta).length === 0) delete header.__metadata__;
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((Buffer.byteLength(json) + 8) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const t of tensors.values()) {
    out.set(bytesOf(t), at);
    at += t.data.byteLength;
  }
  return out;
}

/**
 * Parses safetensors bytes, checking the header thoroughly and each tensor's CRC32 when the file
 * records them; `source` names the file in errors.
 */
export function decodeSafetensors(bytes: Uint8Array, source = 'safetensors data'): Safetensors {
  const op = 'readSafetensors';
  const fail = (msg: string): never => {
    throw new TrimpiError(op, `${source}: ${msg}`);
  };
  if (bytes.length < 8) fail(`the file is ${bytes.length} bytes long, too short for the 8-byte header length (not a safetensors file?)`);
  const n = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true);
  if (n > BigInt(Math.min(MAX_HEADER, bytes.length - 8))) {
    fail(`the header length field says ${n} bytes but the file has ${bytes.length - 8} bytes after it (truncated, or not a safetensors file)`);
  }
  const headerLen = Number(n);
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 8, headerLen).toString('utf8'));
  } catch (e) {
    fail(`the header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('the header must be a JSON object');
  const start = 8 + headerLen;
  const dataLen = bytes.length - start;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, HostTensor>();
  const spans: [number, number, string][] = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null) fail('__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__.${k} must be a string, got ${JSON.stringify(v)}`);
        metadata[k] = v as string;
      }
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) fail(`tensor ${name}: the entry must be an object with dtype, shape and data_offsets`);
    const dtype = DTYPES[e.dtype as keyof typeof DTYPES];
    if (!dtype) fail(`tensor ${name} has dtype ${JSON.stringify(e.dtype)}; supported: ${Object.keys(DTYPES).join(', ')}`);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) fail(`tensor ${name}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isInteger(d) && d >= 0) || offs[0] > offs[1]) {
      fail(`tensor ${name}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offs)}`);
    }
    const [b, en] = offs as [number, number];
    const numel = (shape as number[]).reduce((a, d) => a * d, 1);
    if (en - b !== numel * 4) fail(`tensor ${name}: shape ${fmtShape(shape as number[])} of ${e.dtype} needs ${numel * 4} bytes but data_offsets [${b}, ${en}] span ${en - b}`);
    if (en > dataLen) fail(`tensor ${name}: data_offsets [${b}, ${en}] run past the end of the data (${dataLen} bytes; the file is truncated?)`);
    // copy: the data section need not be 4-byte aligned in the file buffer (and Buffer.slice would not copy)
    const raw = new Uint8Array(en - b);
    raw.set(bytes.subarray(start + b, start + en));
    const data = dtype === 'f32' ? new Float32Array(raw.buffer, 0, numel) : new Int32Array(raw.buffer, 0, numel);
    tensors.set(name, { dtype, shape: [...(shape as number[])], data });
    spans.push([b, en, name]);
  }
  // the format requires the data to be covered exactly, without holes or overlaps
  spans.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let at = 0;
  for (const [b, en, name] of spans) {
    if (b !== at) fail(`tensor ${name} starts at byte ${b} but the previous tensor ends at ${at} (${b < at ? 'overlap' : 'hole'} in the data)`);
    at = en;
  }
  if (at !== dataLen) fail(`the tensors cover ${at} bytes but the data section has ${dataLen} (trailing bytes: truncated write or corrupt header)`);
  // checksums: all or none (a file with some is a damaged header), each must match its tensor's bytes
  const crcKeys = Object.keys(metadata).filter((k) => k.startsWith(CRC_PREFIX));
  for (const k of crcKeys) {
    const name = k.slice(CRC_PREFIX.length);
    if (!tensors.has(name)) fail(`__metadata__.${k} is the checksum of a tensor '${name}' that the file does not have (corrupt header)`);
    if (!/^[0-9a-f]{8}$/.test(metadata[k])) fail(`__metadata__.${k} must be 8 lowercase hex digits, got ${JSON.stringify(metadata[k])}`);
  }
  if (crcKeys.length > 0) {
    for (const [name, t] of tensors) {
      const want = metadata[CRC_PREFIX + name];
      if (want === undefined) fail(`tensor ${name} has no ${CRC_PREFIX}${name} checksum while the other tensors have one (corrupt header)`);
      const got = hex32(crc32(bytesOf(t)));
      if (got !== want) fail(`tensor ${name} is corrupt: the CRC32 of its ${t.data.byteLength} bytes is ${got} but the file records ${want}`);
    }
    for (const k of crcKeys) delete metadata[k];
  }
  return { tensors, metadata, checksummed: crcKeys.length > 0 };
}

/**
 * Whether a file name is one of writeFileAtomic's temporaries (`.<name>.tmp-<pid>-<8 hex>`): left
 * behind only by a process killed mid-write, and safe to delete when no write is in flight.
 */
export function isAtomicTempName(name: string): boolean {
  return /^\..+\.tmp-\d+-[0-9a-f]{8}$/.test(name);
}

/** Writes `data` to `path` atomically (temporary file in the same directory, fsync, rename, directory fsync). */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  let fd = -1;
  try {
    fd = openSync(tmp, 'w', 0o644);
    for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, path);
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // already renamed or never created
    }
    throw new TrimpiError('writeFileAtomic', `could not write ${path}: ${(e as Error).message}`);
  }
  fsyncDir(dir); // make the rename itself durable
}

/**
 * Flushes a directory's entries (renames, creations, unlinks) to disk. Best effort: some platforms
 * (e.g. Windows) cannot fsync a directory, and there it does nothing.
 */
export function fsyncDir(dir: string): void {
  try {
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // directories cannot be fsynced here
  }
}

/** Encodes `tensors` (with their CRC32s, see encodeSafetensors) and writes the file atomically. */
export function writeSafetensors(path: string, tensors: ReadonlyMap<string, HostTensor>, metadata: Record<string, string> = {}): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

/** Reads and decodes a safetensors file (checksums verified when present); errors name the path. */
export function readSafetensors(path: string): Safetensors {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new TrimpiError('readSafetensors', `cannot read ${path}: ${(e as Error).message}`);
  }
  return decodeSafetensors(bytes, path);
}
