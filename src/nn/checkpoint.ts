// Checkpoints: a directory with
//   model.safetensors      the parameters by dotted name (f32; Linear weights are (in, out))
//   optimizer.safetensors  AdamW moments `exp_avg.<name>` and `exp_avg_sq.<name>` (when saved)
//   config.json            the model config, the step, the file list and the caller's extra JSON
// Each file is written atomically, config.json last: it commits the checkpoint. Every file carries
// the step in its metadata, and loading checks that they agree, so a save interrupted between two
// files is detected instead of silently mixing two steps.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AdamW } from './optim.js';
import { noGrad } from '../tensor/autograd.js';
import { TrimpiError, check, fmtShape } from '../tensor/errors.js';
import { tidy } from '../tensor/memory.js';
import { assign, tensor } from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import type { HostTensor, Module } from './module.js';
import { readSafetensors, writeFileAtomic, writeSafetensors } from './safetensors.js';
import { VisionLanguageModel, VlmConfig, validateConfig } from './vlm.js';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue };

export const CHECKPOINT_FORMAT = 'trimpi-checkpoint';
export const CHECKPOINT_VERSION = 1;
const MODEL_FILE = 'model.safetensors';
const OPTIM_FILE = 'optimizer.safetensors';
const CONFIG_FILE = 'config.json';
/** Config fields that do not change the parameters' names or shapes (a checkpoint loads across them). */
const RUNTIME_ONLY = new Set(['seed', 'dropout', 'initStd']);

/** config.json. */
export interface CheckpointManifest {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  /** Optimizer steps taken when saved. */
  step: number;
  /** The model's config (VlmConfig for a VisionLanguageModel). */
  config: JsonValue;
  files: { model: string; optimizer: string | null };
  /** Optimizer hyperparameters at save time (informative). */
  optimizer: { lr: number; betas: [number, number]; eps: number; maxGradNorm: number } | null;
  extra: JsonValue;
}

export interface SaveOptions {
  /** The model's config (defaults to `model.config` when the model has one). */
  config?: JsonValue;
  /** Save the optimizer's moments and step too (needed to resume training). */
  optimizer?: AdamW;
  /** The step to record (default: the optimizer's step, else 0). */
  step?: number;
  /** Anything else to keep beside (data position, metrics, training options). */
  extra?: JsonValue;
}

async function hostOf(t: Tensor): Promise<HostTensor> {
  return { dtype: t.dtype, shape: [...t.shape], data: await t.toArray() };
}

/** Tensor → its dotted name in the model, for the optimizer's state. */
function namesOf(model: Module): Map<Tensor, string> {
  return new Map(model.namedParameters().map(([n, p]) => [p.value, n]));
}

