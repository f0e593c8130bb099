// Checkpoints: a directory with
//   config.json                        the commit record: format, step, the model config, the LoRA
//                                      adapters (rank and alpha per adapted layer, when the model has
//                                      unmerged ones: their A and B are in the model file as
//                                      `<layer>.lora_A` / `<layer>.lora_B`), the names of the data
//                                      files below, the save's id and the caller's extra JSON
//   model-step<S>-<id>.safetensors     the parameters by dotted name (f32; Linear weights are (in, out))
//   optimizer-step<S>-<id>.safetensors AdamW moments `exp_avg.<name>` and `exp_avg_sq.<name>` and the
//                                      bias corrections `bias_correction` (when saved)
// (checkpoints written before versioned names use model.safetensors / optimizer.safetensors; the
// loader reads whatever names config.json lists, so both load).
//
// Crash safety. A save writes its data files under names no other save uses (step and a random id),
// each atomically (temporary file, fsync, rename, directory fsync), then commits by atomically
// replacing config.json (rename over the old one, directory fsync), and only then deletes the files
// of the previous checkpoint. At every instant config.json therefore names a complete set of files:
// a process killed at any point leaves either the previous checkpoint or the new one, whole. What a
// killed save leaves behind (its uncommitted data files or temporaries, or the previous
// checkpoint's files when it died after committing) is deleted at the start of the next save into
// the directory, so at most one save's worth of stale files exists. One writer per directory: two
// processes saving into the same directory at once would delete each other's files.
//
// Verified, all-or-nothing loading. Every file to be loaded is read and checked before the model or
// the optimizer is touched: the manifest; the model config (a valid VlmConfig equal to the model's);
// each file's step and save id against config.json; the CRC32 of every tensor's bytes (recorded in
// the safetensors metadata, see safetensors.ts; files without them load unchecked); names, shapes
// and dtypes against the model and the optimizer; every f32 value finite (second moments and bias
// corrections also in range). A refused load throws a TrimpiError naming the file and the tensor
// and leaves model and optimizer exactly as they were.
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { AdamW } from './optim.js';
import { noGrad } from '../tensor/autograd.js';
import { TrimpiError, check, describeValue, fmtShape } from '../gpu/errors.js';
import { tidy } from '../tensor/memory.js';
import { assign, tensor } from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import { LoraLayerConfig, loraLayers } from './lora.js';
import type { HostTensor, Module } from './module.js';
import { fsyncDir, isAtomicTempName, readSafetensors, writeFileAtomic, writeSafetensors } from './safetensors.js';
import { VisionLanguageModel, VlmConfig, validateConfig } from './vlm.js';

/** Any JSON value (the model config and the caller's extra data in config.json). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue };

/** The `format` field of config.json and the `trimpi` metadata entry of the data files. */
export const CHECKPOINT_FORMAT = 'trimpi-checkpoint';
/** The manifest version this build writes and reads. */
export const CHECKPOINT_VERSION = 1;
const CONFIG_FILE = 'config.json';
/**
 * Names of the data files a save writes: versioned, so no save overwrites another's. Only these are
 * deleted as stale; the unversioned names of older checkpoints (model.safetensors, which other tools
 * also use) only once a newer checkpoint committed over the one that listed them.
 */
const DATA_FILE = /^(model|optimizer)-step\d+-[0-9a-f]{8}\.safetensors$/;
const LEGACY_DATA_FILE = /^(model|optimizer)\.safetensors$/;
/** The optimizer file's tensor of bias corrections [1 - beta1^n, 1 - beta2^n]. */
const BIAS_CORRECTION = 'bias_correction';
/** Config fields that do not change the parameters' names or shapes (a checkpoint loads across them). */
const RUNTIME_ONLY = new Set(['seed', 'dropout', 'initStd']);

/** config.json. */
export interface CheckpointManifest {
  /** Always CHECKPOINT_FORMAT. */
  format: typeof CHECKPOINT_FORMAT;
  /** CHECKPOINT_VERSION of the writer. */
  version: number;
  /** Optimizer steps taken when saved. */
  step: number;
  /**
   * Unique id of the save (`step<S>-<8 hex>`), also in each data file's metadata as `checkpoint_id`:
   * loading checks they agree. Absent in checkpoints from before versioned file names.
   */
  id?: string;
  /** The model's config (VlmConfig for a VisionLanguageModel). */
  config: JsonValue;
  /**
   * Unmerged LoRA adapters (applyLora) by layer name, or null (none, or a checkpoint from before
   * adapters). Loading requires a model adapted the same way.
   */
  lora?: Record<string, LoraLayerConfig> | null;
  /** The data files, by name inside the checkpoint directory. */
  files: { model: string; optimizer: string | null };
  /** Optimizer hyperparameters at save time (informative). */
  optimizer: { lr: number; betas: [number, number]; eps: number; maxGradNorm: number } | null;
  /** The caller's extra JSON (SaveOptions.extra), or null. */
  extra: JsonValue;
}

