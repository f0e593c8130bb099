// Dataset generation and export: builds the records of a setting (ClevrPolicy-T/-M, ToolPolicy,
// SceneQA, or stage-0 random policies), renders every image on the GPU in batches, and writes
// JSONL + PNG + vocabulary + stats + a contact sheet into a temporary directory that is renamed
// to the requested one only when complete. The same options and seed give byte-identical files.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SceneRenderer } from '../../kernels/render.js';
import type { Device } from '../../gpu/device.js';
import { init } from '../../gpu/device.js';
import { TrimpiError, check } from '../../gpu/errors.js';
import { tensor } from '../../tensor/ops.js';
import type { Tensor } from '../../tensor/tensor.js';
import {
  CropSpec, Policy, PolicyMode, PolicyNode, PolicyPruning, POLICY_DEPTHS, POLICY_PRUNINGS, clevrQuery, clevrResponse, policyText, randomPolicies,
  reachableCases, sceneForCase, targetPolicies, evaluatePolicy,
} from './clevr_policy.js';
import { contactSheet, SheetTile } from './contact_sheet.js';
import { decodePng, encodePng, RgbImage } from './png.js';
import { rng } from './rng.js';
import { Scene, SceneGraph, SceneOptions, cropScene, sampleScene, sceneGraph, toRenderScene } from './scene.js';
import { QaKind, QA_KINDS, sceneQaPrompt, sceneQaResponse, sceneQuestion } from './sceneqa.js';
import { Tokenizer, defaultTokenizer } from './tokenizer.js';
import { Profile, ToolCall, TOOL_POLICY_NAME, toolPolicyText, toolPrompt, toolSample } from './tool_policy.js';

/**
 * The dataset settings of `trimpi data --setting`: ClevrPolicy -T/-M targets, ToolPolicy, SceneQA, and the
 * stage-0 random policies -T/-M.
 */
export const SETTINGS = ['clevr-t', 'clevr-m', 'tool', 'sceneqa', 'random-t', 'random-m'] as const;
/** A dataset setting: one of SETTINGS. */
export type Setting = (typeof SETTINGS)[number];
/** A dataset split. */
export type Split = 'train' | 'test';

/** Paper-sized defaults (scaled by `size`). */
export const DEFAULT_SIZES: { readonly [K in Setting]: { policies: number; train: number; test: number } } = {
  'clevr-t': { policies: 10, train: 2000, test: 200 },
  'clevr-m': { policies: 10, train: 2000, test: 200 },
  tool: { policies: 1, train: 451, test: 106 },
  // images; every image carries one question of each kind (count, exist, query)
  sceneqa: { policies: 1, train: 4000, test: 400 },
  'random-t': { policies: 200, train: 50, test: 5 },
  'random-m': { policies: 200, train: 50, test: 5 },
};

/**
 * Options of generateDataset (the `trimpi data` flags); unset sample counts default to DEFAULT_SIZES scaled by `size`.
 */
export interface DataOptions {
  setting: Setting;
  seed: number;
  /** Output directory (must not exist unless `force`). */
  out: string;
  /** Policy depth for clevr-* and random-* (2, 4 or 6; default 6). */
  depth?: number;
  /** Multiplies the default split sizes (default 1: paper-sized). */
  size?: number;
  /** Number of policies (clevr: default 10; random: default 200). */
  policies?: number;
  /** Train/test samples per policy (clevr, random) or in total (tool; sceneqa: images). Override `size`. */
  train?: number;
  test?: number;
  /** Image side in pixels (default 64). */
  imageSize?: number;
  minObjects?: number;
  maxObjects?: number;
  shadows?: boolean;
  msaa?: boolean;
  /** Scenes per render submission (default 64). */
  batch?: number;
  /** clevr/random: 'uniform' draws each case equally often (default); 'natural' uses random scenes. */
  balance?: 'uniform' | 'natural';
  /** clevr/random: how the trees are pruned ('paper', the default, or 'strict'; see PolicyPruning). */
  pruning?: PolicyPruning;
  /** Fraction of clevr train samples in the CoT subset (default 1/8, as in the paper). */
  cotFraction?: number;
  /** Replace `out` if it exists. */
  force?: boolean;
  /** Tiles in the contact sheet (default 24). */
  sheet?: number;
  /** Progress callback (the CLI draws a bar on stderr). */
  onProgress?: (done: number, total: number) => void;
  /** GPU device (default: the default device, created if needed). */
  device?: Device;
}

// ---- records -------------------------------------------------------------------------------------------

