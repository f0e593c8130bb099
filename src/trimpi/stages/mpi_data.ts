// The MPI data of one setting, as the training stages and evaluations use it: the dataset directory
// written by `trimpi data` (generated on first use, reused after), its records and policies, and a
// host-side image cache so a batch's images are one upload.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClevrRecord, DataRecord, PolicyRecord, Setting, ToolRecord, generateDataset, promptWithPolicy, readJsonl } from '../data/export.js';
import { decodePng } from '../data/png.js';
import { PolicyPruning, scoreClevr } from '../data/clevr_policy.js';
import { scoreToolCall } from '../data/tool_policy.js';
import { Tokenizer } from '../data/tokenizer.js';
import { check } from '../../gpu/errors.js';
import { tensor } from '../../tensor/ops.js';
import type { Tensor } from '../../tensor/tensor.js';
import { formatReward } from '../losses/rewards.js';
import { encodeExample } from './generation.js';
import type { SequenceExample } from './batch.js';

/** A record an MPI setting trains and evaluates on: ClevrPolicy or ToolPolicy. */
export type MpiRecord = ClevrRecord | ToolRecord;

/** What to generate for one setting. */
export interface MpiDataSpec {
  setting: Extract<Setting, 'clevr-t' | 'clevr-m' | 'tool'>;
  depth: number;
  seed: number;
  /** Policies (clevr: ≤ 10 in the paper). */
  policies: number;
  /** Train / test samples per policy (clevr) or in total (tool). */
  train: number;
  test: number;
  /** Image side in pixels (the model's imageSize). */
  imageSize: number;
  /** clevr: how the policy trees are pruned (default 'paper'). */
  pruning?: PolicyPruning;
}

/** A loaded setting. */
export class MpiData {
  readonly train: MpiRecord[];
  readonly test: MpiRecord[];
  readonly policies: Map<string, PolicyRecord>;
  private readonly images = new Map<string, Float32Array>();
  private imageShape: [number, number] | null = null;

  constructor(readonly dir: string, readonly spec: MpiDataSpec) {
    this.train = readJsonl<MpiRecord>(join(dir, 'train.jsonl'));
    this.test = readJsonl<MpiRecord>(join(dir, 'test.jsonl'));
    this.policies = new Map(readJsonl<PolicyRecord>(join(dir, 'policies.jsonl')).map((p) => [p.name, p]));
  }

  /** Generates the dataset into `dir` unless a complete one is there (its manifest is written last). */
  static async open(dir: string, spec: MpiDataSpec, onProgress?: (done: number, total: number) => void): Promise<MpiData> {
    if (!existsSync(join(dir, 'manifest.json'))) {
      await generateDataset({
        setting: spec.setting, seed: spec.seed, out: dir, depth: spec.setting === 'tool' ? undefined : spec.depth,
        policies: spec.setting === 'tool' ? undefined : spec.policies, pruning: spec.setting === 'tool' ? undefined : spec.pruning ?? 'paper', train: spec.train, test: spec.test, imageSize: spec.imageSize, force: true, sheet: 12, onProgress,
      });
    }
    const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { setting: string; seed: number; imageSize: number; train: number; test: number; pruning?: PolicyPruning | null };
    // data written before the pruning option had strict trees
    const [have, want] = spec.setting === 'tool' ? ['-', '-'] : [m.pruning ?? 'strict', spec.pruning ?? 'paper'];
    check(m.setting === spec.setting && m.seed === spec.seed && m.imageSize === spec.imageSize && m.train === spec.train && m.test === spec.test && have === want, 'MpiData.open',
      () => `${dir} holds ${m.setting} seed ${m.seed}, ${m.imageSize}px, ${m.train}/${m.test} per policy, pruning ${have}; expected ${spec.setting} seed ${spec.seed}, ${spec.imageSize}px, ${spec.train}/${spec.test}, pruning ${want}`);
    return new MpiData(dir, spec);
  }