/** Options of saveCheckpoint. */
export interface SaveOptions {
  /** The model's config (defaults to `model.config` when the model has one). */
  config?: JsonValue;
  /** Save the optimizer's moments, bias corrections and step too (needed to resume training). */
  optimizer?: AdamW;
  /** The step to record (default: the optimizer's step, else 0). */
  step?: number;
  /** Anything else to keep beside (data position, metrics, training options). */
  extra?: JsonValue;
}

/** A checkpoint directory argument: a non-empty path string. */
function checkDir(op: string, dir: unknown): asserts dir is string {
  check(typeof dir === 'string' && dir.length > 0 && !dir.includes('\0'), op,
    () => `dir must be a non-empty path to the checkpoint directory, got ${describeValue(dir)}`);
}

/**
 * Creates `dir` and its missing parents one level at a time (Node's recursive mkdir loops forever
 * under /proc, whose entries exist but refuse mkdir with ENOENT). Returns the first directory
 * created, or undefined when `dir` existed. Any failure is a TrimpiError naming the directory.
 */
function makeDir(op: string, dir: string): string | undefined {
  const missing: string[] = [];
  let at = resolve(dir);
  for (;;) {
    let isDir: boolean | null = null;
    try {
      isDir = statSync(at).isDirectory();
    } catch {
      // does not exist (or cannot be seen): create it after its parent
    }
    if (isDir === true) break;
    check(isDir === null, op, () => `cannot create the checkpoint directory ${dir}: ${at} exists and is not a directory`);
    missing.push(at);
    const parent = dirname(at);
    if (parent === at) break;
    at = parent;
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d);
    } catch (e) {
      throw new TrimpiError(op, `cannot create the checkpoint directory ${dir} (${(e as Error).message})`);
    }
  }
  return missing[0];
}

async function hostOf(t: Tensor): Promise<HostTensor> {
  return { dtype: t.dtype, shape: [...t.shape], data: await t.toArray() };
}

/** Tensor → its dotted name in the model, for the optimizer's state. */
function namesOf(model: Module): Map<Tensor, string> {
  return new Map(model.namedParameters().map(([n, p]) => [p.value, n]));
}

/**
 * Writes a checkpoint into `dir` (created if needed), replacing the one there crash-safely (see the
 * file comment). Reads the parameters back from the GPU first; the files are written only once
 * everything is on the host. A model with unmerged LoRA adapters is saved with them (and their
 * optimizer moments): load it into a model adapted the same way, or merge() before saving to get a
 * plain model.
 */
export async function saveCheckpoint(dir: string, model: Module, opts: SaveOptions = {}): Promise<CheckpointManifest> {
  const op = 'saveCheckpoint';
  checkDir(op, dir);
  check(model !== null && typeof model === 'object' && typeof (model as Module).namedParameters === 'function', op,
    () => `model must be a Module, got ${describeValue(model)}`);
  check(opts !== null && typeof opts === 'object', op, () => `options must be an object, got ${describeValue(opts)}`);
  // the directory first: a path that cannot hold a checkpoint fails before any GPU readback
  const created = makeDir(op, dir);
  const config = opts.config ?? (model instanceof VisionLanguageModel ? (model.config as unknown as JsonValue) : null);
  const step = opts.step ?? opts.optimizer?.step ?? 0;
  check(Number.isInteger(step) && step >= 0, op, () => `step must be a non-negative integer, got ${step}`);
  const params = new Map<string, HostTensor>();
  for (const [name, p] of model.namedParameters()) params.set(name, await hostOf(p.value));
  const opt = opts.optimizer;
  let state: Map<string, HostTensor> | null = null;
  if (opt) {
    const names = namesOf(model);
    state = new Map<string, HostTensor>();
    for (const p of opt.params) {
      const name = names.get(p);
      check(name !== undefined, op, () => `the optimizer holds a parameter ${p.describe()} that is not in the model`);
      const { m, v } = opt.moments(p);
      state.set(`exp_avg.${name}`, await hostOf(m));
      state.set(`exp_avg_sq.${name}`, await hostOf(v));
    }
    state.set(BIAS_CORRECTION, await hostOf(opt.biasCorrection));
  }
  const lora = loraLayers(model);
  return commit(dir, created, params, state, {
    format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, step, config,
    lora: Object.keys(lora).length > 0 ? lora : null,
    files: { model: '', optimizer: null },
    optimizer: opt ? { lr: opt.lr, betas: [...opt.betas], eps: opt.eps, maxGradNorm: opt.maxGradNorm } : null,
    extra: opts.extra ?? null,
  });
}