interface BaseRecord {
  id: string;
  setting: Setting;
  split: Split;
  /** Image files (relative to the dataset directory), in the order of the `<image>` places in `prompt`. */
  images: string[];
  /** The prompt without the policy (Q and I). */
  prompt: string;
  /** Gold `<think> ... </think> \boxed{...}` (SceneQA: the box only). */
  response: string;
  /** Answer-only target `\boxed{...}` (direct SFT). */
  answer: string;
  /** Scene graph per image (same order as `images`). */
  scenes: SceneGraph[];
}

/** A ClevrPolicy (or stage-0 random policy) sample: its policy, the gold case, and whether it is in the CoT subset. */
export interface ClevrRecord extends BaseRecord {
  task: 'clevr';
  policy: string;
  case: number;
  /** In the CoT SFT subset (train only). */
  cot: boolean;
}

/** A ToolPolicy sample: template, profile, query, history of earlier calls, the target call and its rule. */
export interface ToolRecord extends BaseRecord {
  task: 'tool';
  policy: string;
  template: string;
  profile: Profile;
  query: string;
  history: { call: ToolCall; returned: string }[];
  target: ToolCall;
  rule: number | null;
}

/** A SceneQA sample: the question kind, the question and its exact answer. */
export interface SceneQaRecord extends BaseRecord {
  task: 'sceneqa';
  kind: QaKind;
  question: string;
  /** The exact answer, unboxed. */
  gold: string;
}

/** One line of train.jsonl / test.jsonl, told apart by `task`. */
export type DataRecord = ClevrRecord | ToolRecord | SceneQaRecord;

/** A policy as stored in policies.jsonl (P_T = text, P_I = images). */
export interface PolicyRecord {
  name: string;
  mode: PolicyMode | 'tool';
  depth: number;
  cases: number;
  reachable: number[];
  unreachable: number[];
  text: string;
  /** -M crop images, in the order of the `<image>` places in `text`. */
  images: string[];
  crops: CropSpec[];
  tree: PolicyNode | null;
  /** The rule the tree grew under (absent in files written before the option: 'strict'). */
  pruning?: PolicyPruning;
}

/** The prompt with the policy in context: policy text, a newline, the prompt; policy images first. */
export function promptWithPolicy(record: Pick<BaseRecord, 'prompt' | 'images'>, policy: Pick<PolicyRecord, 'text' | 'images'>): { prompt: string; images: string[] } {
  return { prompt: `${policy.text}\n${record.prompt}`, images: [...policy.images, ...record.images] };
}

/** The policies.jsonl record of ToolPolicy: mode 'tool', its text with the given rules, no tree, cases or images. */
export function toolPolicyRecord(rules: 'default' | 'override' = 'default'): PolicyRecord {
  return { name: TOOL_POLICY_NAME, mode: 'tool', depth: 0, cases: 0, reachable: [], unreachable: [], text: toolPolicyText(rules), images: [], crops: [], tree: null };
}

function policyRecord(p: Policy, cropPaths: string[]): PolicyRecord {
  const { reachable, unreachable } = reachableCases(p);
  return { name: p.name, mode: p.mode, depth: p.depth, cases: p.cases, reachable, unreachable, text: policyText(p), images: cropPaths, crops: p.crops, tree: p.root, pruning: p.pruning ?? 'paper' };
}

// ---- options --------------------------------------------------------------------------------------------

interface Resolved {
  setting: Setting;
  seed: number;
  out: string;
  depth: number;
  policies: number;
  train: number;
  test: number;
  scene: SceneOptions & { width: number; height: number };
  balance: 'uniform' | 'natural';
  cotFraction: number;
  sheet: number;
  pruning: PolicyPruning;
}

const OP = 'trimpi data';