/** Writes a checkpoint directory (created if needed). Reads the parameters back from the GPU. */
export async function saveCheckpoint(dir: string, model: Module, opts: SaveOptions = {}): Promise<CheckpointManifest> {
  const op = 'saveCheckpoint';
  const config = opts.config ?? (model instanceof VisionLanguageModel ? (model.config as unknown as JsonValue) : null);
  const step = opts.step ?? opts.optimizer?.step ?? 0;
  check(Number.isInteger(step) && step >= 0, op, () => `step must be a non-negative integer, got ${step}`);
  mkdirSync(dir, { recursive: true });
  const meta = { format: 'pt', trimpi: CHECKPOINT_FORMAT, step: String(step) };
  const params = new Map<string, HostTensor>();
  for (const [name, p] of model.namedParameters()) params.set(name, await hostOf(p.value));
  writeSafetensors(join(dir, MODEL_FILE), params, meta);
  const opt = opts.optimizer;
  if (opt) {
    const names = namesOf(model);
    const state = new Map<string, HostTensor>();
    for (const p of opt.params) {
      const name = names.get(p);
      check(name !== undefined, op, () => `the optimizer holds a parameter ${p.describe()} that is not in the model`);
      const { m, v } = opt.moments(p);
      state.set(`exp_avg.${name}`, await hostOf(m));
      state.set(`exp_avg_sq.${name}`, await hostOf(v));
    }
    writeSafetensors(join(dir, OPTIM_FILE), state, meta);
  }
  const manifest: CheckpointManifest = {
    format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, step, config,
    files: { model: MODEL_FILE, optimizer: opt ? OPTIM_FILE : null },
    optimizer: opt ? { lr: opt.lr, betas: [...opt.betas], eps: opt.eps, maxGradNorm: opt.maxGradNorm } : null,
    extra: opts.extra ?? null,
  };
  writeFileAtomic(join(dir, CONFIG_FILE), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}

/** Reads and checks config.json of a checkpoint directory. */
export function readManifest(dir: string): CheckpointManifest {
  const op = 'loadCheckpoint';
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
  return m;
}

export interface LoadOptions {
  /** Restore the optimizer's moments and step (the checkpoint must have them). */
  optimizer?: AdamW;
}

/**
 * Loads a checkpoint into `model` (shapes and dtypes checked, names must match exactly) and, with
 * `optimizer`, its moments and step. The model must have been built with the same config: a
 * VisionLanguageModel's config is compared field by field first, for a clear message.
 */
export function loadCheckpoint(dir: string, model: Module, opts: LoadOptions = {}): CheckpointManifest {
  const op = 'loadCheckpoint';
  const m = readManifest(dir);
  const own = model instanceof VisionLanguageModel ? model.config : null;
  if (own && m.config && typeof m.config === 'object') {
    const saved = m.config as Record<string, unknown>;
    const diffs = Object.keys(own).filter((k) => !RUNTIME_ONLY.has(k) && saved[k] !== (own as unknown as Record<string, unknown>)[k]);
    check(diffs.length === 0, op, () => `${dir} was saved from a model with a different config: ${diffs.map((k) => `${k} ${JSON.stringify(saved[k])} (the model has ${JSON.stringify((own as unknown as Record<string, unknown>)[k])})`).join(', ')}`);
  }
  const modelPath = join(dir, m.files.model);
  const weights = readSafetensors(modelPath);
  checkStep(modelPath, weights.metadata, m.step);
  model.loadStateDict(weights.tensors, { source: modelPath });
  const opt = opts.optimizer;
  if (opt) {
    check(m.files.optimizer !== null, op, () => `${dir} has no optimizer state (it was saved without an optimizer): cannot resume training from it`);
    const optPath = join(dir, m.files.optimizer!);
    const state = readSafetensors(optPath);
    checkStep(optPath, state.metadata, m.step);
    const names = namesOf(model);
    const pending: [Tensor, HostTensor][] = [];
    for (const p of opt.params) {
      const name = names.get(p);
      check(name !== undefined, op, () => `the optimizer holds a parameter ${p.describe()} that is not in the model`);
      for (const [key, which] of [[`exp_avg.${name}`, 'm'], [`exp_avg_sq.${name}`, 'v']] as const) {
        const h = state.tensors.get(key);
        check(h !== undefined, op, () => `${optPath} has no tensor ${key}`);
        check(h.dtype === 'f32' && h.shape.length === p.ndim && h.shape.every((d, i) => d === p.shape[i]), op,
          () => `tensor ${key} in ${optPath} has shape ${fmtShape(h.shape)} (${h.dtype}) but the parameter is ${fmtShape(p.shape)} (f32)`);
        pending.push([opt.moments(p)[which], h]);
      }
    }
    noGrad(() => tidy(() => {
      for (const [dst, h] of pending) assign(dst, tensor(h.data, { shape: h.shape, device: dst.device }));
    }));
    opt.step = m.step;
  }
  return m;
}

function checkStep(path: string, metadata: Record<string, string>, step: number): void {
  check(metadata.trimpi === CHECKPOINT_FORMAT, 'loadCheckpoint', () => `${path} was not written by saveCheckpoint (no '${CHECKPOINT_FORMAT}' metadata)`);
  check(metadata.step === String(step), 'loadCheckpoint',
    () => `${path} is from step ${metadata.step} but config.json says step ${step} (an interrupted save mixed two checkpoints)`);
}

/** Builds a VisionLanguageModel from a checkpoint's config and loads its weights. */
export function loadVisionLanguageModel(dir: string): VisionLanguageModel {
  const m = readManifest(dir);
  const cfg = m.config as unknown as VlmConfig;
  check(cfg !== null && typeof cfg === 'object', 'loadVisionLanguageModel', () => `${dir}/config.json has no model config`);
  validateConfig(cfg);
  const model = new VisionLanguageModel(cfg);
  try {
    loadCheckpoint(dir, model);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}