  policyOf(r: MpiRecord): PolicyRecord {
    const p = this.policies.get(r.policy);
    check(p !== undefined, 'MpiData', () => `record ${r.id} names policy ${r.policy}, not in ${this.dir}/policies.jsonl`);
    return p;
  }

  /** The prompt and its image files, without or with the policy in context (policy images first). */
  prompt(r: MpiRecord, withPolicy: boolean): { prompt: string; images: string[] } {
    return withPolicy ? promptWithPolicy(r, this.policyOf(r)) : { prompt: r.prompt, images: r.images };
  }

  /** One image as f32 (3, H, W) in [0, 1], decoded once. */
  private image(path: string): Float32Array {
    let a = this.images.get(path);
    if (!a) {
      const img = decodePng(readFileSync(join(this.dir, path)));
      if (!this.imageShape) this.imageShape = [img.height, img.width];
      check(img.height === this.imageShape[0] && img.width === this.imageShape[1], 'MpiData', () => `${path} is ${img.width}x${img.height}, the others ${this.imageShape![1]}x${this.imageShape![0]}`);
      const hw = img.width * img.height;
      a = new Float32Array(3 * hw);
      for (let i = 0; i < hw; i++) for (let c = 0; c < 3; c++) a[c * hw + i] = img.rgb[3 * i + c] / 255;
      this.images.set(path, a);
    }
    return a;
  }

  /** The images of many prompts, in order, as one host array and its (N, 3, H, W) shape. */
  hostImages(paths: readonly string[]): { data: Float32Array; shape: [number, number, number, number] } | null {
    if (paths.length === 0) return null;
    const first = this.image(paths[0]);
    const [h, w] = this.imageShape!;
    const data = new Float32Array(paths.length * first.length);
    paths.forEach((p, i) => data.set(this.image(p), i * first.length));
    return { data, shape: [paths.length, 3, h, w] };
  }

  /** hostImages uploaded (create inside the caller's tidy(), or dispose). */
  imageTensor(paths: readonly string[]): Tensor | null {
    const h = this.hostImages(paths);
    return h ? tensor(h.data, { shape: h.shape }) : null;
  }

  /** The gold target of a record for a kind of SFT: the CoT response, or the answer alone. */
  static target(r: MpiRecord, kind: 'cot' | 'direct'): string {
    return kind === 'cot' ? r.response : r.answer;
  }

  /** Token sequences of records (prompt without/with the policy, then the target and <eos>). */
  sequences(tok: Tokenizer, records: readonly MpiRecord[], o: { withPolicy: boolean; target: 'cot' | 'direct' }): { seqs: SequenceExample[]; images: string[][] } {
    const seqs: SequenceExample[] = [];
    const images: string[][] = [];
    for (const r of records) {
      const p = this.prompt(r, o.withPolicy);
      seqs.push(encodeExample(tok, { prompt: p.prompt, response: MpiData.target(r, o.target) }));
      images.push(p.images);
    }
    return { seqs, images };
  }

  /**
   * Accuracy of an output for a record: exact case match (clevr) or the tool-call score (tool).
   * clevr's format (the RL reward's 0.1 and the tables' "format") is the reward's strict one: one
   * think block, then one box holding a case the policy has, then nothing (formatReward). scoreClevr's
   * own checks alone let `</think> \boxed{Case 3. </think> \boxed{Case 3}` pass, which RL learned to emit.
   */
  score(r: MpiRecord, output: string): { score: number; format: number } {
    if (r.task === 'clevr') {
      const s = scoreClevr(output, r.case, this.policyOf(r).cases);
      return { score: s.correct ? 1 : 0, format: s.malformed.length === 0 && formatReward(output) === 1 ? 1 : 0 };
    }
    const s = scoreToolCall(output, r.target);
    return { score: s.score, format: s.malformed?.length ? 0 : 1 };
  }
}

/** The records of a JSONL file that are MPI records (drops anything else). */
export function mpiRecords(records: readonly DataRecord[]): MpiRecord[] {
  return records.filter((r): r is MpiRecord => r.task === 'clevr' || r.task === 'tool');
}