function resolve(o: DataOptions, needOut = true): Resolved {
  check((SETTINGS as readonly string[]).includes(o.setting), OP, () => `--setting must be one of ${SETTINGS.join(', ')}, got '${o.setting}'`);
  check(Number.isSafeInteger(o.seed) && o.seed >= 0, OP, () => `--seed must be a non-negative integer, got ${o.seed}`);
  if (needOut) check(typeof o.out === 'string' && o.out.length > 0, OP, () => '--out DIR is required');
  const depth = o.depth ?? 6;
  check((POLICY_DEPTHS as readonly number[]).includes(depth), OP, () => `--depth must be one of ${POLICY_DEPTHS.join(', ')}, got ${depth}`);
  const size = o.size ?? 1;
  check(Number.isFinite(size) && size > 0, OP, () => `--size must be a positive number, got ${size}`);
  const d = DEFAULT_SIZES[o.setting];
  // `size` scales the samples, not the number of policies
  const count = (v: number | undefined, def: number, name: string, min: number, scaled = true): number => {
    const n = v ?? Math.max(min, Math.round(def * (scaled ? size : 1)));
    check(Number.isInteger(n) && n >= min, OP, () => `--${name} must be an integer >= ${min}, got ${n}`);
    return n;
  };
  const policies = count(o.policies, d.policies, 'policies', 1, false);
  if (o.setting.startsWith('clevr')) check(policies <= 100, OP, () => `--policies must be at most 100 for ${o.setting}, got ${policies}`);
  const imageSize = o.imageSize ?? 64;
  check(Number.isInteger(imageSize) && imageSize >= 16 && imageSize <= 1024, OP, () => `--image-size must be an integer in [16, 1024], got ${imageSize}`);
  const cotFraction = o.cotFraction ?? 1 / 8;
  check(cotFraction >= 0 && cotFraction <= 1, OP, () => `cotFraction must be in [0, 1], got ${cotFraction}`);
  const balance = o.balance ?? 'uniform';
  check(balance === 'uniform' || balance === 'natural', OP, () => `--balance must be 'uniform' or 'natural', got '${balance}'`);
  const pruning = o.pruning ?? 'paper';
  check(POLICY_PRUNINGS.includes(pruning), OP, () => `--pruning must be one of ${POLICY_PRUNINGS.join(', ')}, got '${String(pruning)}'`);
  const sheet = o.sheet ?? 24;
  check(Number.isInteger(sheet) && sheet >= 0, OP, () => `--sheet must be a non-negative integer, got ${sheet}`);
  return {
    setting: o.setting, seed: o.seed, out: o.out, depth, policies,
    train: count(o.train, d.train, 'train', 1), test: count(o.test, d.test, 'test', 0),
    scene: { width: imageSize, height: imageSize, minObjects: o.minObjects ?? 3, maxObjects: o.maxObjects ?? 6 },
    balance, cotFraction, sheet, pruning,
  };
}

// ---- units of work ------------------------------------------------------------------------------------

/** An image to render: its scene and its file (relative to the dataset directory). */
export interface ImageJob {
  scene: Scene;
  path: string;
}

/** One step of a dataset plan: records, policy records, and the images they need. */
export interface PlanStep {
  records: DataRecord[];
  policies: PolicyRecord[];
  jobs: ImageJob[];
}