/** The data files config.json names now; null when it exists but cannot be read (then nothing is deleted). */
function liveFiles(dir: string): Set<string> | null {
  if (!existsSync(join(dir, CONFIG_FILE))) return new Set();
  try {
    const m = readManifest(dir);
    return new Set([m.files.model, ...(m.files.optimizer ? [m.files.optimizer] : [])]);
  } catch {
    return null;
  }
}

/** Deletes what killed saves left: temporaries of checkpoint files, and versioned data files config.json does not name. */
function removeStale(dir: string, live: Set<string> | null): void {
  let removed = false;
  for (const name of readdirSync(dir)) {
    const temp = isAtomicTempName(name) ? name.slice(1).replace(/\.tmp-\d+-[0-9a-f]{8}$/, '') : null;
    const stale = temp !== null ? DATA_FILE.test(temp) || LEGACY_DATA_FILE.test(temp) || temp === CONFIG_FILE : live !== null && DATA_FILE.test(name) && !live.has(name);
    if (!stale) continue;
    try {
      unlinkSync(join(dir, name));
      removed = true;
    } catch {
      // gone already
    }
  }
  if (removed) fsyncDir(dir);
}

/** Writes the data files under fresh names, commits config.json, then deletes the previous files. */
function commit(dir: string, createdEarlier: string | undefined, params: Map<string, HostTensor>, state: Map<string, HostTensor> | null, manifest: CheckpointManifest): CheckpointManifest {
  const created = makeDir('saveCheckpoint', dir) ?? createdEarlier;
  if (created !== undefined) fsyncDir(dirname(created));
  const live = liveFiles(dir);
  removeStale(dir, live);
  let id: string;
  do id = `step${manifest.step}-${randomBytes(4).toString('hex')}`;
  while (existsSync(join(dir, `model-${id}.safetensors`)) || existsSync(join(dir, `optimizer-${id}.safetensors`)));
  const files = { model: `model-${id}.safetensors`, optimizer: state ? `optimizer-${id}.safetensors` : null };
  const meta = { format: 'pt', trimpi: CHECKPOINT_FORMAT, step: String(manifest.step), checkpoint_id: id };
  writeSafetensors(join(dir, files.model), params, meta);
  if (state) writeSafetensors(join(dir, files.optimizer!), state, meta);
  const out: CheckpointManifest = { ...manifest, id, files };
  writeFileAtomic(join(dir, CONFIG_FILE), JSON.stringify(out, null, 2) + '\n'); // the commit point
  if (live) {
    let removed = false;
    for (const name of live) {
      if (name === files.model || name === files.optimizer) continue;
      try {
        unlinkSync(join(dir, name));
        removed = true;
      } catch {
        // already gone; anything left is removed by the next save
      }
    }
    if (removed) fsyncDir(dir);
  }
  return out;
}

/** A file name inside the checkpoint directory: no path separators, not `.` or `..`. */
function plainName(x: unknown): boolean {
  return typeof x === 'string' && x.length > 0 && x !== '.' && x !== '..' && !/[/\\]/.test(x);
}