/** One step of generation: its records (or policy records) and the images they need. */
interface Unit {
  make: () => PlanStep;
  images: number;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/** Case per sample: every reachable case equally often, in a shuffled order per round. */
function caseSchedule(r: ReturnType<typeof rng>, cases: readonly number[], n: number): number[] {
  const out: number[] = [];
  while (out.length < n) out.push(...r.shuffle(cases));
  return out.slice(0, n);
}

/** The seeded CoT subset: exactly round(n * fraction) train indices. */
function cotSubset(r: ReturnType<typeof rng>, n: number, fraction: number): Set<number> {
  const k = Math.round(n * fraction);
  return new Set(r.shuffle(Array.from({ length: n }, (_, i) => i)).slice(0, k));
}

function clevrUnits(o: Resolved): Unit[] {
  const random = o.setting.startsWith('random');
  const mode: PolicyMode = o.setting.endsWith('-m') ? 'M' : 'T';
  const policies = random ? randomPolicies(o.seed, mode, o.depth, o.policies, 0, o.pruning) : targetPolicies(o.seed, mode, o.depth, o.policies, o.pruning);
  const units: Unit[] = [];
  for (const p of policies) {
    const cropPaths = p.crops.map((c) => `images/crops/${p.name}_${c.node}.png`);
    units.push({
      images: p.crops.length,
      make: () => ({
        records: [],
        policies: [policyRecord(p, cropPaths)],
        jobs: p.crops.map((c, k) => ({ scene: cropScene(rng(o.seed, 'crop', p.name, c.node), c.object, o.scene.width, o.scene.height), path: cropPaths[k] })),
      }),
    });
    const { reachable } = reachableCases(p);
    for (const split of ['train', 'test'] as const) {
      const n = split === 'train' ? o.train : o.test;
      const schedule = caseSchedule(rng(o.seed, 'cases', p.name, split), reachable, n);
      const cot = split === 'train' ? cotSubset(rng(o.seed, 'cot', p.name), n, o.cotFraction) : new Set<number>();
      for (let i = 0; i < n; i++) {
        units.push({
          images: 1,
          make: () => {
            const r = rng(o.seed, 'scene', p.name, split, i);
            const scene = o.balance === 'uniform' ? sceneForCase(r, p, schedule[i], o.scene) : sampleScene(r, o.scene);
            const { case: k, response, answer } = clevrResponse(p, scene.objects);
            const path = `images/${split}/${p.name}_${pad(i, 5)}.png`;
            const rec: ClevrRecord = {
              task: 'clevr', id: `${p.name}/${split}/${i}`, setting: o.setting, split, policy: p.name, case: k, cot: cot.has(i),
              images: [path], prompt: `<image>\n${clevrQuery(p.name)}`, response, answer, scenes: [sceneGraph(scene)],
            };
            return { records: [rec], policies: [], jobs: [{ scene, path }] };
          },
        });
      }
    }
  }
  return units;
}

function toolUnits(o: Resolved): Unit[] {
  const units: Unit[] = [{ images: 0, make: () => ({ records: [], policies: [toolPolicyRecord('default')], jobs: [] }) }];
  let nextImage = 1;
  for (const split of ['train', 'test'] as const) {
    const n = split === 'train' ? o.train : o.test;
    for (let i = 0; i < n; i++) {
      // 1 or 2 images; their numbers are fixed before any sample is built so they never depend on order
      const count = rng(o.seed, 'tool-images', split, i).bool(0.35) ? 2 : 1;
      const numbers = Array.from({ length: count }, () => nextImage++);
      units.push({
        images: count,
        make: () => {
          const scenes = numbers.map((num) => sampleScene(rng(o.seed, 'tool-scene', num), o.scene));
          const names = numbers.map((num) => `image/image_${num}.png`);
          const s = toolSample(rng(o.seed, 'tool', split, i), scenes.map((sc, k) => ({ name: names[k], objects: sc.objects })));
          const rec: ToolRecord = {
            task: 'tool', id: `tool/${split}/${i}`, setting: 'tool', split, policy: TOOL_POLICY_NAME, template: s.template, profile: s.profile,
            query: s.query, history: s.history, target: s.target, rule: s.rule, images: names, prompt: toolPrompt(s),
            response: s.response, answer: s.answer, scenes: scenes.map(sceneGraph),
          };
          return { records: [rec], policies: [], jobs: scenes.map((scene, k) => ({ scene, path: names[k] })) };
        },
      });
    }
  }
  return units;
}

function sceneQaUnits(o: Resolved): Unit[] {
  const units: Unit[] = [];
  for (const split of ['train', 'test'] as const) {
    const n = split === 'train' ? o.train : o.test;
    for (let i = 0; i < n; i++) {
      units.push({
        images: 1,
        make: () => {
          const scene = sampleScene(rng(o.seed, 'qa-scene', split, i), o.scene);
          const path = `images/${split}/${pad(i, 6)}.png`;
          const r = rng(o.seed, 'qa', split, i);
          const records: SceneQaRecord[] = QA_KINDS.map((kind) => {
            const q = sceneQuestion(r, scene.objects, kind);
            return {
              task: 'sceneqa', id: `sceneqa/${split}/${i}/${kind}`, setting: 'sceneqa', split, kind: q.kind, question: q.question, gold: q.answer,
              images: [path], prompt: sceneQaPrompt(q), response: sceneQaResponse(q), answer: sceneQaResponse(q), scenes: [sceneGraph(scene)],
            };
          });
          return { records, policies: [], jobs: [{ scene, path }] };
        },
      });
    }
  }
  return units;
}

// ---- stats -----------------------------------------------------------------------------------------------

/** Summary of a list of numbers: count, mean (to 1 decimal), min, median, 95th percentile and max. */
export interface Distribution {
  count: number;
  mean: number;
  min: number;
  p50: number;
  p95: number;
  max: number;
}

/** The Distribution of `xs`; a percentile f is the sorted value at index round(f·(n − 1)). All zeros when empty. */
export function distribution(xs: readonly number[]): Distribution {
  if (xs.length === 0) return { count: 0, mean: 0, min: 0, p50: 0, p95: 0, max: 0 };
  const s = [...xs].sort((a, b) => a - b);
  const q = (f: number): number => s[Math.min(s.length - 1, Math.floor(f * (s.length - 1) + 0.5))];
  return { count: s.length, mean: Math.round((s.reduce((a, b) => a + b, 0) / s.length) * 10) / 10, min: s[0], p50: q(0.5), p95: q(0.95), max: s[s.length - 1] };
}

/**
 * A dataset's statistics (stats.json): counts, per-policy case balance, token-length distributions
 * (<image> counted as one token) and per-group breakdowns.
 */
export interface DataStats {
  setting: Setting;
  seed: number;
  depth: number | null;
  /** How the trees were pruned (clevr and random settings; null otherwise). */
  pruning: PolicyPruning | null;
  counts: { policies: number; train: number; test: number; images: number };
  policies: {
    name: string;
    cases: number;
    reachable: number;
    train: number[];
    test: number[];
    /** min / max of the per-case counts over the reachable cases (1 = perfectly balanced). */
    balance: { train: number; test: number };
    /** Reachable cases that no test sample has. */
    missingTest: number[];
  }[];
  tokens: {
    prompt: Distribution;
    promptWithPolicy: Distribution;
    response: Distribution;
    answer: Distribution;
    policy: Distribution;
    /** Visual tokens per image the ViT adds (patch 8). */
    visualPerImage: number;
    /** Images per prompt, without and with the policy in context. */
    images: { prompt: Distribution; withPolicy: Distribution };
    unknown: number;
    unknownPieces: string[];
    vocabulary: number;
  };
  breakdown: Record<string, Record<string, number>>;
}

class StatsBuilder {
  private promptLen: number[] = [];
  private withPolicyLen: number[] = [];
  private responseLen: number[] = [];
  private answerLen: number[] = [];
  private imagesPrompt: number[] = [];
  private imagesWith: number[] = [];
  private policyTokens = new Map<string, { tokens: number; images: number }>();
  private caseCounts = new Map<string, { train: number[]; test: number[] }>();
  private unknownPieces = new Set<string>();
  private unknown = 0;
  readonly breakdown: Record<string, Record<string, number>> = {};
  counts = { train: 0, test: 0 };