/** Reads and checks config.json of a checkpoint directory. */
export function readManifest(dir: string): CheckpointManifest {
  const op = 'loadCheckpoint';
  checkDir(op, dir);
  const path = join(dir, CONFIG_FILE);
  check(existsSync(path), op, () => `${path} does not exist (not a checkpoint directory, or the save did not finish)`);
  let m: CheckpointManifest;
  try {
    m = JSON.parse(readFileSync(path, 'utf8')) as CheckpointManifest;
  } catch (e) {
    throw new TrimpiError(op, `${path} is not valid JSON (${(e as Error).message})`);
  }
  check(m && m.format === CHECKPOINT_FORMAT, op, () => `${path} is not a ${CHECKPOINT_FORMAT} manifest (format ${JSON.stringify(m?.format)})`);
  check(m.version === CHECKPOINT_VERSION, op, () => `${path} has version ${m.version}; this build reads version ${CHECKPOINT_VERSION}`);
  check(Number.isInteger(m.step) && m.step >= 0 && typeof m.files?.model === 'string', op, () => `${path} is missing its step or file list`);
  check(plainName(m.files.model) && (m.files.optimizer === null || m.files.optimizer === undefined || plainName(m.files.optimizer)), op,
    () => `${path} lists data files ${JSON.stringify(m.files)}: they must be plain file names inside the checkpoint directory`);
  m.files.optimizer ??= null;
  check(m.id === undefined || (typeof m.id === 'string' && m.id.length > 0), op, () => `${path} has an invalid id ${JSON.stringify(m.id)}`);
  return m;
}

/** Options of loadCheckpoint. */
export interface LoadOptions {
  /** Restore the optimizer's moments, bias corrections and step (the checkpoint must have them). */
  optimizer?: AdamW;
}

/**
 * Loads a checkpoint into `model` (names must match exactly, shapes and dtypes checked) and, with
 * `optimizer`, its moments, bias corrections and step. The model must have been built with the same
 * config: a VisionLanguageModel's config is validated and compared field by field first, for a clear
 * message. Every file is verified (see the file comment) before anything is changed: a refused load
 * throws a TrimpiError and leaves model and optimizer as they were. Checkpoints without checksums
 * (written before them) load with the other checks only.
 */
export function loadCheckpoint(dir: string, model: Module, opts: LoadOptions = {}): CheckpointManifest {
  const op = 'loadCheckpoint';
  check(model !== null && typeof model === 'object' && typeof (model as Module).namedParameters === 'function', op,
    () => `model must be a Module, got ${describeValue(model)}`);
  check(opts !== null && typeof opts === 'object', op, () => `options must be an object, got ${describeValue(opts)}`);
  const m = readManifest(dir);
  const own = model instanceof VisionLanguageModel ? model.config : null;
  if (own && m.config && typeof m.config === 'object') {
    checkVlmConfig(dir, m.config);
    const saved = m.config as Record<string, unknown>;
    // rotary positions have no table: the same weights serve a longer (or shorter) context
    const rope = own.positionEncoding === 'rope' && saved.positionEncoding === 'rope';
    const diffs = Object.keys(own).filter((k) => !RUNTIME_ONLY.has(k) && !(rope && k === 'maxPositions') && saved[k] !== (own as unknown as Record<string, unknown>)[k]);
    check(diffs.length === 0, op, () => `${dir} was saved from a model with a different config: ${diffs.map((k) => `${k} ${JSON.stringify(saved[k])} (the model has ${JSON.stringify((own as unknown as Record<string, unknown>)[k])})`).join(', ')}`);
  }
  checkLora(dir, m.lora ?? null, loraLayers(model));

  // 1. read and verify everything
  const modelPath = join(dir, m.files.model);
  const weights = readSafetensors(modelPath);
  checkFileMeta(modelPath, weights.metadata, m);
  checkStateDict(model, weights.tensors, modelPath);
  for (const [name, h] of weights.tensors) checkFinite(h, name, modelPath);
  const opt = opts.optimizer;
  const pending: [Tensor, 'm' | 'v', HostTensor][] = [];
  let biasCorrection: HostTensor | null = null;
  if (opt) {
    check(m.files.optimizer !== null, op, () => `${dir} has no optimizer state (it was saved without an optimizer): cannot resume training from it`);
    const optPath = join(dir, m.files.optimizer!);
    const state = readSafetensors(optPath);
    checkFileMeta(optPath, state.metadata, m);
    const names = namesOf(model);
    for (const p of opt.params) {
      const name = names.get(p);
      check(name !== undefined, op, () => `the optimizer holds a parameter ${p.describe()} that is not in the model`);
      for (const [key, which] of [[`exp_avg.${name}`, 'm'], [`exp_avg_sq.${name}`, 'v']] as const) {
        const h = state.tensors.get(key);
        check(h !== undefined, op, () => `${optPath} has no tensor ${key}`);
        check(h.dtype === 'f32' && h.shape.length === p.ndim && h.shape.every((d, i) => d === p.shape[i]), op,
          () => `tensor ${key} in ${optPath} has shape ${fmtShape(h.shape)} (${h.dtype}) but the parameter is ${fmtShape(p.shape)} (f32)`);
        checkFinite(h, key, optPath, which === 'v' ? 0 : undefined);
        pending.push([p, which, h]);
      }
    }
    biasCorrection = state.tensors.get(BIAS_CORRECTION) ?? null;
    if (biasCorrection) {
      const h = biasCorrection;
      check(h.dtype === 'f32' && h.shape.length === 1 && h.shape[0] === 2, op, () => `tensor ${BIAS_CORRECTION} in ${optPath} has shape ${fmtShape(h.shape)} (${h.dtype}); expected [2] (f32)`);
      checkFinite(h, BIAS_CORRECTION, optPath, 0, 1);
    } else {
      // a checkpoint from before the GPU-side bias corrections: every step was an applied update
      const [b1, b2] = opt.betas.map(Math.fround);
      biasCorrection = { dtype: 'f32', shape: [2], data: Float32Array.from([1 - b1 ** m.step, 1 - b2 ** m.step]) };
    }
  }

  // 2. nothing can fail from here on: copy
  model.loadStateDict(weights.tensors, { source: modelPath });
  if (opt) {
    const moments = pending.map(([p, which, h]) => [opt.moments(p)[which], h] as const);
    const bc = opt.biasCorrection;
    noGrad(() => tidy(() => {
      for (const [dst, h] of moments) assign(dst, tensor(h.data, { shape: h.shape, device: dst.device }));
      assign(bc, tensor(biasCorrection!.data, { shape: [2], device: bc.device }));
    }));
    opt.step = m.step;
  }
  return m;
}

/** The checks of Module.loadStateDict (strict), made before anything is copied. */
function checkStateDict(model: Module, state: ReadonlyMap<string, HostTensor>, path: string): void {
  const op = 'loadCheckpoint';
  const params = model.namedParameters();
  const expected = new Set(params.map(([n]) => n));
  const missing = params.map(([n]) => n).filter((n) => !state.has(n));
  check(missing.length === 0, op, () => `missing ${missing.length} tensor(s) in ${path}: ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', ...' : ''}`);
  const extra = [...state.keys()].filter((n) => !expected.has(n));
  check(extra.length === 0, op, () => `unexpected tensor(s) in ${path} that the model does not have: ${extra.slice(0, 8).join(', ')}${extra.length > 8 ? ', ...' : ''}`);
  for (const [name, p] of params) {
    const h = state.get(name)!;
    check(h.dtype === p.value.dtype, op, () => `tensor ${name} in ${path} has dtype ${h.dtype} but the model expects ${p.value.dtype}`);
    check(h.shape.length === p.value.ndim && h.shape.every((d, i) => d === p.value.shape[i]), op,
      () => `tensor ${name} in ${path} has shape ${fmtShape(h.shape)} but the model expects ${fmtShape(p.value.shape)}`);
  }
}

/** Every value of an f32 tensor finite (and within [min, max] when given). */
function checkFinite(h: HostTensor, name: string, path: string, min = -Infinity, max = Infinity): void {
  if (h.dtype !== 'f32') return;
  const d = h.data;
  for (let i = 0; i < d.length; i++) {
    const x = d[i];
    if (Number.isFinite(x) && x >= min && x <= max) continue;
    let bad = 0;
    for (let j = i; j < d.length; j++) if (!(Number.isFinite(d[j]) && d[j] >= min && d[j] <= max)) bad++;
    const what = Number.isFinite(x) ? `${bad} value(s) outside [${min}, ${max}]` : `${bad} non-finite value(s)`;
    throw new TrimpiError('loadCheckpoint', `tensor ${name} in ${path} has ${what} (the first, ${x}, at index ${i}): refusing to load it`);
  }
}