  constructor(private readonly tok: Tokenizer) {}

  private enc(text: string): number {
    const e = this.tok.encodeDetailed(text);
    this.unknown += e.unknown;
    for (const p of e.unknownPieces) this.unknownPieces.add(p);
    return e.ids.length;
  }

  private bump(group: string, key: string): void {
    const g = (this.breakdown[group] ??= {});
    g[key] = (g[key] ?? 0) + 1;
  }

  addPolicy(p: PolicyRecord): void {
    this.policyTokens.set(p.name, { tokens: this.enc(p.text), images: p.images.length });
    this.caseCounts.set(p.name, { train: new Array(p.cases).fill(0), test: new Array(p.cases).fill(0) });
  }

  addRecord(r: DataRecord): void {
    this.counts[r.split]++;
    const prompt = this.enc(r.prompt);
    this.promptLen.push(prompt);
    this.responseLen.push(this.enc(r.response));
    this.answerLen.push(this.enc(r.answer));
    this.imagesPrompt.push(r.images.length);
    const policyName = r.task === 'sceneqa' ? null : r.policy;
    const pol = policyName ? this.policyTokens.get(policyName) : undefined;
    // the policy's tokens, one for the joining newline, then the prompt's (pieces split there exactly)
    this.withPolicyLen.push(pol ? pol.tokens + 1 + prompt : prompt);
    this.imagesWith.push(r.images.length + (pol?.images ?? 0));
    if (r.task === 'clevr') {
      const c = this.caseCounts.get(r.policy);
      if (c) c[r.split][r.case]++;
      if (r.cot) this.bump('cot', r.split);
    } else if (r.task === 'tool') {
      this.bump('template', r.template);
      this.bump('tool', r.target.name);
      this.bump('rule', r.rule === null ? 'none' : `Rule ${r.rule}`);
      this.bump('history', String(r.history.length));
      this.bump('images', String(r.images.length));
    } else {
      this.bump(`answer:${r.kind}`, r.gold);
    }
  }