/** A valid VlmConfig (validateConfig, and the positive sizes and eps a working model needs). */
function checkVlmConfig(dir: string, config: unknown): void {
  const c = config as VlmConfig;
  try {
    validateConfig(c);
    for (const k of ['vocabSize', 'imageSize', 'patchSize', 'channels', 'visionDim', 'visionHeads', 'dim', 'heads', 'maxPositions'] as const) {
      check(c[k] >= 1, 'VlmConfig', () => `${k} must be >= 1, got ${c[k]}`);
    }
    check(c.layerNormEps > 0 && c.mlpRatio > 0 && c.initStd >= 0, 'VlmConfig',
      () => `layerNormEps and mlpRatio must be > 0 and initStd >= 0, got ${c.layerNormEps}, ${c.mlpRatio}, ${c.initStd}`);
  } catch (e) {
    throw new TrimpiError('loadCheckpoint', `${join(dir, CONFIG_FILE)} has an invalid model config: ${(e as Error).message}`);
  }
}

/** The checkpoint's LoRA adapters must be the model's: same layers, ranks and alphas. */
function checkLora(dir: string, saved: Record<string, LoraLayerConfig> | null, own: Record<string, LoraLayerConfig>): void {
  const op = 'loadCheckpoint';
  const s = saved ?? {};
  const kinds = (c: Record<string, LoraLayerConfig>): string =>
    [...new Set(Object.values(c).map((l) => `rank ${l.rank}, alpha ${l.alpha}`))].join('; ');
  const nSaved = Object.keys(s).length;
  const nOwn = Object.keys(own).length;
  check(nSaved === 0 || nOwn > 0, op, () => `${dir} holds unmerged LoRA adapters on ${nSaved} layer(s) (${kinds(s)}): applyLora(model, { rank, alpha }) `
    + 'on the same layers before loading it, or merge() the adapters before saving');
  check(nOwn === 0 || nSaved > 0, op, () => `the model has LoRA adapters on ${nOwn} layer(s) but ${dir} has none: load the base weights before applyLora`);
  const show = (l: LoraLayerConfig | undefined): string => (l ? `rank ${l.rank}, alpha ${l.alpha}` : 'no adapter');
  const diffs = [...new Set([...Object.keys(s), ...Object.keys(own)])].filter((n) => s[n]?.rank !== own[n]?.rank || s[n]?.alpha !== own[n]?.alpha);
  check(diffs.length === 0, op, () => `${dir} has LoRA adapters that differ from the model's: `
    + `${diffs.slice(0, 4).map((n) => `'${n}' ${show(s[n])} (the model: ${show(own[n])})`).join(', ')}${diffs.length > 4 ? `, ... (${diffs.length} layers)` : ''}`);
}

/** A data file belongs to this manifest: written by saveCheckpoint, same step, same save id. */
function checkFileMeta(path: string, metadata: Record<string, string>, m: CheckpointManifest): void {
  check(metadata.trimpi === CHECKPOINT_FORMAT, 'loadCheckpoint', () => `${path} was not written by saveCheckpoint (no '${CHECKPOINT_FORMAT}' metadata)`);
  check(metadata.step === String(m.step), 'loadCheckpoint',
    () => `${path} is from step ${metadata.step} but config.json says step ${m.step} (an interrupted save mixed two checkpoints)`);
  check(m.id === undefined || metadata.checkpoint_id === m.id, 'loadCheckpoint',
    () => `${path} belongs to save ${JSON.stringify(metadata.checkpoint_id ?? null)} but config.json is save ${m.id} (files of two checkpoints mixed)`);
}

/**
 * Builds a VisionLanguageModel from a checkpoint's config (validated first) and loads its weights
 * (verified as loadCheckpoint does); the model is freed if the load is refused. `maxPositions`: a
 * context of another length for a rotary-position model (no weight depends on it; a learned
 * position table does, so such a model is refused).
 */
export function loadVisionLanguageModel(dir: string, opts: { maxPositions?: number } = {}): VisionLanguageModel {
  const op = 'loadVisionLanguageModel';
  const m = readManifest(dir);
  const saved = m.config as unknown as VlmConfig;
  check(saved !== null && typeof saved === 'object', op, () => `${dir}/config.json has no model config`);
  checkVlmConfig(dir, saved);
  const n = opts.maxPositions;
  check(n === undefined || (Number.isInteger(n) && n > 0), op, () => `maxPositions must be a positive integer, got ${String(n)}`);
  check(n === undefined || n === saved.maxPositions || saved.positionEncoding === 'rope', op,
    () => `${dir} has learned positions (a table of ${saved.maxPositions}): its context cannot become ${n}; only a rotary-position model's can`);
  const cfg = n === undefined ? saved : { ...saved, maxPositions: n };
  const model = new VisionLanguageModel(cfg);
  try {
    loadCheckpoint(dir, model);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}