  finish(o: Resolved, policies: PolicyRecord[], images: number): DataStats {
    const balance = (xs: number[], reach: number[]): number => {
      const v = reach.map((k) => xs[k]);
      const max = Math.max(0, ...v);
      return max === 0 ? 1 : Math.round((Math.min(...v) / max) * 1000) / 1000;
    };
    return {
      setting: o.setting,
      seed: o.seed,
      depth: o.setting.startsWith('clevr') || o.setting.startsWith('random') ? o.depth : null,
      pruning: o.setting.startsWith('clevr') || o.setting.startsWith('random') ? o.pruning : null,
      counts: { policies: policies.length, train: this.counts.train, test: this.counts.test, images },
      policies: policies.filter((p) => p.tree).map((p) => {
        const c = this.caseCounts.get(p.name) ?? { train: [], test: [] };
        return {
          name: p.name, cases: p.cases, reachable: p.reachable.length, train: c.train, test: c.test,
          balance: { train: balance(c.train, p.reachable), test: balance(c.test, p.reachable) },
          missingTest: p.reachable.filter((k) => c.test[k] === 0),
        };
      }),
      tokens: {
        prompt: distribution(this.promptLen), promptWithPolicy: distribution(this.withPolicyLen), response: distribution(this.responseLen),
        answer: distribution(this.answerLen), policy: distribution([...this.policyTokens.values()].map((p) => p.tokens)),
        visualPerImage: (o.scene.width / 8) * (o.scene.height / 8),
        images: { prompt: distribution(this.imagesPrompt), withPolicy: distribution(this.imagesWith) },
        unknown: this.unknown, unknownPieces: [...this.unknownPieces].sort(), vocabulary: this.tok.size,
      },
      breakdown: this.breakdown,
    };
  }
}

/** The stats as readable text (also written as stats.txt). */
export function formatStats(s: DataStats): string {
  const d = (x: Distribution): string => `mean ${x.mean}, p50 ${x.p50}, p95 ${x.p95}, max ${x.max}`;
  const lines = [
    `setting ${s.setting}, seed ${s.seed}${s.depth !== null ? `, depth ${s.depth}` : ''}${s.pruning ? `, pruning ${s.pruning}` : ''}`,
    `samples: ${s.counts.train} train, ${s.counts.test} test; ${s.counts.images} images; ${s.counts.policies} policies`,
  ];
  if (s.policies.length) {
    lines.push('cases per policy (reachable/leaves), balance min/max per split, test cases missing:');
    for (const p of s.policies) {
      lines.push(`  ${p.name.padEnd(12)} ${String(p.reachable).padStart(2)}/${String(p.cases).padEnd(2)}  train ${p.balance.train.toFixed(2)} [${Math.min(...p.train.filter((_, k) => k < p.cases))}..${Math.max(...p.train)}]  test ${p.balance.test.toFixed(2)}  missing ${p.missingTest.length ? p.missingTest.join(',') : 'none'}`);
    }
  }
  lines.push(`tokens (vocabulary ${s.tokens.vocabulary}, <image> counted as 1 token; +${s.tokens.visualPerImage - 1} per image with visual tokens):`);
  lines.push(`  prompt without policy   ${d(s.tokens.prompt)}`);
  lines.push(`  prompt with policy      ${d(s.tokens.promptWithPolicy)}`);
  if (s.tokens.policy.count > 0) lines.push(`  policy text             ${d(s.tokens.policy)}`);
  lines.push(`  response (CoT + answer) ${d(s.tokens.response)}`);
  lines.push(`  answer only             ${d(s.tokens.answer)}`);
  lines.push(`  images per prompt       without policy ${s.tokens.images.prompt.mean}, with policy ${s.tokens.images.withPolicy.mean}`);
  const saved = s.tokens.promptWithPolicy.mean > 0 ? (1 - s.tokens.prompt.mean / s.tokens.promptWithPolicy.mean) * 100 : 0;
  lines.push(`  dropping the policy saves ${saved.toFixed(1)}% of the prompt tokens`);
  lines.push(`  unknown tokens: ${s.tokens.unknown}${s.tokens.unknownPieces.length ? ` (${s.tokens.unknownPieces.slice(0, 20).join(' ')})` : ''}`);
  for (const [group, counts] of Object.entries(s.breakdown)) {
    const entries = Object.entries(counts).sort((a, b) => (a[0] < b[0] ? -1 : 1));
    lines.push(`${group}: ${entries.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  }
  return lines.join('\n');
}

// ---- the driver -----------------------------------------------------------------------------------------

/** What generateDataset returns: the output directory, the stats, the wall time and the paths written. */
export interface DataSummary {
  out: string;
  stats: DataStats;
  /** Wall time (not written to the files, which must not depend on it). */
  timing: { images: number; seconds: number; imagesPerSecond: number };
  files: { train: string; test: string; policies: string | null; vocab: string; stats: string; sheet: string | null };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

function caption(r: DataRecord): string[] {
  if (r.task === 'clevr') return [r.policy, `Case ${r.case}`];
  if (r.task === 'tool') return [r.template, r.target.name];
  return [r.question, `= ${r.gold}`];
}

function unitsOf(o: Resolved): Unit[] {
  return o.setting === 'tool' ? toolUnits(o) : o.setting === 'sceneqa' ? sceneQaUnits(o) : clevrUnits(o);
}

/**
 * The dataset without the GPU: its steps in file order (records, policies, and the scenes of the
 * images to render). generateDataset() renders and writes exactly these.
 */
export function planDataset(opts: Omit<DataOptions, 'out'> & { out?: string }): { images: number; steps: Iterable<PlanStep> } {
  const units = unitsOf(resolve({ ...opts, out: opts.out ?? '' }, false));
  return {
    images: units.reduce((n, u) => n + u.images, 0),
    steps: { *[Symbol.iterator]() { for (const u of units) yield u.make(); } },
  };
}

/** Generates a dataset (see DataOptions) and writes it under `o.out`. */
export async function generateDataset(opts: DataOptions): Promise<DataSummary> {
  const o = resolve(opts);
  if (existsSync(o.out)) check(!!opts.force, OP, () => `output directory ${o.out} already exists (use --force to replace it)`);
  const units = unitsOf(o);
  const totalImages = units.reduce((n, u) => n + u.images, 0);
  const tmp = `${o.out}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const started = performance.now();
  const renderers: SceneRenderer[] = [];
  const tok = defaultTokenizer();
  const stats = new StatsBuilder(tok);
  const fds = { train: openSync(join(tmp, 'train.jsonl'), 'w'), test: openSync(join(tmp, 'test.jsonl'), 'w') };
  const policies: PolicyRecord[] = [];
  const sheetWanted = new Map<string, DataRecord>(); // image path -> record, in record order
  const sheetImages = new Map<string, RgbImage>();
  const sheetPolicies = new Map<string, number>();
  const madeDirs = new Set<string>();
  let done = 0;
  const chunk = Math.max(64, (opts.batch ?? 64) * 4);

  const writeImage = (path: string, img: RgbImage): void => {
    const full = join(tmp, path);
    const dir = dirname(full);
    if (!madeDirs.has(dir)) {
      mkdirSync(dir, { recursive: true });
      madeDirs.add(dir);
    }
    writeFileSync(full, encodePng(img));
  };

  // contact sheet: round-robin over policies, test split first
  const wantForSheet = (r: DataRecord): boolean => {
    if (sheetWanted.size >= o.sheet || r.split !== (o.test > 0 ? 'test' : 'train')) return false;
    if (sheetWanted.has(r.images[0])) return false;
    // SceneQA: one question per image, the kinds in turn
    if (r.task === 'sceneqa' && r.kind !== QA_KINDS[sheetWanted.size % QA_KINDS.length]) return false;
    if (r.task === 'clevr') {
      const seen = sheetPolicies.get(r.policy) ?? 0;
      const perPolicy = Math.ceil(o.sheet / Math.max(1, o.policies));
      if (seen >= perPolicy) return false;
      sheetPolicies.set(r.policy, seen + 1);
    }
    return true;
  };

  try {
    const dev = opts.device ?? (await init());
    // two renderers take chunks in turn: one renders while the images of the other are written
    for (let k = 0; k < 2; k++) {
      renderers.push(new SceneRenderer(dev, { width: o.scene.width, height: o.scene.height, shadows: opts.shadows ?? true, msaa: opts.msaa ?? true, batch: opts.batch ?? 64 }));
    }
    let pending: { jobs: ImageJob[] } = { jobs: [] };
    let inFlight: { jobs: ImageJob[]; result: Promise<{ pixels?: Uint8Array[] }> } | null = null;
    let chunks = 0;
    const writeChunk = async (c: { jobs: ImageJob[]; result: Promise<{ pixels?: Uint8Array[] }> }): Promise<void> => {
      const { pixels } = await c.result;
      c.jobs.forEach((j, k) => {
        const img: RgbImage = { width: o.scene.width, height: o.scene.height, rgb: pixels![k] };
        writeImage(j.path, img);
        if (sheetWanted.has(j.path)) sheetImages.set(j.path, img);
      });
      done += c.jobs.length;
      opts.onProgress?.(done, totalImages);
    };
    const flush = async (): Promise<void> => {
      if (pending.jobs.length === 0) return;
      const jobs = pending.jobs;
      pending = { jobs: [] };
      // render() submits its first batches before it awaits anything
      const next = { jobs, result: renderers[chunks++ % 2].render(jobs.map((j) => toRenderScene(j.scene)), { pixels: true }) };
      next.result.catch(() => undefined); // a failure surfaces where it is awaited, never as unhandled
      const previous = inFlight;
      inFlight = next;
      if (previous) await writeChunk(previous);
    };
    opts.onProgress?.(0, totalImages);
    for (const u of units) {
      const { records, policies: pols, jobs } = u.make();
      for (const p of pols) {
        policies.push(p);
        stats.addPolicy(p);
      }
      for (const r of records) {
        writeSync(fds[r.split], JSON.stringify(r) + '\n');
        stats.addRecord(r);
        if (wantForSheet(r)) sheetWanted.set(r.images[0], r);
      }
      pending.jobs.push(...jobs);
      if (pending.jobs.length >= chunk) await flush();
    }
    await flush();
    if (inFlight) await writeChunk(inFlight);
    inFlight = null;
    closeSync(fds.train);
    closeSync(fds.test);

    const policyFile = o.setting === 'sceneqa' ? null : 'policies.jsonl';
    if (policyFile) writeFileSync(join(tmp, policyFile), policies.map((p) => JSON.stringify(p)).join('\n') + '\n');
    if (o.setting === 'tool') writeFileSync(join(tmp, 'policy_override.txt'), toolPolicyText('override') + '\n');
    tok.save(join(tmp, 'vocab.json'));
    const s = stats.finish(o, policies, done);
    writeFileSync(join(tmp, 'stats.json'), JSON.stringify(s, null, 1) + '\n');
    writeFileSync(join(tmp, 'stats.txt'), formatStats(s) + '\n');
    const sheetTiles: SheetTile[] = [...sheetWanted].filter(([p]) => sheetImages.has(p)).map(([p, r]) => ({ image: sheetImages.get(p)!, caption: caption(r) }));
    const sheet = sheetTiles.length ? 'contact_sheet.png' : null;
    if (sheet) writeFileSync(join(tmp, sheet), encodePng(contactSheet(sheetTiles, { columns: 6 })));
    writeFileSync(join(tmp, 'manifest.json'), JSON.stringify({
      format: 'trimpi-data/1', setting: o.setting, seed: o.seed, depth: s.depth, policies: o.policies, train: o.train, test: o.test,
      imageSize: o.scene.width, objects: [o.scene.minObjects, o.scene.maxObjects], balance: o.balance, pruning: s.pruning, shadows: opts.shadows ?? true, msaa: opts.msaa ?? true,
      imageTensor: 'f32 [N, 3, H, W] in [0, 1] (loadImages)',
    }, null, 1) + '\n');
    if (existsSync(o.out)) rmSync(o.out, { recursive: true, force: true });
    renameSync(tmp, o.out);
    const totalSeconds = (performance.now() - started) / 1000;
    return {
      out: o.out, stats: s,
      timing: { images: done, seconds: round2(totalSeconds), imagesPerSecond: round2(done / totalSeconds) },
      files: { train: join(o.out, 'train.jsonl'), test: join(o.out, 'test.jsonl'), policies: policyFile ? join(o.out, policyFile) : null, vocab: join(o.out, 'vocab.json'), stats: join(o.out, 'stats.json'), sheet: sheet ? join(o.out, sheet) : null },
    };
  } catch (e) {
    try {
      closeSync(fds.train);
      closeSync(fds.test);
    } catch {
      // already closed
    }
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    for (const r of renderers) r.destroy();
  }
}

// ---- reading back -------------------------------------------------------------------------------------

/** The records of a JSONL file. */
export function readJsonl<T = DataRecord>(path: string): T[] {
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as T);
}

/** Decodes image files (paths relative to `dir`) into an f32 [N, 3, H, W] tensor in [0, 1]. */
export function loadImages(dir: string, paths: readonly string[], device?: Device): Tensor {
  check(paths.length > 0, 'loadImages', () => 'no image paths given');
  let w = 0, h = 0;
  let data: Float32Array | null = null;
  paths.forEach((p, n) => {
    const img = decodePng(readFileSync(join(dir, p)));
    if (n === 0) {
      w = img.width;
      h = img.height;
      data = new Float32Array(paths.length * 3 * w * h);
    } else if (img.width !== w || img.height !== h) throw new TrimpiError('loadImages', `${p} is ${img.width}x${img.height}, expected ${w}x${h} like ${paths[0]}`);
    const hw = w * h;
    for (let i = 0; i < hw; i++) for (let c = 0; c < 3; c++) data![n * 3 * hw + c * hw + i] = img.rgb[3 * i + c] / 255;
  });
  return tensor(data!, { shape: [paths.length, 3, h, w], device });
}

/** RGB bytes of an image tensor [N, 3, H, W] in [0, 1] (e.g. to write PNGs of rendered scenes). */
export async function tensorToImages(t: Tensor): Promise<RgbImage[]> {
  check(t.ndim === 4 && t.shape[1] === 3, 'tensorToImages', () => `expected [N, 3, H, W], got [${t.shape.join(', ')}]`);
  const [n, , h, w] = t.shape;
  const a = await t.toArray();
  const hw = h * w;
  return Array.from({ length: n }, (_, k) => {
    const rgb = new Uint8Array(3 * hw);
    for (let i = 0; i < hw; i++) for (let c = 0; c < 3; c++) rgb[3 * i + c] = Math.round(Math.min(1, Math.max(0, a[k * 3 * hw + c * hw + i])) * 255);
    return { width: w, height: h, rgb };
  });
}

/** The Policy of a stored ClevrPolicy record (throws for the tool policy, which has no tree). */
export function policyOfRecord(p: PolicyRecord): Policy {
  check(!!p.tree && p.mode !== 'tool', 'policyOfRecord', () => `policy ${p.name} has no decision tree`);
  return { name: p.name, mode: p.mode === 'M' ? 'M' : 'T', depth: p.depth, root: p.tree!, cases: p.cases, crops: p.crops, pruning: p.pruning ?? 'strict' };
}

/** Re-derives a record's case from its stored scene graph (a consistency check for loaded data). */
export function recheckClevr(record: ClevrRecord, policy: PolicyRecord): boolean {
  if (!policy.tree) return false;
  return evaluatePolicy(policyOfRecord(policy), record.scenes[0].objects).case === record.case;
}
